/**
 * A container's cgroup placed at a path of its own (create's `path`, OCI linux.cgroupsPath):
 * made there on every hierarchy, its missing ancestors prepared as the runtime's parent is,
 * found again by a driver that did not make it, removed on destroy; a bad path refused.
 */
import { describe, expect, it } from 'vitest';
import { RuntimeError } from '../../src/errors.js';
import { CgroupDriver, MemoryCgroupFs, detectCgroups } from '../../src/isolation/index.js';
import { checkPlacement } from '../../src/isolation/placement.js';

const HYBRID_MOUNTINFO = [
  ...['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'].map((c, i) => `${32 + i} 31 0:${29 + i} / /sys/fs/cgroup/${c} rw,relatime - cgroup cgroup rw,${c}`),
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');
const V2_MOUNTINFO = '30 24 0:26 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw,nsdelegate';
const noSleep = async () => {};

describe('isolation: a cgroup placed at its own path', () => {
  it('hybrid: made at the path on every hierarchy, cpusets filled on the way, limits there; destroy removes only it', async () => {
    const layout = detectCgroups(HYBRID_MOUNTINFO, { v2Controllers: ['hugetlb'] });
    const fs = MemoryCgroupFs.forLayout(layout);
    const d = new CgroupDriver(fs, layout, 'stratoswarm', { sleep: noSleep });
    const made = d.create('c1', { pidsLimit: 7 }, { path: 'pods/p1/ctr' });
    expect(made.dirs).toEqual(['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'devices', 'freezer', 'unified'].map((h) => `/sys/fs/cgroup/${h}/pods/p1/ctr`));
    expect(made.procsFiles[0]).toBe('/sys/fs/cgroup/cpu/pods/p1/ctr/cgroup.procs');
    expect(fs.get('/sys/fs/cgroup/pids/pods/p1/ctr/pids.max')).toBe('7');
    expect(fs.get('/sys/fs/cgroup/cpuset/pods/p1/cpuset.cpus')).toBe('0-1');
    expect(fs.get('/sys/fs/cgroup/cpuset/pods/p1/ctr/cpuset.mems')).toBe('0');
    // Nothing under the runtime's parent, and the driver's own listing leaves it out.
    expect(fs.exists('/sys/fs/cgroup/pids/stratoswarm/c1')).toBe(false);
    expect(d.list()).toEqual([]);
    d.update('c1', { pidsLimit: 9 });
    expect(fs.get('/sys/fs/cgroup/pids/pods/p1/ctr/pids.max')).toBe('9');
    // Another driver (another process) finds it through the placement lookup.
    const other = new CgroupDriver(fs, layout, 'stratoswarm', { sleep: noSleep, placement: (id) => (id === 'c1' ? 'pods/p1/ctr' : undefined) });
    expect(other.dirs('c1')).toEqual(made.dirs);
    expect(other.dirs('c2')[0]).toBe('/sys/fs/cgroup/cpu/stratoswarm/c2');
    await other.destroy('c1');
    for (const dir of made.dirs) expect(fs.exists(dir)).toBe(false);
    expect(fs.exists('/sys/fs/cgroup/pids/pods/p1')).toBe(true);
  });

  it('right under a hierarchy root: the v1 cpuset is filled from the root; v2 enables the controllers at the root', () => {
    const layout = detectCgroups(V2_MOUNTINFO, { v2Controllers: ['cpu', 'memory', 'pids'] });
    const fs = MemoryCgroupFs.forLayout(layout, { rootSubtreeControl: [] });
    const d = new CgroupDriver(fs, layout, 'stratoswarm', { devicePrograms: { attachDeviceProgram: () => undefined } });
    d.create('c1', { pidsLimit: 5 }, { path: 'ctr-at-root' });
    expect(fs.get('/sys/fs/cgroup/cgroup.subtree_control')!.split(' ').sort()).toEqual(['cpu', 'memory', 'pids']);
    expect(fs.get('/sys/fs/cgroup/ctr-at-root/pids.max')).toBe('5');
    const hybrid = detectCgroups(HYBRID_MOUNTINFO, { v2Controllers: [] });
    const hfs = MemoryCgroupFs.forLayout(hybrid);
    new CgroupDriver(hfs, hybrid, 'stratoswarm').create('c2', {}, { path: 'top' });
    expect(hfs.get('/sys/fs/cgroup/cpuset/top/cpuset.cpus')).toBe('0-1');
    expect(hfs.get('/sys/fs/cgroup/cpuset/cgroup.clone_children') ?? '0').toBe('0');
  });

  it('a bad path is refused before anything is made; a path in use is EEXIST and the placement is not kept', () => {
    for (const bad of ['', 'a//b', 'a/../b', './a', 'a b', 'a/'])
      expect(() => checkPlacement(bad, 'linux.cgroupsPath'), bad).toThrow(/linux\.cgroupsPath .*expected a cgroup path/);
    const layout = detectCgroups(HYBRID_MOUNTINFO, { v2Controllers: [] });
    const fs = MemoryCgroupFs.forLayout(layout);
    const d = new CgroupDriver(fs, layout, 'stratoswarm');
    const before = fs.writes.length;
    expect(() => d.create('c1', {}, { path: 'x/../y' })).toThrow(RuntimeError);
    expect(fs.writes.length).toBe(before);
    d.create('c1', {}, { path: 'taken' });
    expect(() => d.create('c2', {}, { path: 'taken' })).toThrow(/exists already/);
    expect(d.dirs('c2')[0]).toBe('/sys/fs/cgroup/cpu/stratoswarm/c2');
  });
});
