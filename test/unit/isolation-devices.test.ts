import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  blockDeviceFor,
  nvidiaDeviceRules,
  parseProcDevices,
  parseV1DeviceLine,
  splitDev,
  v1DeviceLine,
  type BlockDeviceProbe,
} from '../../src/isolation/index.js';

const PROC_DEVICES_GPU = `Character devices:
  1 mem
  4 /dev/vc/0
  5 /dev/tty
136 pts
195 nvidia-frontend
195 nvidia
195 nvidiactl
234 nvidia-nvswitch
235 nvidia-caps
509 nvidia-uvm

Block devices:
  7 loop
259 blkext
`;

describe('isolation: GPU device rules', () => {
  it('nvidiactl, each GPU (major 195), and nvidia-uvm with the major /proc/devices gives it', () => {
    expect(nvidiaDeviceRules([1, 0, 1], PROC_DEVICES_GPU).map(v1DeviceLine)).toEqual([
      'c 195:255 rwm',
      'c 195:0 rwm',
      'c 195:1 rwm',
      'c 509:0 rwm',
      'c 509:1 rwm',
    ]);
  });

  it('no uvm module loaded: only the 195 nodes; no GPUs: no rules', () => {
    expect(nvidiaDeviceRules([2], 'Character devices:\n195 nvidia\n').map(v1DeviceLine)).toEqual(['c 195:255 rwm', 'c 195:2 rwm']);
    expect(nvidiaDeviceRules([], PROC_DEVICES_GPU)).toEqual([]);
  });

  it('names every bad index', () => {
    let err: unknown;
    try {
      nvidiaDeviceRules([0, -1, 254, 1.5], PROC_DEVICES_GPU);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).fields()).toEqual(['gpus[1]', 'gpus[2]', 'gpus[3]']);
  });

  it('parses /proc/devices sections; the first registration of a name wins', () => {
    const { char, block } = parseProcDevices(PROC_DEVICES_GPU);
    expect(char.get('nvidia-uvm')).toBe(509);
    expect(char.get('pts')).toBe(136);
    expect(block.get('blkext')).toBe(259);
    expect(block.has('pts')).toBe(false);
  });

  it('v1 device lines round-trip', () => {
    for (const line of ['c 1:3 rwm', 'c 136:* rwm', 'b *:* m', 'c 10:200 rw']) expect(v1DeviceLine(parseV1DeviceLine(line)!)).toBe(line);
    expect(v1DeviceLine({ allow: false, type: 'a', access: 'rwm' })).toBe('a');
    expect(parseV1DeviceLine('garbage')).toBeUndefined();
  });
});

describe('isolation: the block device behind a path', () => {
  const MOUNTINFO = `27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 259:3 / /data rw,relatime - ext4 /dev/nvme0n1p3 rw
41 27 0:45 / /run/c1/rootfs rw,relatime - overlay overlay rw,lowerdir=/var/lib/img/l1:/var/lib/img/l2,upperdir=/data/c1/upper,workdir=/data/c1/work
42 27 0:46 / /tmp rw - tmpfs tmpfs rw
43 27 0:47 / /srv rw - btrfs /dev/sdb rw,subvol=/srv
`;
  const probe = (): BlockDeviceProbe => ({
    mountinfo: () => MOUNTINFO,
    realpath: (p) => p,
    deviceOf: (p) =>
      p.startsWith('/data') ? '259:3' : p.startsWith('/run/c1/rootfs') ? '0:45' : p.startsWith('/tmp') ? '0:46' : p.startsWith('/srv') ? '0:47' : '254:0',
    deviceNumberOf: (node) => ({ '/dev/sdb': '8:16' })[node] ?? '0:0',
    wholeDisk: (dev) => ({ '259:3': '259:0' })[dev] ?? dev,
  });

  it('a whole disk as is; a partition becomes its disk (blk-cgroup refuses partitions)', () => {
    expect(blockDeviceFor('/etc/passwd', probe())).toBe('254:0');
    expect(blockDeviceFor('/data/x', probe())).toBe('259:0');
  });

  it('an overlay resolves through its upper directory', () => {
    expect(blockDeviceFor('/run/c1/rootfs/bin/sh', probe())).toBe('259:0');
  });

  it('an anonymous device with a /dev source (btrfs) uses the source; tmpfs has none', () => {
    expect(blockDeviceFor('/srv/a', probe())).toBe('8:16');
    expect(() => blockDeviceFor('/tmp/x', probe())).toThrow(expect.objectContaining({ code: 'ENOTFOUND', message: expect.stringContaining('tmpfs') }));
  });

  it('splits a 64-bit dev_t the way glibc does', () => {
    expect(splitDev((254n << 8n) | 0n)).toBe('254:0');
    // major 259, minor 300: the high minor bits live above bit 20.
    const dev = ((259n & 0xfffn) << 8n) | (300n & 0xffn) | ((300n & ~0xffn) << 12n);
    expect(splitDev(dev)).toBe('259:300');
  });
});
