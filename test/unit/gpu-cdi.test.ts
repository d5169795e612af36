/**
 * CDI: spec files (JSON and YAML) parsed and validated with field paths, names resolved with
 * directory priority and conflicts, edits merged with host nodes' numbers — all without root.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { skipBecause } from '../helpers/skip.js';
import { ConfigError, RuntimeError } from '../../src/errors.js';
import { mergeEdits, splitDev, type StatNode } from '../../src/gpu/cdi/apply.js';
import { ownDeviceNodes } from '../../src/gpu/cdi/nodes.js';
import { attachNetDevices, detachNetDevices } from '../../src/gpu/cdi/netdev.js';
import { joinRdt, leaveRdt, planRdt, resctrlRoot } from '../../src/gpu/cdi/rdt.js';
import { CdiRegistry, editSources } from '../../src/gpu/cdi/registry.js';
import { parseQualifiedName, parseSpec } from '../../src/gpu/cdi/spec.js';

const YAML_SPEC = `
cdiVersion: "0.6.0"
kind: nvidia.com/gpu
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
  - name: GPU-fake-0
    containerEdits:
      deviceNodes:
        - path: /dev/nvidia0
containerEdits:
  env: [NVIDIA_VISIBLE_DEVICES=void]
  deviceNodes:
    - path: /dev/nvidiactl
  mounts:
    - hostPath: /usr/lib/libcuda.so.1
      containerPath: /usr/lib/libcuda.so.1
      options: [ro, nosuid, nodev, bind]
  hooks:
    - hookName: createContainer
      path: /usr/bin/nvidia-ctk
      args: [nvidia-ctk, hook, update-ldcache]
`;

const nodes: Record<string, { type: 'c'; major: number; minor: number }> = {
  '/dev/nvidia0': { type: 'c', major: 195, minor: 0 },
  '/dev/nvidia1': { type: 'c', major: 195, minor: 1 },
  '/dev/nvidiactl': { type: 'c', major: 195, minor: 255 },
};
const stat: StatNode = (p) => nodes[p];

let dirs: string[];
beforeEach(() => {
  const root = fs.mkdtempSync(join(tmpdir(), 'ss-cdi-'));
  dirs = [join(root, 'etc'), join(root, 'run')];
  for (const d of dirs) fs.mkdirSync(d);
});
afterEach(() => {
  for (const d of dirs) fs.rmSync(join(d, '..'), { recursive: true, force: true });
});

describe('CDI specs', () => {
  it('reads YAML and JSON specs and resolves names, "all" and UUID names included', () => {
    fs.writeFileSync(join(dirs[0]!, 'nvidia.yaml'), YAML_SPEC);
    fs.writeFileSync(join(dirs[0]!, 'vendor.json'), JSON.stringify({ cdiVersion: '1.0.0', kind: 'vendor.com/dev', devices: [{ name: 'a', containerEdits: { env: ['A=1'] } }, { name: 'b', containerEdits: { env: ['B=1'] } }] }));
    const r = CdiRegistry.load(dirs);
    expect(r.errors).toEqual([]);
    expect(r.kinds()).toEqual(['nvidia.com/gpu', 'vendor.com/dev']);
    expect(r.resolve(['nvidia.com/gpu=GPU-fake-0']).map((d) => d.qualified)).toEqual(['nvidia.com/gpu=GPU-fake-0']);
    expect(r.resolve(['vendor.com/dev=all']).map((d) => d.qualified)).toEqual(['vendor.com/dev=a', 'vendor.com/dev=b']);
    const applied = mergeEdits(editSources(r.resolve(['nvidia.com/gpu=0', 'nvidia.com/gpu=GPU-fake-0'])), stat);
    expect(applied.deviceNodes.map((n) => n.path)).toEqual(['/dev/nvidia0', '/dev/nvidiactl']);
    expect(applied.rules).toEqual([
      { allow: true, type: 'c', major: 195, minor: 0, access: 'rwm' },
      { allow: true, type: 'c', major: 195, minor: 255, access: 'rwm' },
    ]);
    expect(applied.mounts).toEqual([{ source: '/usr/lib/libcuda.so.1', target: '/usr/lib/libcuda.so.1', readOnly: true }]);
    expect(applied.env).toEqual(['NVIDIA_VISIBLE_DEVICES=void']);
    expect(applied.hooks).toEqual([{ hookName: 'createContainer', path: '/usr/bin/nvidia-ctk', args: ['nvidia-ctk', 'hook', 'update-ldcache'], env: undefined, timeout: undefined }]);
  });

  it('names every invalid field of a spec, with its path', () => {
    const bad = { cdiVersion: '0.2.0', kind: 'nokind', devices: [{ name: '-x', containerEdits: { deviceNodes: [{ path: 'dev/x', permissions: 'rwx' }], hooks: [{ hookName: 'prestart', path: '/bin/true', timeout: 0 }] } }] };
    const e = (() => {
      try {
        parseSpec(JSON.stringify(bad), '/etc/cdi/bad.json');
      } catch (err) {
        return err;
      }
    })() as ConfigError;
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.fields()).toEqual([
      'cdiVersion',
      'kind',
      'devices[0].name',
      'devices[0].containerEdits.deviceNodes[0].permissions',
      'devices[0].containerEdits.deviceNodes[0].path',
      'devices[0].containerEdits.hooks[0].hookName',
      'devices[0].containerEdits.hooks[0].timeout',
    ]);
    expect(e.message).toMatch(/^CDI spec \/etc\/cdi\/bad\.json: cdiVersion: version 0\.2\.0 is not supported/);
    expect(() => parseSpec('devices: [', '/etc/cdi/x.yaml')).toThrow(/x\.yaml: \(document\): not valid YAML/);
  });

  it('a later directory overrides an earlier one; two files of one directory conflict; a broken file is named when a device is missing', () => {
    const spec = (env: string) => JSON.stringify({ cdiVersion: '0.5.0', kind: 'vendor.com/dev', devices: [{ name: 'a', containerEdits: { env: [env] } }] });
    fs.writeFileSync(join(dirs[0]!, 'a.json'), spec('X=etc'));
    fs.writeFileSync(join(dirs[1]!, 'a.json'), spec('X=run'));
    expect(mergeEdits(editSources(CdiRegistry.load(dirs).resolve(['vendor.com/dev=a'])), stat).env).toEqual(['X=run']);
    fs.writeFileSync(join(dirs[1]!, 'b.json'), spec('X=other'));
    fs.writeFileSync(join(dirs[1]!, 'c.yaml'), 'cdiVersion: [');
    const r = CdiRegistry.load(dirs);
    expect(() => r.resolve(['vendor.com/dev=a'])).toThrow(/devices\[0\]: vendor\.com\/dev=a is defined by more than one spec: .*run\/a\.json, .*run\/b\.json/);
    const missing = (() => {
      try {
        r.resolve(['vendor.com/dev=a', 'vendor.com/dev=zz'].slice(1));
      } catch (e) {
        return e as RuntimeError;
      }
    })();
    expect(missing).toMatchObject({ code: 'ENOTFOUND' });
    expect(missing!.message).toMatch(/devices\[0\]: vendor\.com\/dev has no device "zz" \(it has a\).*unreadable specs: CDI spec .*c\.yaml/);
    expect(() => r.resolve(['nvidia.com/gpu=0'])).toThrow(/no CDI spec defines kind nvidia\.com\/gpu/);
    expect(() => r.resolve(['gpu0'])).toThrow(/devices\[0\]: "gpu0" is not a fully-qualified CDI device name/);
  });

  it('edits that disagree are a conflict naming both origins; a node the host lacks or with other numbers is an error', () => {
    const src = (origin: string, edits: object) => ({ origin, edits });
    expect(() => mergeEdits([src('a', { env: ['X=1'] }), src('b', { env: ['X=2'] })], stat)).toThrow(/conflict: X is "1" and "2" \(from a and from b\)/);
    expect(() => mergeEdits([src('a', { deviceNodes: [{ path: '/dev/g', hostPath: '/dev/nvidia0' }] }), src('b', { deviceNodes: [{ path: '/dev/g', hostPath: '/dev/nvidia1' }] })], stat)).toThrow(
      /device node \/dev\/g is \/dev\/nvidia0 and \/dev\/nvidia1 \(from a and from b\)/,
    );
    expect(() => mergeEdits([src('a', { mounts: [{ hostPath: '/x', containerPath: '/y' }] }), src('b', { mounts: [{ hostPath: '/z', containerPath: '/y' }] })], stat)).toThrow(/mount \/y is \/x and \/z/);
    expect(() => mergeEdits([src('a', { deviceNodes: [{ path: '/dev/nvidia7' }] })], stat)).toThrow(/a: deviceNodes\[0\]: host node \/dev\/nvidia7 does not exist/);
    expect(() => mergeEdits([src('a', { deviceNodes: [{ path: '/dev/nvidia0', major: 10 }] })], stat)).toThrow(/deviceNodes\[0\]\.major: the spec says 10 but host node \/dev\/nvidia0 has 195/);
    expect(() => mergeEdits([src('a', { mounts: [{ hostPath: '/x', containerPath: '/y', type: 'tmpfs' }] })], stat)).toThrow(/only bind mounts are supported/);
    const ok = mergeEdits([src('a', { deviceNodes: [{ path: '/dev/nvidia0', permissions: 'rw' }], additionalGids: [44, 0, 44] })], stat);
    expect(ok.rules).toEqual([{ allow: true, type: 'c', major: 195, minor: 0, access: 'rw' }]);
    expect(ok.additionalGids).toEqual([44]);
  });

  it('qualified names and dev_t', () => {
    expect(parseQualifiedName('nvidia.com/gpu=0:1')).toEqual({ kind: 'nvidia.com/gpu', name: '0:1' });
    expect(parseQualifiedName('nvidia.com/gpu')).toBeUndefined();
    expect(parseQualifiedName('nvidia.com/a/b=0')).toBeUndefined();
    expect(splitDev(fs.statSync('/dev/null').rdev)).toEqual({ major: 1, minor: 3 });
  });
});

describe.skipIf(skipBecause(process.getuid?.() !== 0 && 'mknod needs root: run the suite as root', 'CDI nodes with their own mode and owner'))('CDI nodes with their own mode and owner (root: mknod)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'ss-nodes-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const run = async (file: string, args: readonly string[]) => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(file, args, { encoding: 'utf8' });
    return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
  };

  it('a node with its own mode or owner is made afresh, ids mapped into the user namespace range; others are bound as they are', async () => {
    const own = { type: 'c' as const, major: 1, minor: 3, fileMode: 0o600, uid: 1234, gid: 5 };
    const out = await ownDeviceNodes([{ hostPath: '/dev/zero', path: '/dev/zero' }, { hostPath: '/dev/null', path: '/dev/mine', own }], dir, { hostId: 100000, size: 65536 }, run);
    expect(out).toEqual([{ hostPath: '/dev/zero', path: '/dev/zero' }, { hostPath: join(dir, 'node1'), path: '/dev/mine' }]);
    const st = fs.statSync(join(dir, 'node1'));
    expect([st.isCharacterDevice(), splitDev(st.rdev), st.mode & 0o7777, st.uid, st.gid]).toEqual([true, { major: 1, minor: 3 }, 0o600, 101234, 100005]);
    expect(fs.statSync('/dev/null').mode & 0o777).toBe(0o666);
    // Again (a respawn): the same node, made anew.
    await ownDeviceNodes([{ hostPath: '/dev/null', path: '/dev/mine', own: { ...own, uid: undefined } }], dir, undefined, run);
    expect(fs.statSync(join(dir, 'node0')).uid).toBe(0);
    await expect(ownDeviceNodes([{ hostPath: '/dev/null', path: '/dev/mine', own: { ...own, uid: 70000 } }], dir, { hostId: 100000, size: 65536 }, run)).rejects.toThrow(
      "devices: /dev/mine.uid: 70000 is outside the container's 65536 ids",
    );
  });
});

describe('CDI intelRdt and netDevices', () => {
  it('the spec fields are validated, each problem with its path', () => {
    const spec = (edits: object) => JSON.stringify({ cdiVersion: '1.1.0', kind: 'v.com/x', devices: [{ name: 'a', containerEdits: edits }] });
    const ok = parseSpec(spec({ netDevices: [{ hostInterfaceName: 'eth1', name: 'net0' }], intelRdt: { closID: 'gold', l3CacheSchema: 'L3:0=f', schemata: ['MB:0=50'], enableMonitoring: true } }), 'x.json');
    expect(ok.devices[0]!.containerEdits.netDevices).toEqual([{ hostInterfaceName: 'eth1', name: 'net0' }]);
    expect(ok.devices[0]!.containerEdits.intelRdt).toMatchObject({ closID: 'gold', l3CacheSchema: 'L3:0=f', schemata: ['MB:0=50'], enableMonitoring: true });
    expect(() => parseSpec(spec({ netDevices: [{ hostInterfaceName: 'a/b', name: 'waytoolonginterface' }], intelRdt: { closID: '..', enableMonitoring: 'yes' } }), 'x.json')).toThrow(
      /devices\[0\]\.containerEdits\.netDevices\[0\]\.hostInterfaceName: expected a network interface name[\s\S]*netDevices\[0\]\.name: expected[\s\S]*intelRdt\.closID: expected a resctrl group name[\s\S]*intelRdt\.enableMonitoring: expected true or false/,
    );
  });

  it('resctrl is found in mountinfo; without it intelRdt is refused naming the field', () => {
    const info = '25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw\n40 25 0:35 / /sys/fs/resctrl rw,relatime - resctrl resctrl rw\n';
    expect(resctrlRoot(info)).toBe('/sys/fs/resctrl');
    expect(planRdt({ closID: 'gold', l3CacheSchema: 'L3:0=f', memBwSchema: 'MB:0=50' }, 'v.com/x=a (x.json)', 'c1', info)).toEqual({ group: '/sys/fs/resctrl/gold', own: false, schemata: ['L3:0=f', 'MB:0=50'], origin: 'v.com/x=a (x.json)' });
    expect(planRdt({}, 'o', 'c1', info)).toMatchObject({ group: '/sys/fs/resctrl/c1', own: true });
    expect(() => planRdt({ closID: 'gold' }, 'v.com/x=a (x.json)', 'c1', info.split('\n')[0]!)).toThrow(/^devices: v\.com\/x=a \(x\.json\): intelRdt\.closID: resctrl is not mounted/);
  });

  it('joining makes the group, writes its schemata and the pid; a group of its own is removed after', () => {
    const root = fs.mkdtempSync(join(tmpdir(), 'ss-resctrl-'));
    try {
      const p = planRdt({ memBwSchema: 'MB:0=40' }, 'o', 'c1', `40 25 0:35 / ${root} rw - resctrl resctrl rw\n`);
      joinRdt(p, 4242);
      expect(fs.readFileSync(join(root, 'c1/tasks'), 'utf8')).toBe('4242\n');
      expect(fs.readFileSync(join(root, 'c1/schemata'), 'utf8')).toBe('MB:0=40\n');
      fs.rmSync(join(root, 'c1/tasks'));
      fs.rmSync(join(root, 'c1/schemata'));
      leaveRdt(p);
      expect(fs.existsSync(join(root, 'c1'))).toBe(false);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('CDI network devices, as ip commands', () => {
  const fake = (names: Record<string, number>) => {
    const calls: string[] = [];
    return {
      calls,
      host: { has: (n: string) => n in names, ifindex: (n: string) => names[n] },
      run: async (file: string, args: readonly string[]) => {
        calls.push([file, ...args].join(' '));
        return { status: 0, stdout: '', stderr: '' };
      },
    };
  };

  it('moves and renames in one request; after the namespace died, a returned interface is found by its index', async () => {
    const f = fake({ eth1: 7 });
    const devs = [{ hostInterfaceName: 'eth1', name: 'net0', origin: 'o' }];
    await attachNetDevices(devs, 42, f.run, f.host);
    expect(f.calls).toEqual(['ip link set dev eth1 netns 42 name net0']);
    expect(devs[0]).toMatchObject({ ifindex: 7 });
    // The init ended: the kernel gave eth1 back as net0. A removal renames it back; a restart takes it under net0.
    const back = fake({ net0: 7 });
    await detachNetDevices(devs, undefined, back.run, back.host);
    await attachNetDevices(devs, 43, back.run, back.host);
    expect(back.calls).toEqual(['ip link set dev net0 name eth1', 'ip link set dev net0 netns 43 name net0']);
    // An unrelated host interface that happens to be called net0 is left alone.
    const other = fake({ net0: 99 });
    await detachNetDevices(devs, undefined, other.run, other.host);
    expect(other.calls).toEqual([]);
    const live = fake({});
    await detachNetDevices(devs, 43, live.run, live.host);
    expect(live.calls).toEqual(['nsenter --target 43 --net -- ip link set dev net0 netns 1 name eth1']);
  });
});
