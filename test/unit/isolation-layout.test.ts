import { describe, expect, it } from 'vitest';
import { detectCgroups, hierarchies, parseMountinfo } from '../../src/isolation/index.js';

/** This project's CI VM (Linux 6.18, Firecracker), /proc/self/mountinfo as read on 2026-11-27. */
const HYBRID_CI_VM = `22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334460k,nr_inodes=3083615,mode=755
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

/** A systemd host booted with the unified hierarchy only (Fedora 31+, Debian 11+, Ubuntu 21.10+). */
const PURE_V2 = `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
1 0 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

/** A legacy systemd host (CentOS 7 style): cpu and cpuacct co-mounted, net_cls,net_prio too. */
const PURE_V1 = `25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 25 0:24 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,net_cls,net_prio
29 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:27 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpuset
32 25 0:28 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,devices
33 25 0:29 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,freezer
34 25 0:30 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,blkio
35 25 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,pids
36 25 0:32 / /sys/fs/cgroup/hugetlb rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,hugetlb
37 25 0:33 / /sys/fs/cgroup/perf_event rw,nosuid,nodev,noexec,relatime shared:21 - cgroup cgroup rw,perf_event
`;

/** systemd's "hybrid" mode (Ubuntu 20.04): every controller on v1, an empty unified tree for tracking. */
const SYSTEMD_HYBRID = `${PURE_V1}38 25 0:34 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:11 - cgroup2 cgroup2 rw,nsdelegate
`;

describe('isolation: mountinfo parsing', () => {
  it('reads the fields around the optional-fields separator and unescapes octal', () => {
    const [m] = parseMountinfo('36 25 0:32 /a\\040b /mnt/with\\040space rw,relatime shared:20 master:1 - overlay none rw,upperdir=/u,lowerdir=/l\n');
    expect(m).toMatchObject({
      id: 36,
      parentId: 25,
      device: '0:32',
      root: '/a b',
      mountPoint: '/mnt/with space',
      fsType: 'overlay',
      source: 'none',
      superOptions: ['rw', 'upperdir=/u', 'lowerdir=/l'],
    });
  });

  it('skips lines it cannot read', () => {
    expect(parseMountinfo('garbage\n\n1 2 3\n')).toEqual([]);
  });
});

describe('isolation: layout detection', () => {
  it('hybrid CI VM: v1 for every v1-mounted controller (cpu and cpuacct apart), v2 for hugetlb', () => {
    const l = detectCgroups(HYBRID_CI_VM);
    expect(l.controllers.cpu).toEqual({ version: 1, mount: '/sys/fs/cgroup/cpu' });
    expect(l.controllers.cpuacct).toEqual({ version: 1, mount: '/sys/fs/cgroup/cpuacct' });
    for (const c of ['cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'] as const) {
      expect(l.controllers[c]).toEqual({ version: 1, mount: `/sys/fs/cgroup/${c}` });
    }
    expect(l.controllers.hugetlb).toEqual({ version: 2, mount: '/sys/fs/cgroup/unified' });
    expect(l.v2?.controllers).toContain('hugetlb');
    expect(l.v2?.controllers).not.toContain('memory');
    // The named systemd hierarchy carries no controller and gets no directory.
    expect(hierarchies(l).map((h) => h.mount)).toEqual([
      '/sys/fs/cgroup/cpu',
      '/sys/fs/cgroup/cpuacct',
      '/sys/fs/cgroup/cpuset',
      '/sys/fs/cgroup/memory',
      '/sys/fs/cgroup/pids',
      '/sys/fs/cgroup/blkio',
      '/sys/fs/cgroup/devices',
      '/sys/fs/cgroup/freezer',
      '/sys/fs/cgroup/unified',
    ]);
  });

  it('hybrid with the real cgroup.controllers: the given list wins over inference', () => {
    const l = detectCgroups(HYBRID_CI_VM, { v2Controllers: [] });
    expect(l.controllers.hugetlb).toBeUndefined();
    expect(l.controllers.freezer?.version).toBe(1);
  });

  it('pure v2: every controller on the unified tree, freezer and devices through the core', () => {
    const l = detectCgroups(PURE_V2, { v2Controllers: ['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma', 'misc'] });
    for (const c of ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'devices', 'freezer', 'hugetlb'] as const) {
      expect(l.controllers[c]).toEqual({ version: 2, mount: '/sys/fs/cgroup' });
    }
    expect(l.v1).toEqual({});
    expect(hierarchies(l)).toEqual([{ version: 2, mount: '/sys/fs/cgroup' }]);
  });

  it('pure v2 without cgroup.controllers infers every v2 controller', () => {
    const l = detectCgroups(PURE_V2);
    expect(l.v2?.controllers.sort()).toEqual(['cpu', 'cpuset', 'hugetlb', 'io', 'memory', 'misc', 'pids', 'rdma']);
  });

  it('pure v1: co-mounted cpu,cpuacct share one hierarchy; no v2', () => {
    const l = detectCgroups(PURE_V1);
    expect(l.v2).toBeUndefined();
    expect(l.controllers.cpu).toEqual({ version: 1, mount: '/sys/fs/cgroup/cpu,cpuacct' });
    expect(l.controllers.cpuacct).toEqual({ version: 1, mount: '/sys/fs/cgroup/cpu,cpuacct' });
    expect(l.controllers.hugetlb).toEqual({ version: 1, mount: '/sys/fs/cgroup/hugetlb' });
    expect(hierarchies(l).filter((h) => h.mount === '/sys/fs/cgroup/cpu,cpuacct')).toHaveLength(1);
    expect(hierarchies(l)).toHaveLength(8);
  });

  it('systemd hybrid: everything on v1, the unified tree still gets a directory for tracking', () => {
    const l = detectCgroups(SYSTEMD_HYBRID, { v2Controllers: [] });
    for (const c of ['cpu', 'memory', 'freezer', 'devices', 'hugetlb'] as const) expect(l.controllers[c]?.version).toBe(1);
    expect(hierarchies(l).at(-1)).toEqual({ version: 2, mount: '/sys/fs/cgroup/unified' });
  });

  it('no cgroups mounted at all', () => {
    const l = detectCgroups('27 1 254:0 / / rw - ext4 /dev/vda rw\n');
    expect(l.controllers).toEqual({});
    expect(hierarchies(l)).toEqual([]);
  });
});
