import { describe, expect, it } from 'vitest';
import { ConfigError, RuntimeError } from '../../src/errors.js';
import {
  CgroupDriver,
  DEFAULT_DEVICE_RULES,
  MemoryCgroupFs,
  RESOURCE_MAP,
  UNLIMITED,
  cpuWeightToShares,
  detectCgroups,
  renderMappingTable,
  v1DeviceLine,
  type DeviceRule,
  type Resources,
} from '../../src/isolation/index.js';

const MiB = 1024 * 1024;
const P = 'stratoswarm-unit';

const V1_MOUNTINFO = ['cpu,cpuacct', 'memory', 'cpuset', 'devices', 'freezer', 'blkio', 'pids', 'hugetlb']
  .map((c, i) => `${30 + i} 25 0:${30 + i} / /sys/fs/cgroup/${c} rw,relatime - cgroup cgroup rw,${c}`)
  .join('\n');
const V2_MOUNTINFO = '30 24 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate';
const HYBRID_MOUNTINFO = [
  ...['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'].map(
    (c, i) => `${32 + i} 31 0:${29 + i} / /sys/fs/cgroup/${c} rw,relatime - cgroup cgroup rw,${c}`,
  ),
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');

const v1Layout = () => detectCgroups(V1_MOUNTINFO);
const v2Layout = () => detectCgroups(V2_MOUNTINFO, { v2Controllers: ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids'] });

const FULL: Resources = {
  cpuLimit: 1.5,
  cpuWeight: 200,
  memoryLimit: 512 * MiB,
  memorySwap: 1024 * MiB,
  memoryReservation: 256 * MiB,
  pidsLimit: 64,
  cpusetCpus: '0-1',
  cpusetMems: '0',
  blockIo: [{ device: '254:0', readBps: MiB, writeIops: 100 }],
  devices: [
    { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
    { allow: false, type: 'c', major: 1, minor: 5, access: 'w' },
  ],
  hugetlb: [{ pageSize: '2MB', limit: 64 * MiB }],
};

class RecordingLoader {
  calls: { dir: string; rules: readonly DeviceRule[] }[] = [];
  attachDeviceProgram(dir: string, rules: readonly DeviceRule[]): void {
    this.calls.push({ dir, rules });
  }
}

/** The writes made after `from`, as "path-relative-to-mount-root value" strings. */
function writesSince(fs: MemoryCgroupFs, from: number): string[] {
  return fs.writes.slice(from).map((w) => `${w.path.replace(/^\/sys\/fs\/cgroup\//, '')} ${w.value}`);
}

const noSleep = async () => {};

describe('isolation: the files written for a full Resources', () => {
  it('v1: one directory per hierarchy, the table’s files and values, in table order', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    const created = d.create('c1', FULL);
    expect(created.procsFiles).toEqual(
      ['cpu,cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'devices', 'freezer', 'hugetlb'].map((h) => `/sys/fs/cgroup/${h}/${P}/c1/cgroup.procs`),
    );
    expect(writesSince(fs, 0)).toEqual([
      // The parent, once: a v1 cpuset starts empty and refuses tasks until both sets are filled.
      `cpuset/${P}/cpuset.cpus 0-1`,
      `cpuset/${P}/cpuset.mems 0`,
      `cpuset/${P}/cgroup.clone_children 1`,
      `cpu,cpuacct/${P}/c1/cpu.cfs_period_us 100000`,
      `cpu,cpuacct/${P}/c1/cpu.cfs_quota_us 150000`,
      `cpu,cpuacct/${P}/c1/cpu.shares 2048`,
      `memory/${P}/c1/memory.limit_in_bytes 536870912`,
      `memory/${P}/c1/memory.memsw.limit_in_bytes 1073741824`,
      `memory/${P}/c1/memory.soft_limit_in_bytes 268435456`,
      `pids/${P}/c1/pids.max 64`,
      `cpuset/${P}/c1/cpuset.cpus 0-1`,
      `cpuset/${P}/c1/cpuset.mems 0`,
      `blkio/${P}/c1/blkio.throttle.read_bps_device 254:0 1048576`,
      `blkio/${P}/c1/blkio.throttle.write_iops_device 254:0 100`,
      `hugetlb/${P}/c1/hugetlb.2MB.limit_in_bytes 67108864`,
      `devices/${P}/c1/devices.deny a`,
      `devices/${P}/c1/devices.allow c 1:3 rw`,
      `devices/${P}/c1/devices.deny c 1:5 w`,
    ]);
    // clone_children copied the parent's sets into the new cgroup before any write.
    expect(fs.get(`/sys/fs/cgroup/cpuset/${P}/c1/cpuset.mems`)).toBe('0');
  });

  it('v2: subtree_control on the parent, then cpu.max, memory.swap.max = swap − memory, io.max, the device program last', () => {
    const fs = MemoryCgroupFs.forLayout(v2Layout());
    const loader = new RecordingLoader();
    const d = new CgroupDriver(fs, v2Layout(), P, { devicePrograms: loader });
    const created = d.create('c1', FULL);
    expect(created.procsFiles).toEqual([`/sys/fs/cgroup/${P}/c1/cgroup.procs`]);
    expect(writesSince(fs, 0)).toEqual([
      `${P}/cgroup.subtree_control +cpu +cpuset +memory +pids +io +hugetlb`,
      `${P}/c1/cpu.max 150000 100000`,
      `${P}/c1/cpu.weight 200`,
      `${P}/c1/memory.max 536870912`,
      `${P}/c1/memory.swap.max 536870912`,
      `${P}/c1/memory.low 268435456`,
      `${P}/c1/pids.max 64`,
      `${P}/c1/cpuset.cpus 0-1`,
      `${P}/c1/cpuset.mems 0`,
      `${P}/c1/io.max 254:0 rbps=1048576 wiops=100`,
      `${P}/c1/hugetlb.2MB.max 67108864`,
    ]);
    expect(loader.calls).toEqual([{ dir: `/sys/fs/cgroup/${P}/c1`, rules: FULL.devices }]);
  });

  it('UNLIMITED removes each limit in each version’s spelling', () => {
    const r: Resources = {
      cpuLimit: UNLIMITED,
      memoryLimit: UNLIMITED,
      memorySwap: UNLIMITED,
      pidsLimit: UNLIMITED,
      blockIo: [{ device: '8:0', writeBps: UNLIMITED }],
      hugetlb: [{ pageSize: '1GB', limit: UNLIMITED }],
      devices: [],
    };
    const f1 = MemoryCgroupFs.forLayout(v1Layout());
    new CgroupDriver(f1, v1Layout(), P).create('u', r);
    expect(writesSince(f1, 3).map((w) => w.split('/').pop())).toEqual([
      'cpu.cfs_period_us 100000',
      'cpu.cfs_quota_us -1',
      'memory.limit_in_bytes -1',
      'memory.memsw.limit_in_bytes -1',
      'pids.max max',
      'blkio.throttle.write_bps_device 8:0 0',
      'hugetlb.1GB.limit_in_bytes -1',
      'devices.deny a',
    ]);
    const f2 = MemoryCgroupFs.forLayout(v2Layout());
    new CgroupDriver(f2, v2Layout(), P, { devicePrograms: new RecordingLoader() }).create('u', r);
    expect(writesSince(f2, 1).map((w) => w.split('/').pop())).toEqual([
      'cpu.max max 100000',
      'memory.max max',
      'memory.swap.max max',
      'pids.max max',
      'io.max 8:0 wbps=max',
      'hugetlb.1GB.max max',
    ]);
  });

  it('without device rules a container gets deny-all plus the standard list', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    new CgroupDriver(fs, v1Layout(), P).create('c1', {});
    const dev = fs.writes.filter((w) => w.path.includes('/devices/')).map((w) => `${w.path.split('/').pop()} ${w.value}`);
    expect(dev).toEqual(['devices.deny a', ...DEFAULT_DEVICE_RULES.map((r) => `devices.allow ${v1DeviceLine(r)}`)]);
    expect(fs.get(`/sys/fs/cgroup/devices/${P}/c1/devices.list`)).toContain('c 136:* rwm');
    expect(dev).toContain('devices.allow c 1:3 rwm');
    expect(dev).toContain('devices.allow c *:* m');
  });

  it('v2 device rules without a program loader fail EUNSUPPORTED before anything is made', () => {
    const fs = MemoryCgroupFs.forLayout(v2Layout());
    const d = new CgroupDriver(fs, v2Layout(), P);
    expect(() => d.create('c1', {})).toThrow(expect.objectContaining({ code: 'EUNSUPPORTED', message: expect.stringMatching(/eBPF/) }));
    expect(fs.exists(`/sys/fs/cgroup/${P}/c1`)).toBe(false);
  });

  it('hybrid: hugetlb goes to the unified tree, and fails EUNSUPPORTED while the root does not delegate it', () => {
    const layout = detectCgroups(HYBRID_MOUNTINFO, { v2Controllers: ['hugetlb'] });
    const fs = MemoryCgroupFs.forLayout(layout);
    const d = new CgroupDriver(fs, layout, P);
    const err = (() => {
      try {
        d.create('c1', { hugetlb: [{ pageSize: '2MB', limit: 4 * MiB }] });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: 'EUNSUPPORTED', path: `/sys/fs/cgroup/unified/${P}` });
    expect((err as Error).message).toMatch(/hugetlb controller is not delegated/);
    expect(fs.get('/sys/fs/cgroup/unified/cgroup.subtree_control')).toBe(''); // never touched
    expect(d.list()).toEqual([]);
    // Everything else works on that host.
    expect(d.create('c2', { memoryLimit: 64 * MiB }).procsFiles.at(-1)).toBe(`/sys/fs/cgroup/unified/${P}/c2/cgroup.procs`);
  });

  it('unified: cgroup v2 files written as named (v2 and the core\'s on a hybrid host); a v1 controller, a reserved or missing file refused by name, nothing left', () => {
    const v2 = MemoryCgroupFs.forLayout(v2Layout());
    const d2 = new CgroupDriver(v2, v2Layout(), P, { devicePrograms: new RecordingLoader() });
    d2.create('c', { memoryLimit: 64 * MiB, unified: { 'memory.high': '33554432', 'cgroup.max.depth': '2' } });
    expect(v2.get(`/sys/fs/cgroup/${P}/c/memory.high`)).toBe('33554432');
    expect(v2.get(`/sys/fs/cgroup/${P}/c/cgroup.max.depth`)).toBe('2');
    // An update is all or nothing: a later failing write puts memory.high back.
    v2.failOn('pids.max');
    expect(() => d2.update('c', { unified: { 'memory.high': '1048576' }, pidsLimit: 4 })).toThrow();
    expect(v2.get(`/sys/fs/cgroup/${P}/c/memory.high`)).toBe('33554432');
    expect(() => d2.create('m', { unified: { 'memory.hihg': '1' } })).toThrow(/unified\["memory.hihg"\]: memory.hihg does not exist on this kernel \(no such file/);
    expect(d2.list()).toEqual(['c']);

    const layout = detectCgroups(HYBRID_MOUNTINFO, { v2Controllers: ['hugetlb'] });
    const fs = MemoryCgroupFs.forLayout(layout);
    const d = new CgroupDriver(fs, layout, P, { enableAncestorControllers: true });
    d.create('h', { unified: { 'hugetlb.2MB.max': '4194304', 'cgroup.max.descendants': '10' } });
    expect(fs.get(`/sys/fs/cgroup/unified/${P}/h/hugetlb.2MB.max`)).toBe('4194304');
    expect(fs.get(`/sys/fs/cgroup/unified/${P}/h/cgroup.max.descendants`)).toBe('10');
    expect(() => d.create('v1', { unified: { 'memory.high': '1G' } })).toThrow(
      /unified\["memory.high"\]: the memory controller is on cgroup v1 on this host \(\/sys\/fs\/cgroup\/memory\); unified writes cgroup v2 files/,
    );
    expect(() => d.create('v1', { unified: { 'rdma.max': 'x' } })).toThrow(/unified\["rdma.max"\]: the runtime does not drive a "rdma" controller/);
    expect(d.list()).toEqual(['h']);
    let err: unknown;
    try {
      d.validate({ unified: { 'cgroup.procs': '1', '../memory.max': '1', 'memory.max': 'a\nb', 'pids.max': 5 } } as unknown as Resources);
    } catch (e) {
      err = e;
    }
    expect((err as ConfigError).fields()).toEqual(['unified["cgroup.procs"]', 'unified["../memory.max"]', 'unified["memory.max"]', 'unified["pids.max"]']);
    expect((err as Error).message).toContain('unified["cgroup.procs"]: cgroup.procs is the runtime\'s to write');
  });

  it('hybrid with enableAncestorControllers: +hugetlb from the root down, then the limit', () => {
    const layout = detectCgroups(HYBRID_MOUNTINFO, { v2Controllers: ['hugetlb'] });
    const fs = MemoryCgroupFs.forLayout(layout);
    const d = new CgroupDriver(fs, layout, P, { enableAncestorControllers: true });
    d.create('c1', { hugetlb: [{ pageSize: '2MB', limit: 4 * MiB }] });
    const unified = writesSince(fs, 0).filter((w) => w.startsWith('unified'));
    expect(unified).toEqual([
      'unified/cgroup.subtree_control +hugetlb',
      `unified/${P}/cgroup.subtree_control +hugetlb`,
      `unified/${P}/c1/hugetlb.2MB.max 4194304`,
    ]);
  });

  it('a file that needs a kernel option (memsw) is checked before writing: EUNSUPPORTED, nothing left', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    d.create('probe', {});
    for (const f of [...fs.files.keys()]) if (f.endsWith('memory.memsw.limit_in_bytes')) fs.files.delete(f);
    // A fresh cgroup gets the template again, so drop memsw from the template by failing existence.
    const exists = fs.exists.bind(fs);
    fs.exists = (p: string) => !p.endsWith('memory.memsw.limit_in_bytes') && exists(p);
    expect(() => d.create('c1', { memoryLimit: 64 * MiB, memorySwap: 128 * MiB })).toThrow(
      expect.objectContaining({ code: 'EUNSUPPORTED', message: expect.stringContaining('memory.memsw.limit_in_bytes does not exist') }),
    );
    expect(d.list()).toEqual(['probe']);
  });
});

describe('isolation: create failures and names', () => {
  it('a failing write removes every directory made so far and throws that write’s error', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout()).failOn('pids.max', 'EINVAL');
    const d = new CgroupDriver(fs, v1Layout(), P);
    expect(() => d.create('c1', { pidsLimit: 5 })).toThrow(
      expect.objectContaining({
        code: 'ESYSCALL',
        errno: 'EINVAL',
        containerId: 'c1',
        message: 'create cgroup of "c1": write `pids.max`: EINVAL (value "5")',
      }),
    );
    expect(fs.cgroupsUnder('/sys/fs/cgroup/pids/' + P)).toEqual([]);
    expect(d.list()).toEqual([]);
  });

  it('EEXIST for an id that has a directory already; EINVAL for a bad id or parent', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    fs.mkdir(`/sys/fs/cgroup/memory/${P}/dup`);
    expect(() => d.create('dup', {})).toThrow(expect.objectContaining({ code: 'EEXIST' }));
    expect(() => d.create('../x', {})).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => new CgroupDriver(fs, v1Layout(), '/abs')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => new CgroupDriver(fs, v1Layout(), 'a/../b')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('a nested parent: only the directories the driver made get cpuset values copied', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    fs.mkdir('/sys/fs/cgroup/cpuset/existing');
    fs.set('/sys/fs/cgroup/cpuset/existing/cpuset.cpus', '1');
    fs.set('/sys/fs/cgroup/cpuset/existing/cpuset.mems', '0');
    new CgroupDriver(fs, v1Layout(), 'existing/ours').create('c', {});
    const cpuset = writesSince(fs, 0).filter((w) => w.startsWith('cpuset/'));
    expect(cpuset).toEqual(['cpuset/existing/ours/cpuset.cpus 1', 'cpuset/existing/ours/cpuset.mems 0', 'cpuset/existing/ours/cgroup.clone_children 1']);
  });
});

describe('isolation: update is all or nothing', () => {
  const setup = (layout = v1Layout(), opts = {}) => {
    const fs = MemoryCgroupFs.forLayout(layout);
    const d = new CgroupDriver(fs, layout, P, { devicePrograms: new RecordingLoader(), ...opts });
    d.create('c', { cpuLimit: 0.5, cpuWeight: 100, memoryLimit: 256 * MiB, pidsLimit: 32 });
    return { fs, d };
  };
  const contents = (fs: MemoryCgroupFs) => new Map([...fs.files].filter(([p]) => p.includes(`/${P}/c/`)));

  it('v1: a write fails → the writes before it get their old values back; the error is that write’s; unchanged files are not written', () => {
    const { fs, d } = setup();
    const before = contents(fs);
    fs.failOn('memory.limit_in_bytes', 'EINVAL');
    const n = fs.writes.length;
    let err: unknown;
    try {
      d.update('c', { cpuLimit: 1.5, memoryLimit: 512 * MiB, pidsLimit: 100 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({
      code: 'ESYSCALL',
      step: 'cgroup',
      errno: 'EINVAL',
      syscall: 'write',
      path: `/sys/fs/cgroup/memory/${P}/c/memory.limit_in_bytes`,
      containerId: 'c',
    });
    expect((err as Error).message).toBe('update resources of "c": write `memory.limit_in_bytes`: EINVAL (value "536870912")');
    expect(writesSince(fs, n)).toEqual([
      // cpu.cfs_period_us already holds 100000: not written
      `cpu,cpuacct/${P}/c/cpu.cfs_quota_us 150000`,
      // rollback
      `cpu,cpuacct/${P}/c/cpu.cfs_quota_us 50000`,
    ]);
    expect(contents(fs)).toEqual(before);
  });

  it('v2: the 3rd write fails → cpu.max and cpu.weight restored', () => {
    const { fs, d } = setup(v2Layout());
    const before = contents(fs);
    fs.failOn('memory.max', 'EBUSY');
    expect(() => d.update('c', { cpuLimit: 2, cpuWeight: 50, memoryLimit: 64 * MiB })).toThrow(
      expect.objectContaining({ errno: 'EBUSY', path: `/sys/fs/cgroup/${P}/c/memory.max` }),
    );
    expect(contents(fs)).toEqual(before);
    expect(fs.get(`/sys/fs/cgroup/${P}/c/cpu.max`)).toBe('50000 100000');
  });

  it('keyed files and device lists are restored line by line', () => {
    const { fs, d } = setup();
    d.update('c', { blockIo: [{ device: '254:0', readBps: 1000 }] });
    const before = contents(fs);
    // The second device rule fails, after the throttles and the first device lines went in.
    fs.failOn('devices.allow', 'EINVAL', 'c 1:5 rw');
    expect(() =>
      d.update('c', {
        blockIo: [
          { device: '254:0', readBps: 2000 },
          { device: '8:0', readBps: 5 },
        ],
        devices: [
          { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
          { allow: true, type: 'c', major: 1, minor: 5, access: 'rw' },
        ],
      }),
    ).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    expect(fs.get(`/sys/fs/cgroup/blkio/${P}/c/blkio.throttle.read_bps_device`)).toBe('254:0 1000\n');
    expect(new Set(fs.get(`/sys/fs/cgroup/devices/${P}/c/devices.list`)!.split('\n'))).toEqual(new Set(before.get(`/sys/fs/cgroup/devices/${P}/c/devices.list`)!.split('\n')));
    expect(contents(fs).get(`/sys/fs/cgroup/blkio/${P}/c/blkio.throttle.read_bps_device`)).toBe(before.get(`/sys/fs/cgroup/blkio/${P}/c/blkio.throttle.read_bps_device`));
  });

  it('BFQ weights: v1 blkio.bfq.weight and weight_device, v2 io.bfq.weight; restored (a device weight back to none) when a later write fails', () => {
    const { fs, d } = setup();
    const n = fs.writes.length;
    d.update('c', { blockIoWeight: 300, blockIoWeightDevice: [{ device: '254:0', weight: 700 }] });
    expect(writesSince(fs, n)).toEqual([`blkio/${P}/c/blkio.bfq.weight 300`, `blkio/${P}/c/blkio.bfq.weight_device 254:0 700`]);
    expect(fs.get(`/sys/fs/cgroup/blkio/${P}/c/blkio.bfq.weight_device`)).toBe('default 300\n254:0 700\n');
    fs.failOn('pids.max');
    expect(() => d.update('c', { blockIoWeight: 50, blockIoWeightDevice: [{ device: '8:0', weight: 9 }], pidsLimit: 5 })).toThrow();
    expect(fs.get(`/sys/fs/cgroup/blkio/${P}/c/blkio.bfq.weight`)).toBe('300');
    expect(fs.get(`/sys/fs/cgroup/blkio/${P}/c/blkio.bfq.weight_device`)).toBe('default 300\n254:0 700\n');

    const v2 = setup(v2Layout());
    const m = v2.fs.writes.length;
    v2.d.update('c', { blockIoWeight: 300, blockIoWeightDevice: [{ device: '254:0', weight: 700 }] });
    expect(writesSince(v2.fs, m)).toEqual([`${P}/c/io.bfq.weight default 300`, `${P}/c/io.bfq.weight 254:0 700`]);
    v2.fs.failOn('pids.max');
    expect(() => v2.d.update('c', { blockIoWeight: 50, blockIoWeightDevice: [{ device: '8:0', weight: 9 }], pidsLimit: 5 })).toThrow();
    expect(v2.fs.get(`/sys/fs/cgroup/${P}/c/io.bfq.weight`)).toBe('default 300\n254:0 700\n');
  });

  it('BFQ weights: a kernel without BFQ, or a disk on another scheduler, is an error naming the setting and the cause', () => {
    const { fs, d } = setup();
    fs.files.delete(`/sys/fs/cgroup/blkio/${P}/c/blkio.bfq.weight`);
    expect(() => d.update('c', { blockIoWeight: 300 })).toThrow(/blockIoWeight: blkio.bfq.weight does not exist on this kernel \(it comes with the BFQ I\/O scheduler/);
    fs.failOn('blkio.bfq.weight_device', 'EOPNOTSUPP');
    expect(() => d.update('c', { blockIoWeightDevice: [{ device: '254:0', weight: 500 }] })).toThrow(
      /: blockIoWeightDevice: write `blkio.bfq.weight_device`: EOPNOTSUPP .*: the device does not use the BFQ I\/O scheduler/,
    );
    let err: unknown;
    try {
      d.validate({ blockIoWeight: 0, blockIoWeightDevice: [{ device: 'vda', weight: 1001 }, { device: '8:0', weight: 5, leafWeight: 5 }] } as unknown as Resources);
    } catch (e) {
      err = e;
    }
    expect((err as ConfigError).fields()).toEqual(['blockIoWeight', 'blockIoWeightDevice[0].device', 'blockIoWeightDevice[0].weight', 'blockIoWeightDevice[1].leafWeight']);
  });

  it('v2 io.max restores the previous line, or "max" for a device that had none', () => {
    const { fs, d } = setup(v2Layout());
    d.update('c', { blockIo: [{ device: '254:0', readBps: 1000 }] });
    fs.failOn('hugetlb.2MB.max');
    expect(() => d.update('c', { blockIo: [{ device: '254:0', writeBps: 7 }, { device: '8:0', readIops: 9 }], hugetlb: [{ pageSize: '2MB', limit: 0 }] })).toThrow();
    expect(fs.get(`/sys/fs/cgroup/${P}/c/io.max`)).toBe('254:0 rbps=1000 wbps=max riops=max wiops=max\n');
  });

  it('a failing restore is reported with the original error', () => {
    const { fs, d } = setup();
    fs.failOn('pids.max', 'EINVAL', '7').failOn('cpu.shares', 'EIO', '1024');
    expect(() => d.update('c', { cpuWeight: 300, pidsLimit: 7 })).toThrow(/write `pids.max`: EINVAL.*restoring the previous values failed too: write `cpu.shares`: EIO/);
  });

  it('undefined fields are left alone; the update writes only what it names', () => {
    const { fs, d } = setup();
    const n = fs.writes.length;
    d.update('c', { pidsLimit: 10 });
    expect(writesSince(fs, n)).toEqual([`pids/${P}/c/pids.max 10`]);
  });

  it('v1 memory: raising past memory+swap writes memsw first, lowering writes the limit first', () => {
    const { fs, d } = setup();
    d.update('c', { memoryLimit: 256 * MiB, memorySwap: 256 * MiB });
    let n = fs.writes.length;
    d.update('c', { memoryLimit: 1024 * MiB, memorySwap: 2048 * MiB });
    expect(writesSince(fs, n).map((w) => w.split('/').pop())).toEqual(['memory.memsw.limit_in_bytes 2147483648', 'memory.limit_in_bytes 1073741824']);
    n = fs.writes.length;
    d.update('c', { memoryLimit: 128 * MiB, memorySwap: 256 * MiB });
    expect(writesSince(fs, n).map((w) => w.split('/').pop())).toEqual(['memory.limit_in_bytes 134217728', 'memory.memsw.limit_in_bytes 268435456']);
  });

  it('removing a memory reservation takes its protection away: v2 memory.low back to 0, v1 soft limit back to -1', () => {
    // memory.low = max would protect every byte the container uses: the opposite of no reservation.
    const v2 = setup(v2Layout());
    v2.d.update('c', { memoryReservation: 64 * MiB });
    expect(v2.fs.get(`/sys/fs/cgroup/${P}/c/memory.low`)).toBe('67108864');
    v2.d.update('c', { memoryReservation: UNLIMITED });
    expect(v2.fs.get(`/sys/fs/cgroup/${P}/c/memory.low`)).toBe('0');
    const v1 = setup();
    v1.d.update('c', { memoryReservation: 64 * MiB });
    v1.d.update('c', { memoryReservation: UNLIMITED });
    expect(v1.fs.get(`/sys/fs/cgroup/memory/${P}/c/memory.soft_limit_in_bytes`)).toBe('-1');
  });

  it('ENOTFOUND for a container without a cgroup', () => {
    const { d } = setup();
    expect(() => d.update('nope', { pidsLimit: 1 })).toThrow(expect.objectContaining({ code: 'ENOTFOUND' }));
  });

  it('a cached update does not read again a file it wrote or read; after a failed update, a destroy, or an update that is not cached, it is', async () => {
    const layout = v1Layout();
    const reads: string[] = [];
    const fs = MemoryCgroupFs.forLayout(layout);
    const readFile = fs.readFile.bind(fs);
    fs.readFile = (path: string) => (reads.push(path.replace(/^.*\/c\//, '')), readFile(path));
    const d = new CgroupDriver(fs, layout, P);
    d.create('c', { cpuLimit: 0.5, memoryLimit: 256 * MiB });
    reads.length = 0;
    d.update('c', { cpuLimit: 1, memoryLimit: 512 * MiB });
    expect(reads.sort()).toEqual(['cpu.cfs_period_us', 'cpu.cfs_quota_us', 'memory.limit_in_bytes']);
    reads.length = 0;
    const n = fs.writes.length;
    d.update('c', { cpuLimit: 1.5, memoryLimit: 512 * MiB }, { cached: true });
    d.update('c', { cpuLimit: 1, memoryLimit: 384 * MiB }, { cached: true });
    expect(reads).toEqual([]);
    // Unchanged values (the period, the memory limit of the first) are still skipped.
    expect(writesSince(fs, n)).toEqual([
      `cpu,cpuacct/${P}/c/cpu.cfs_quota_us 150000`,
      `cpu,cpuacct/${P}/c/cpu.cfs_quota_us 100000`,
      `memory/${P}/c/memory.limit_in_bytes 402653184`,
    ]);
    fs.failOn('memory.limit_in_bytes', 'EINVAL');
    expect(() => d.update('c', { cpuLimit: 2, memoryLimit: 128 * MiB }, { cached: true })).toThrow(expect.objectContaining({ errno: 'EINVAL' }));
    // Restored from what it knew, not from a read.
    expect(fs.get(`/sys/fs/cgroup/cpu,cpuacct/${P}/c/cpu.cfs_quota_us`)).toBe('100000');
    fs.clearFaults();
    reads.length = 0;
    d.update('c', { cpuLimit: 2 }, { cached: true });
    expect(reads.sort()).toEqual(['cpu.cfs_period_us', 'cpu.cfs_quota_us']);
    // Another process sets the quota; an update that is not cached reads it and writes.
    fs.set(`/sys/fs/cgroup/cpu,cpuacct/${P}/c/cpu.cfs_quota_us`, '50000');
    reads.length = 0;
    d.update('c', { cpuLimit: 2 });
    expect(reads.sort()).toEqual(['cpu.cfs_period_us', 'cpu.cfs_quota_us']);
    expect(fs.get(`/sys/fs/cgroup/cpu,cpuacct/${P}/c/cpu.cfs_quota_us`)).toBe('200000');
    reads.length = 0;
    await d.destroy('c');
    d.create('c', { cpuLimit: 0.5 });
    reads.length = 0;
    d.update('c', { cpuLimit: 1 }, { cached: true });
    expect(reads.sort()).toEqual(['cpu.cfs_period_us', 'cpu.cfs_quota_us']);
  });
});

describe('isolation: validation', () => {
  it('a ConfigError names every bad field at once', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    const bad = {
      cpuLimit: 0.001,
      cpuWeight: 0,
      memoryLimit: 512,
      memorySwap: 1.5,
      memoryReservation: -1,
      pidsLimit: 1.5,
      cpusetCpus: '3-1',
      cpusetMems: 'zero',
      blockIo: [{ device: 'sda', readBps: 0 }, { device: '8:0' }],
      devices: [{ allow: 'yes', type: 'x', access: 'rx' }, { allow: true, type: 'a', major: 1, access: 'rwm' }],
      hugetlb: [{ pageSize: '2M', limit: -1 }],
      cpu_limit: 2,
    } as unknown as Resources;
    let err: unknown;
    try {
      d.validate(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).fields()).toEqual([
      'cpu_limit',
      'cpuLimit',
      'cpuWeight',
      'memoryLimit',
      'memorySwap',
      'memoryReservation',
      'pidsLimit',
      'cpusetCpus',
      'cpusetMems',
      'blockIo[0].device',
      'blockIo[0].readBps',
      'blockIo[1]',
      'devices[0].allow',
      'devices[0].type',
      'devices[0].access',
      'devices[1].major',
      'hugetlb[0].pageSize',
      'hugetlb[0].limit',
    ]);
    const msg = (err as Error).message;
    expect(msg).toContain('cpu_limit: unknown field (did you mean cpuLimit?)');
    expect(msg).toContain('memoryLimit: expected whole bytes ≥ 1048576 or UNLIMITED, got 512 (512 bytes — megabytes? use 512 * 1024 * 1024)');
    expect(msg).toContain('memorySwap: expected whole bytes');
  });

  it('memory relations: swap needs the limit beside it and may not be below it', () => {
    const d = new CgroupDriver(MemoryCgroupFs.forLayout(v1Layout()), v1Layout(), P);
    const fields = (r: Resources) => {
      try {
        d.validate(r);
        return [];
      } catch (e) {
        return (e as ConfigError).problems.map((p) => `${p.field}: ${p.problem}`);
      }
    };
    expect(fields({ memorySwap: 2 * MiB })).toEqual(['memorySwap: needs memoryLimit in the same call (v2 writes their difference)']);
    expect(fields({ memoryLimit: 4 * MiB, memorySwap: 2 * MiB })).toEqual(['memorySwap: must be ≥ memoryLimit (2097152 < 4194304)']);
    expect(fields({ memoryLimit: UNLIMITED, memorySwap: 2 * MiB })).toEqual(['memorySwap: must be UNLIMITED when memoryLimit is']);
    expect(fields({ memoryLimit: 4 * MiB, memoryReservation: 8 * MiB })).toEqual(['memoryReservation: must be ≤ memoryLimit (8388608 > 4194304)']);
  });

  it('create and update validate before touching anything', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    expect(() => d.create('c', { memorySwap: 2 * MiB })).toThrow(ConfigError);
    expect(fs.writes).toEqual([]);
    d.create('c', {});
    const n = fs.writes.length;
    expect(() => d.update('c', { blockIo: [{ device: '8:0', readBps: 1 }, { device: '8:0', writeBps: 1 }] })).toThrow(/blockIo\[1\]\.device: 8:0 is already limited by blockIo\[0\]/);
    expect(fs.writes.length).toBe(n);
  });

  it('accepts every well-formed value, UNLIMITED included', () => {
    const d = new CgroupDriver(MemoryCgroupFs.forLayout(v1Layout()), v1Layout(), P);
    expect(() => d.validate(FULL)).not.toThrow();
    expect(() => d.validate({ cpuLimit: UNLIMITED, memoryLimit: UNLIMITED, memorySwap: UNLIMITED, pidsLimit: UNLIMITED })).not.toThrow();
    expect(() => d.validate({ cpuLimit: 0.01, cpusetCpus: '0,2-3', devices: [{ allow: true, type: 'a', access: 'rwm' }] })).not.toThrow();
  });
});

describe('isolation: stats, OOM kills, pids', () => {
  it('v1: one read per file, counters in ns and bytes, "no limit" as Infinity', () => {
    const layout = v1Layout();
    const fs = MemoryCgroupFs.forLayout(layout);
    const d = new CgroupDriver(fs, layout, P);
    d.create('c', { pidsLimit: 64 });
    const dir = (h: string) => `/sys/fs/cgroup/${h}/${P}/c`;
    fs.set(`${dir('cpu,cpuacct')}/cpuacct.usage`, '123456789\n');
    fs.set(`${dir('cpu,cpuacct')}/cpu.stat`, 'nr_periods 10\nnr_throttled 4\nthrottled_time 5000\nnr_bursts 0\nburst_time 0\n');
    fs.set(`${dir('memory')}/memory.usage_in_bytes`, '1000\n');
    fs.set(`${dir('memory')}/memory.max_usage_in_bytes`, '4000\n');
    fs.set(`${dir('memory')}/memory.oom_control`, 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    fs.set(`${dir('pids')}/pids.current`, '3\n');
    fs.set(
      `${dir('blkio')}/blkio.throttle.io_service_bytes_recursive`,
      '254:0 Read 4096\n254:0 Write 8192\n254:0 Sync 0\n254:0 Async 12288\n254:0 Discard 0\n254:0 Total 12288\n8:0 Read 1\nTotal 12289\n',
    );
    fs.set(`${dir('blkio')}/blkio.throttle.io_serviced_recursive`, '254:0 Read 1\n254:0 Write 2\n254:0 Total 3\nTotal 3\n');
    const reads: string[] = [];
    const read = fs.readFile.bind(fs);
    fs.readFile = (p: string) => {
      reads.push(p);
      return read(p);
    };
    expect(d.stats('c')).toEqual({
      cpu: { usageNs: 123456789, periods: 10, throttledPeriods: 4, throttledNs: 5000 },
      memory: { currentBytes: 1000, peakBytes: 4000, limitBytes: Infinity, oomKills: 2 },
      pids: { current: 3, limit: 64 },
      blockIo: { readBytes: 4097, writeBytes: 8192, readOps: 1, writeOps: 2 },
    });
    expect(reads.length).toBe(new Set(reads).size);
    expect(reads.length).toBe(10);
    expect(d.oomKills('c')).toBe(2);
  });

  it('v2: cpu.stat in µs becomes ns; memory.events gives oom_kill; io.stat is summed', () => {
    const layout = v2Layout();
    const fs = MemoryCgroupFs.forLayout(layout);
    const d = new CgroupDriver(fs, layout, P, { devicePrograms: new RecordingLoader() });
    d.create('c', { memoryLimit: 64 * MiB });
    const dir = `/sys/fs/cgroup/${P}/c`;
    fs.set(`${dir}/cpu.stat`, 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n');
    fs.set(`${dir}/memory.current`, '2048\n');
    fs.set(`${dir}/memory.peak`, '4096\n');
    fs.set(`${dir}/memory.events`, 'low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n');
    fs.set(`${dir}/io.stat`, '254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=5 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n');
    expect(d.stats('c')).toEqual({
      cpu: { usageNs: 1_500_000, periods: 7, throttledPeriods: 2, throttledNs: 30_000 },
      memory: { currentBytes: 2048, peakBytes: 4096, limitBytes: 64 * MiB, oomKills: 1 },
      pids: { current: 0, limit: Infinity },
      blockIo: { readBytes: 15, writeBytes: 20, readOps: 2, writeOps: 2 },
    });
    expect(d.oomKills('c')).toBe(1);
  });

  it('a v1 kernel without oom_kill in memory.oom_control is EUNSUPPORTED, not 0', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    d.create('c', {});
    fs.set(`/sys/fs/cgroup/memory/${P}/c/memory.oom_control`, 'oom_kill_disable 0\nunder_oom 0\n');
    expect(() => d.oomKills('c')).toThrow(expect.objectContaining({ code: 'EUNSUPPORTED' }));
  });

  it('pids() reads cgroup.procs; stats of a missing container is ENOTFOUND', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    const { procsFiles } = d.create('c', {});
    for (const f of procsFiles) {
      fs.cgroupWrite(f, '300');
      fs.cgroupWrite(f, '20');
    }
    expect(d.pids('c')).toEqual([20, 300]);
    expect(() => d.stats('gone')).toThrow(expect.objectContaining({ code: 'ENOTFOUND', containerId: 'gone' }));
  });
});

describe('isolation: freeze and thaw', () => {
  class SlowFreezer extends MemoryCgroupFs {
    pending = 0;
    override cgroupWrite(path: string, value: string): void {
      super.cgroupWrite(path, value);
      if (path.endsWith('freezer.state') && value === 'FROZEN' && this.pending > 0) {
        this.pending--;
        this.set(path, 'FREEZING');
      }
    }
  }

  it('v1: waits through FREEZING, rewriting FROZEN so the kernel retries stuck tasks', async () => {
    const fs = SlowFreezer.forLayout(v1Layout());
    fs.pending = 7;
    const sleeps: number[] = [];
    const d = new CgroupDriver(fs, v1Layout(), P, { sleep: async (ms) => void sleeps.push(ms) });
    d.create('c', {});
    await d.freeze('c');
    expect(fs.get(`/sys/fs/cgroup/freezer/${P}/c/freezer.state`)).toBe('FROZEN');
    expect(sleeps.slice(0, 7)).toEqual([1, 2, 4, 8, 16, 32, 50]);
    expect(fs.writes.filter((w) => w.value === 'FROZEN').length).toBeGreaterThan(1);
    await d.thaw('c');
    expect(fs.get(`/sys/fs/cgroup/freezer/${P}/c/freezer.state`)).toBe('THAWED');
  });

  it('v1: a freeze that never completes times out ETIMEDOUT and thaws again', async () => {
    const fs = SlowFreezer.forLayout(v1Layout());
    fs.pending = Infinity;
    const d = new CgroupDriver(fs, v1Layout(), P, { freezeTimeoutMs: 30 });
    d.create('c', {});
    await expect(d.freeze('c')).rejects.toMatchObject({ code: 'ETIMEDOUT', step: 'freezer' });
    expect(fs.writes.at(-1)?.value).toBe('THAWED');
  });

  it('v2: cgroup.freeze and cgroup.events', async () => {
    const fs = MemoryCgroupFs.forLayout(v2Layout());
    const d = new CgroupDriver(fs, v2Layout(), P, { devicePrograms: new RecordingLoader(), sleep: noSleep });
    d.create('c', {});
    await d.freeze('c');
    expect(fs.writes.at(-1)).toEqual({ path: `/sys/fs/cgroup/${P}/c/cgroup.freeze`, value: '1' });
    expect(fs.get(`/sys/fs/cgroup/${P}/c/cgroup.events`)).toContain('frozen 1');
    await d.thaw('c');
    expect(fs.get(`/sys/fs/cgroup/${P}/c/cgroup.events`)).toContain('frozen 0');
  });
});

describe('isolation: destroy, list and orphan cleanup', () => {
  it('destroy retries EBUSY while tasks drain, then removes every directory', async () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    let sleeps = 0;
    const d = new CgroupDriver(fs, v1Layout(), P, {
      sleep: async () => {
        // The last task leaves the cgroups after the second retry.
        if (++sleeps === 2) for (const f of d.dirs('c')) fs.set(`${f}/cgroup.procs`, '');
      },
    });
    const { procsFiles } = d.create('c', {});
    for (const f of procsFiles) fs.cgroupWrite(f, '4242');
    await d.destroy('c');
    expect(sleeps).toBeGreaterThanOrEqual(2);
    for (const dir of d.dirs('c')) expect(fs.exists(dir)).toBe(false);
  });

  it('destroy gives EBUSY naming the processes still inside once the timeout passes; kills nothing', async () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P, { destroyTimeoutMs: 20 });
    const { procsFiles } = d.create('c', {});
    fs.cgroupWrite(procsFiles[3]!, '4242'); // the pids hierarchy
    await expect(d.destroy('c')).rejects.toMatchObject({
      code: 'EBUSY',
      step: 'cleanup',
      containerId: 'c',
      message: expect.stringContaining('processes still in it: 4242'),
    });
    // The other hierarchies are gone; the busy one stays for a later retry.
    expect(d.list()).toEqual(['c']);
    expect(fs.exists(`/sys/fs/cgroup/memory/${P}/c`)).toBe(false);
  });

  it('destroy removes cgroups the container made below its own, deepest first', async () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    d.create('c', {});
    fs.mkdir(`/sys/fs/cgroup/memory/${P}/c/inner/deeper`);
    await d.destroy('c');
    expect(fs.cgroupsUnder(`/sys/fs/cgroup/memory/${P}`)).toEqual([]);
  });

  it('list() sees full and partial leftovers; destroy() clears them; the parent can go', async () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    d.create('a', {});
    d.create('b', {});
    fs.mkdir(`/sys/fs/cgroup/pids/${P}/half-made`);
    // A fresh driver (a restarted runtime) sees them all.
    const again = new CgroupDriver(fs, v1Layout(), P);
    expect(again.list()).toEqual(['a', 'b', 'half-made']);
    for (const id of again.list()) await again.destroy(id);
    expect(again.list()).toEqual([]);
    again.removeParent();
    for (const m of ['cpu,cpuacct', 'memory', 'pids', 'unified']) expect(fs.exists(`/sys/fs/cgroup/${m}/${P}`)).toBe(false);
  });

  it('destroy of an id with no cgroup is a no-op', async () => {
    const d = new CgroupDriver(MemoryCgroupFs.forLayout(v1Layout()), v1Layout(), P);
    await expect(d.destroy('never')).resolves.toBeUndefined();
  });
});

describe('isolation: the mapping table', () => {
  it('covers every Resources field once and renders as markdown', () => {
    expect(RESOURCE_MAP.map((m) => m.resource).sort()).toEqual(
      [
        'blockIo', 'blockIoWeight', 'blockIoWeightDevice', 'cpuLimit', 'cpuPeriod', 'cpuRtPeriod', 'cpuRtRuntime', 'cpuWeight', 'cpusetCpus', 'cpusetMems', 'devices', 'hugetlb', 'memoryKernel', 'memoryKernelTcp',
        'memoryLimit', 'memoryOomKillDisable', 'memoryReservation', 'memorySwap', 'memorySwappiness', 'pidsLimit',
      ].sort(),
    );
    const md = renderMappingTable();
    const lines = md.split('\n');
    expect(lines[0]).toBe('| Resource | Controller (v1 name) | cgroup v1 file | v1 value | cgroup v2 file | v2 value |');
    expect(lines).toHaveLength(2 + RESOURCE_MAP.length);
    expect(md).toContain('| `cpuLimit` | cpu | `cpu.cfs_period_us, cpu.cfs_quota_us` |');
    expect(md).toContain('`memory.swap.max`');
    for (const l of lines) expect(l.split(/(?<!\\)\|/).length).toBe(8);
  });

  it('cpu.shares keeps the defaults aligned (weight 100 ↔ 1024 shares) and clamps to the kernel’s range', () => {
    expect(cpuWeightToShares(100)).toBe(1024);
    expect(cpuWeightToShares(1)).toBe(10);
    expect(cpuWeightToShares(10000)).toBe(102400);
    expect(cpuWeightToShares(50)).toBe(512);
  });
});

describe('isolation: the CFS period and the v1-only memory settings', () => {
  const hybridLayout = () => detectCgroups(HYBRID_MOUNTINFO, { v2Controllers: [] });

  it('v1: the period and quota as given, swappiness, oom_control, kmem limits after memory.limit_in_bytes', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    new CgroupDriver(fs, v1Layout(), P).create('k', {
      cpuLimit: 0.1,
      cpuPeriod: 500000,
      memoryLimit: 64 * MiB,
      memorySwappiness: 10,
      memoryOomKillDisable: true,
      memoryKernelTcp: 50593792,
      memoryKernel: 32 * MiB,
      devices: [],
    });
    const mine = writesSince(fs, 0).filter((w) => w.includes('/k/') && !w.includes('devices.'));
    expect(mine).toEqual([
      `cpu,cpuacct/${P}/k/cpu.cfs_period_us 500000`,
      `cpu,cpuacct/${P}/k/cpu.cfs_quota_us 50000`,
      `memory/${P}/k/memory.limit_in_bytes 67108864`,
      `memory/${P}/k/memory.kmem.limit_in_bytes 33554432`,
      `memory/${P}/k/memory.kmem.tcp.limit_in_bytes 50593792`,
      `memory/${P}/k/memory.swappiness 10`,
      `memory/${P}/k/memory.oom_control 1`,
    ]);
    expect(fs.get(`/sys/fs/cgroup/memory/${P}/k/memory.oom_control`)).toContain('oom_kill_disable 1');
  });

  it('a period alone: v1 writes cpu.cfs_period_us, v2 "max period"; a quota under 1 ms of the period is refused', () => {
    const f1 = MemoryCgroupFs.forLayout(v1Layout());
    new CgroupDriver(f1, v1Layout(), P).create('p', { cpuPeriod: 250000, devices: [] });
    expect(writesSince(f1, 0)).toContain(`cpu,cpuacct/${P}/p/cpu.cfs_period_us 250000`);
    const f2 = MemoryCgroupFs.forLayout(v2Layout());
    new CgroupDriver(f2, v2Layout(), P, { devicePrograms: new RecordingLoader() }).create('p', { cpuPeriod: 250000, devices: [] });
    expect(writesSince(f2, 0)).toContain(`${P}/p/cpu.max max 250000`);
    new CgroupDriver(f2, v2Layout(), P, { devicePrograms: new RecordingLoader() }).create('q', { cpuLimit: 0.1, cpuPeriod: 500000, devices: [] });
    expect(writesSince(f2, 0)).toContain(`${P}/q/cpu.max 50000 500000`);
    expect(() => new CgroupDriver(f1, v1Layout(), P).create('r', { cpuLimit: 0.0005, cpuPeriod: 1_000_000 })).toThrow(/cpuLimit: expected cores ≥ 0.001/);
    expect(() => new CgroupDriver(f1, v1Layout(), P).create('r', { cpuPeriod: 2_000_000 })).toThrow(/cpuPeriod: expected whole µs 1000..1000000/);
  });

  it('memory.kmem.limit_in_bytes is skipped where the kernel has none; the others are not', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    d.create('n', { devices: [] });
    fs.files.delete(`/sys/fs/cgroup/memory/${P}/n/memory.kmem.limit_in_bytes`);
    fs.files.delete(`/sys/fs/cgroup/memory/${P}/n/memory.kmem.tcp.limit_in_bytes`);
    const from = fs.writes.length;
    d.update('n', { memoryKernel: 32 * MiB, memorySwappiness: 5 });
    expect(writesSince(fs, from)).toEqual([`memory/${P}/n/memory.swappiness 5`]);
    // memory.kmem.tcp.limit_in_bytes is no optional file: its absence is the open's error.
    expect(() => d.update('n', { memoryKernelTcp: MiB })).toThrow(/memory.kmem.tcp.limit_in_bytes/);
  });

  it('update: oom_control turns back to 0, and a failed later write restores the flag (not the whole file)', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    d.create('o', { memoryOomKillDisable: true, devices: [] });
    const file = `/sys/fs/cgroup/memory/${P}/o/memory.oom_control`;
    d.update('o', { memoryOomKillDisable: false });
    expect(fs.get(file)).toContain('oom_kill_disable 0');
    fs.failOn('pids.max');
    expect(() => d.update('o', { memoryOomKillDisable: true, pidsLimit: 5 })).toThrow();
    expect(fs.get(file)).toContain('oom_kill_disable 0');
    expect(fs.writes.filter((w) => w.path === file).map((w) => w.value)).toEqual(['1', '0', '1', '0']);
  });

  it('v2 refuses each v1-only setting by name; disableOOMKiller false is no refusal', () => {
    const fs = MemoryCgroupFs.forLayout(v2Layout());
    const d = new CgroupDriver(fs, v2Layout(), P, { devicePrograms: new RecordingLoader() });
    for (const [r, re] of [
      [{ memorySwappiness: 10 }, /memorySwappiness: cgroup v2 has no memory.swappiness/],
      [{ memoryOomKillDisable: true }, /memoryOomKillDisable: cgroup v2 has no switch to disable the OOM killer/],
      [{ memoryKernelTcp: MiB }, /memoryKernelTcp: cgroup v2 has no kernel TCP memory limit/],
      [{ memoryKernel: MiB }, /memoryKernel: cgroup v2 has no kernel memory limit/],
    ] as const) {
      expect(() => d.create('v', { ...r, devices: [] })).toThrow(re);
    }
    expect(() => d.create('v', { memoryOomKillDisable: false, devices: [] })).not.toThrow();
  });

  it('real-time group scheduling: v1 writes cpu.rt_period_us before cpu.rt_runtime_us where the kernel has them; v2 refuses', () => {
    const fs = MemoryCgroupFs.forLayout(v1Layout());
    const d = new CgroupDriver(fs, v1Layout(), P);
    expect(() => d.create('rt', { cpuRtPeriod: 1_000_000, cpuRtRuntime: 10_000, devices: [] })).toThrow(/cpu.rt_period_us does not exist on this kernel/);
    d.create('rt2', { devices: [] });
    for (const f of ['cpu.rt_period_us', 'cpu.rt_runtime_us']) fs.set(`/sys/fs/cgroup/cpu,cpuacct/${P}/rt2/${f}`, '0');
    const from = fs.writes.length;
    d.update('rt2', { cpuRtRuntime: 10_000, cpuRtPeriod: 1_000_000 });
    expect(writesSince(fs, from)).toEqual([`cpu,cpuacct/${P}/rt2/cpu.rt_period_us 1000000`, `cpu,cpuacct/${P}/rt2/cpu.rt_runtime_us 10000`]);
    const f2 = MemoryCgroupFs.forLayout(v2Layout());
    expect(() => new CgroupDriver(f2, v2Layout(), P, { devicePrograms: new RecordingLoader() }).create('rt', { cpuRtRuntime: 10_000, devices: [] })).toThrow(
      /cpuRtRuntime: cgroup v2 has no real-time group scheduling \(the cpu controller here is v2\)/,
    );
  });

  it('a hybrid host with memory on v1 writes them to the v1 memory hierarchy', () => {
    const layout = hybridLayout();
    const fs = MemoryCgroupFs.forLayout(layout);
    new CgroupDriver(fs, layout, P).create('h', { memorySwappiness: 10, devices: [] });
    expect(writesSince(fs, 0)).toContain(`memory/${P}/h/memory.swappiness 10`);
  });
});
