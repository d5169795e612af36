/**
 * The OCI config.json translation without root: what each field becomes, and the errors
 * that name a field this runtime does not carry out.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { translateConfig, type HostFacts } from '../../src/oci/config.js';
import { compileCreatePlan } from '../../src/plan/encode.js';
import { personalityResources } from '../../src/oci/personality.js';
import { cgroupPlacement } from '../../src/oci/plan.js';
import { sysctlProblem } from '../../src/oci/sysctl.js';

const host: HostFacts = {
  cgroupHierarchies: () => [
    { name: 'memory', type: 'cgroup', data: 'memory' },
    { name: 'systemd', type: 'cgroup', data: 'none,name=systemd' },
    { name: 'unified', type: 'cgroup2', data: '' },
  ],
  deviceExists: (p) => p === '/dev/fuse',
  pathKind: (p) => (p === '/etc/hosts' ? 'file' : p.startsWith('/srv') ? 'directory' : undefined),
};

const base = (): Record<string, any> => ({
  ociVersion: '1.0.2',
  root: { path: 'rootfs' },
  process: { args: ['sh'], cwd: '/', env: ['PATH=/bin'] },
  linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }, { type: 'network' }] },
});

/** A create plan's input for a bundle with no mounts. */
const createInput = () => ({
  cgroupProcs: [], stateDir: '/s', rootfs: '/m', lowerDirs: [], upperDir: '', workDir: '', stdout: '/o', stderr: '/e', network: 'none' as const, hostname: '', volumes: [],
  security: { maskedPaths: [], readonlyPaths: [], readonlyRoot: false },
  rootfsDir: '/bundle/rootfs',
});

function problems(config: unknown): string[] {
  try {
    translateConfig('/b', config, host);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems.map((p) => `${p.field}: ${p.problem}`);
    throw e;
  }
  return [];
}

describe('OCI config.json translation', () => {
  it('maps the process, user, capabilities, rlimits and the rootfs relative to the bundle', () => {
    const c = base();
    c.process.user = { uid: 5, gid: 6, additionalGids: [7, 6] };
    c.process.capabilities = { bounding: ['CAP_KILL', 'NET_ADMIN'], effective: ['CAP_KILL'] };
    c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 10, hard: 20 }];
    c.process.noNewPrivileges = true;
    c.root.readonly = true;
    const t = translateConfig('/b', c, host);
    expect(t.rootfs).toBe('/b/rootfs');
    expect(t.readonlyRoot).toBe(true);
    expect(t.process.user).toEqual({ uid: 5, gid: 6, groups: [6, 7] });
    expect(t.security.capabilities.bounding).toBe((1n << 5n) | (1n << 12n));
    expect(t.security.capabilities.effective).toBe(1n << 5n);
    expect(t.security.rlimits).toEqual([{ name: 'RLIMIT_NOFILE', resource: 7, soft: 10n, hard: 20n }]);
    expect(t.security.noNewPrivileges).toBe(true);
    expect(t.network).toBe('none');
  });

  it('capabilities that are no capability, or that this runtime cannot grant, are left out with a warning naming the set (runtime-spec 1.1+)', () => {
    const c = base();
    c.process.capabilities = { bounding: ['CAP_KILL', 'CAP_TEST', 'CAP_SYS_RESOURCE'], effective: ['CAP_SYS_RESOURCE', 'CAP_KILL'] };
    const withoutSysResource: HostFacts = { ...host, boundingSet: () => ~(1n << 24n) & ((1n << 41n) - 1n) };
    const t = translateConfig('/b', c, withoutSysResource);
    expect(t.security.capabilities.bounding).toBe(1n << 5n);
    expect(t.security.capabilities.effective).toBe(1n << 5n);
    expect(t.warnings).toEqual([
      'process.capabilities.bounding: ignoring CAP_TEST: not a capability',
      "process.capabilities.bounding: ignoring CAP_SYS_RESOURCE: not in this runtime's bounding set, so it cannot be granted",
      "process.capabilities.effective: ignoring CAP_SYS_RESOURCE: not in this runtime's bounding set, so it cannot be granted",
    ]);
    // A host that is not asked about its bounding set grants every known capability.
    expect(translateConfig('/b', c, host).warnings).toEqual(['process.capabilities.bounding: ignoring CAP_TEST: not a capability']);
    // What is not a list of names stays an error.
    c.process.capabilities = { bounding: 'CAP_KILL' };
    expect(problems(c)).toEqual(['process.capabilities.bounding: expected a list of capability names']);
  });

  it('mounts: binds (files too), options as flags or data, cgroup as one mount per host hierarchy', () => {
    const c = base();
    c.mounts = [
      { destination: '/etc/hosts', type: 'bind', source: '/etc/hosts', options: ['rbind', 'ro', 'rprivate'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755', 'size=65536k'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro'] },
    ];
    const m = translateConfig('/b', c, host).mounts;
    expect(m[0]).toMatchObject({ kind: 'bind', source: '/etc/hosts', target: '/etc/hosts', isFile: true, flags: 4096 | 16384 | 1 });
    expect(m[1]).toMatchObject({ kind: 'fs', fstype: 'tmpfs', data: 'mode=755,size=65536k', flags: 2 });
    expect(m.slice(2).map((x) => `${x.target} ${x.fstype} ${x.data}`)).toEqual([
      '/sys/fs/cgroup tmpfs mode=755',
      '/sys/fs/cgroup/memory cgroup memory',
      '/sys/fs/cgroup/systemd cgroup none,name=systemd',
      '/sys/fs/cgroup/unified cgroup2 ',
    ]);
  });

  it('resources, hooks, annotations and sysctl', () => {
    const c = base();
    c.linux.resources = { memory: { limit: 1 << 26, reservation: 1 << 25 }, cpu: { quota: 50000, period: 100000, shares: 512, cpus: '0' }, pids: { limit: 9 }, devices: [{ allow: false, access: 'rwm' }] };
    c.hooks = { prestart: [{ path: '/bin/a' }], poststop: [{ path: '/bin/b', args: ['b', '1'], timeout: 3 }] };
    c.annotations = { 'io.stratoswarm.personality': 'Explorer', 'io.stratoswarm.restart': 'on-failure' };
    c.linux.sysctl = { 'net.ipv4.ip_forward': '1' };
    const t = translateConfig('/b', c, host);
    expect(t.resources).toEqual({ memoryLimit: 1 << 26, memoryReservation: 1 << 25, cpuLimit: 0.5, cpuPeriod: 100000, cpuWeight: 50, cpusetCpus: '0', pidsLimit: 9, devices: [{ allow: false, type: 'a', access: 'rwm' }] });
    expect(t.hooks.createRuntime).toEqual([{ path: '/bin/a', args: undefined, env: undefined, timeout: undefined }]);
    expect(t.hooks.poststop?.[0]?.timeout).toBe(3);
    expect(t.personality).toBe('Explorer');
    expect(t.restart).toBe('on-failure');
    expect(t.sysctl).toEqual({ 'net.ipv4.ip_forward': '1' });
  });

  it('linux.resources: cpu quota and period as given, the v1 memory knobs carried, bad values named', () => {
    const c = base();
    c.linux.resources = { cpu: { quota: 50000, period: 500000 }, memory: { swappiness: 10, disableOOMKiller: true, kernelTCP: 50593792, kernel: 1 << 26 } };
    const t = translateConfig('/b', c, host);
    expect(t.resources).toEqual({ cpuLimit: 0.1, cpuPeriod: 500000, memorySwappiness: 10, memoryOomKillDisable: true, memoryKernelTcp: 50593792, memoryKernel: 1 << 26 });
    // The quota written back from the fraction is the bundle's exactly.
    expect(Math.round(t.resources.cpuLimit! * t.resources.cpuPeriod!)).toBe(50000);
    // A period alone, swappiness 0 (a real value), disableOOMKiller false, -1 (no limit) left out.
    c.linux.resources = { cpu: { period: 250000 }, memory: { swappiness: 0, disableOOMKiller: false, kernel: -1, kernelTCP: -1 } };
    expect(translateConfig('/b', c, host).resources).toEqual({ cpuPeriod: 250000, memorySwappiness: 0, memoryOomKillDisable: false });
    c.linux.resources = { cpu: { realtimePeriod: 1000000, realtimeRuntime: 950000 } };
    expect(translateConfig('/b', c, host).resources).toEqual({ cpuRtPeriod: 1000000, cpuRtRuntime: 950000 });
    c.linux.resources = { cpu: { realtimeRuntime: -5 }, memory: { swappiness: 101, disableOOMKiller: 'yes', kernelTCP: 1.5 } };
    expect(problems(c)).toEqual([
      'linux.resources.memory.kernelTCP: expected whole bytes or -1, got 1.5',
      'linux.resources.memory.swappiness: expected a whole number 0..100, got 101',
      'linux.resources.memory.disableOOMKiller: expected true or false, got "yes"',
      'linux.resources.cpu.realtimeRuntime: expected whole µs > 0, got -5',
    ]);
  });

  it('linux.cgroupsPath: absolute from each hierarchy\'s root, relative below the runtime\'s parent; a bad one named; hugepageLimits', () => {
    const c = base();
    c.linux.cgroupsPath = '/pods/p1/ctr';
    expect(translateConfig('/b', c, host).cgroupsPath).toBe('/pods/p1/ctr');
    expect(cgroupPlacement('/pods/p1/ctr', 'stratoswarm')).toBe('pods/p1/ctr');
    expect(cgroupPlacement('pods/ctr', 'stratoswarm')).toBe('stratoswarm/pods/ctr');
    expect(cgroupPlacement(undefined, 'stratoswarm')).toBeUndefined();
    c.linux.cgroupsPath = '';
    expect(translateConfig('/b', c, host).cgroupsPath).toBeUndefined();
    c.linux.resources = { hugepageLimits: [{ pageSize: '2MB', limit: 1 << 22 }] };
    expect(translateConfig('/b', c, host).resources.hugetlb).toEqual([{ pageSize: '2MB', limit: 1 << 22 }]);
    c.linux.resources = { hugepageLimits: [{ pageSize: 2 }] };
    expect(problems(c)).toContain('linux.resources.hugepageLimits: expected a list of { pageSize, limit }');
    delete c.linux.resources;
    for (const bad of ['/', '/a/../b', 7]) {
      c.linux.cgroupsPath = bad;
      expect(problems(c).join('\n')).toMatch(/^linux\.cgroupsPath: /m);
    }
  });

  it('linux.namespaces[].path: network, ipc and uts are joined (no new ones cloned, a setns each); a hostname is set in a joined UTS, as runc does', () => {
    const c = base();
    c.linux.namespaces = [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc', path: '/srv/ns/ipc' }, { type: 'uts', path: '/srv/ns/uts' }, { type: 'network', path: '/srv/ns/net' }];
    const t = translateConfig('/b', c, host);
    expect(t.join).toEqual({ ipc: '/srv/ns/ipc', uts: '/srv/ns/uts', net: '/srv/ns/net' });
    expect(t.network).toBe('none');
    const fields = compileCreatePlan({ ...createInput(), joinNamespaces: t.join }).map(String);
    expect(fields[fields.indexOf('namespaces') + 1]).toBe('pid,mnt');
    for (const k of ['net', 'ipc', 'uts']) expect(fields[fields.indexOf(`join-${k}`) + 1]).toBe(`/srv/ns/${k}`);
    expect(fields.join(' ')).toMatch(/op setns ipc .*op setns uts .*op setns net .*op mount-private/);
    c.hostname = 'h';
    c.linux.namespaces[4].path = '/nope';
    expect(problems(c)).toEqual(['linux.namespaces[4].path: `/nope` does not exist']);
    c.linux.namespaces[4].path = '/srv/ns/net';
    expect(compileCreatePlan({ ...createInput(), hostname: 'h', joinNamespaces: translateConfig('/b', c, host).join }).map(String).join(' ')).toMatch(/op setns uts .*op hostname set 1 h/);
  });

  it('linux.resources.blockIO: the throttles per device, merged; a rate of 0 is no limit; bad entries named', () => {
    const c = base();
    c.linux.resources = {
      blockIO: {
        throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }],
        throttleWriteBpsDevice: [{ major: 8, minor: 0, rate: 2097152 }],
        throttleReadIOPSDevice: [{ major: 253, minor: 1, rate: 300 }],
        throttleWriteIOPSDevice: [{ major: 253, minor: 2, rate: 0 }],
      },
    };
    expect(translateConfig('/b', c, host).resources.blockIo).toEqual([
      { device: '8:0', readBps: 1048576, writeBps: 2097152 },
      { device: '253:1', readIops: 300 },
    ]);
    // unified: cgroup v2 files by name, checked and named under linux.resources.
    c.linux.resources = { unified: { 'memory.high': '1073741824', 'cgroup.max.depth': '3' } };
    expect(translateConfig('/b', c, host).resources.unified).toEqual({ 'memory.high': '1073741824', 'cgroup.max.depth': '3' });
    c.linux.resources = { unified: { 'cgroup.procs': '1', 'memory/../x': '1', 'memory.max': 5 } };
    expect(problems(c)).toEqual(
      expect.arrayContaining([
        'linux.resources.unified["cgroup.procs"]: cgroup.procs is the runtime\'s to write (processes, controllers, state), not a limit',
        'linux.resources.unified["memory/../x"]: expected a cgroup v2 file name like "memory.high" (no path)',
        'linux.resources.unified["memory.max"]: expected a one-line value, got 5',
      ]),
    );
    // The BFQ weights: the cgroup's and per device (a weight of 0 is none, as runc reads it).
    c.linux.resources = { blockIO: { weight: 300, weightDevice: [{ major: 8, minor: 0, weight: 700 }, { major: 8, minor: 16, weight: 0 }] } };
    expect(translateConfig('/b', c, host).resources).toMatchObject({ blockIoWeight: 300, blockIoWeightDevice: [{ device: '8:0', weight: 700 }] });
    c.linux.resources = {
      blockIO: {
        throttleReadBpsDevice: [{ major: 'x', minor: 0, rate: 1 }, { major: 8, minor: 0, rate: -1 }],
        weight: 1001,
        leafWeight: 10,
        weightDevice: [{ major: 8, minor: 0, weight: 10, leafWeight: 10 }, { major: 8, minor: 1, weight: 2000 }],
      },
    };
    expect(problems(c)).toEqual(
      expect.arrayContaining([
        'linux.resources.blockIO.throttleReadBpsDevice[0]: expected { major, minor, rate } with whole numbers',
        'linux.resources.blockIO.throttleReadBpsDevice[1].rate: expected a whole number ≥ 0, got -1',
        "linux.resources.blockIO.weight: expected a whole number 1..1000 (BFQ's range), got 1001",
        'linux.resources.blockIO.leafWeight: is not supported: leaf weights were the CFQ scheduler’s, which left the kernel in Linux 5.0 (BFQ has none); weight and weightDevice are',
        'linux.resources.blockIO.weightDevice[0].leafWeight: is not supported: leaf weights were the CFQ scheduler’s, which left the kernel in Linux 5.0 (BFQ has none); weight and weightDevice are',
        "linux.resources.blockIO.weightDevice[1].weight: expected a whole number 1..1000 (BFQ's range), got 2000",
      ]),
    );
  });

  it('mount propagation, rootfsPropagation, umask and linux.devices become flags, ops and mknod entries', () => {
    const c = base();
    c.mounts = [
      { destination: '/t', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755', 'size=1k', 'rshared'] },
      { destination: '/e', source: '/srv/e', options: ['rbind', 'mode=755', 'rslave'] },
      { destination: '/u', source: '/srv/u', options: ['bind', 'shared', 'unbindable'] },
    ];
    c.linux.rootfsPropagation = 'slave';
    c.process.user = { uid: 10, gid: 10, umask: 0o002 };
    c.linux.devices = [
      { path: '/dev/test1', type: 'c', major: 10, minor: 666, fileMode: 0o660, uid: 1, gid: 2 },
      { path: '/dev/fifo', type: 'p' },
      { path: '/dev/bad', type: 'x', major: -1 },
    ];
    expect(problems(c).sort()).toEqual([
      'linux.devices[2].major: expected an integer from 0 to 4095',
      'linux.devices[2].minor: expected an integer from 0 to 1048575',
      'linux.devices[2].type: expected c, b, u or p, not "x"',
      'mounts[2].options: "unbindable": only one propagation can be given',
    ]);
    c.mounts.pop();
    c.linux.devices.pop();
    const t = translateConfig('/b', c, host);
    expect(t.mounts[0]).toMatchObject({ kind: 'fs', data: 'mode=755,size=1k', propagation: (1 << 20) | (1 << 14) });
    // A bind's filesystem data is ignored by mount(2), as with runc.
    expect(t.mounts[1]).toMatchObject({ kind: 'bind', data: '', propagation: (1 << 19) | (1 << 14) });
    expect(t.rootfsPropagation).toBe(1 << 19);
    expect(t.process.user.umask).toBe(0o002);
    expect(t.mknods).toEqual([
      { path: '/dev/test1', type: 'c', major: 10, minor: 666, mode: 0o660, uid: 1, gid: 2 },
      { path: '/dev/fifo', type: 'p', major: 0, minor: 0, mode: 0o666, uid: 0, gid: 0 },
    ]);
    const ops = compileCreatePlan({ ...createInput(), mounts: t.mounts, mknods: t.mknods, rootfsPropagation: t.rootfsPropagation }).map(String).join(' ');
    expect(ops).toContain('op mount-private rslave 0 1 ' + String((1 << 14) | (1 << 19)));
    expect(ops).toContain('op propagation mount 1 /t 1 ' + String((1 << 20) | (1 << 14)));
    expect(ops).toContain('op mknod c 1 /dev/test1 6 8192 10 666 432 1 2');
    expect(ops).toMatch(/op pivot-root rootfs 0 0 op propagation root 1 \/ 1 524288/);
  });

  it('a namespace type left out of linux.namespaces is the host\'s (pid, ipc, uts; never mount); a hostname then needs uts', () => {
    const c = base();
    c.linux.namespaces = [{ type: 'mount' }, { type: 'network' }];
    c.hostname = '';
    const t = translateConfig('/b', c, host);
    expect(t.shareHost.sort()).toEqual(['ipc', 'pid', 'uts']);
    const ops = compileCreatePlan({ ...createInput(), hostname: 'ignored', shareHost: t.shareHost }).map(String).join(' ');
    expect(ops).toMatch(/namespaces mnt,net /);
    expect(ops).not.toContain('op hostname');
    c.hostname = 'box';
    c.linux.namespaces = [{ type: 'pid' }, { type: 'ipc' }];
    expect(problems(c).sort()).toEqual([
      "hostname: setting it needs a uts namespace of the container's own; linux.namespaces has none, and the host's would be renamed",
      "linux.namespaces: the host's mount namespace cannot be shared: the container's root and mounts need one of its own",
    ]);
  });

  it('idmapped mounts: maps of their own or the container\'s user namespace become a bind op with its idmap mode', () => {
    const c = base();
    c.mounts = [
      { destination: '/m', source: '/srv/e', options: ['rbind', 'ridmap'], uidMappings: [{ containerID: 0, hostID: 5000, size: 10 }], gidMappings: [{ containerID: 0, hostID: 6000, size: 10 }] },
      { destination: '/u', source: '/srv/u', options: ['bind', 'idmap'] },
    ];
    expect(problems(c)).toEqual([`mounts[1].options: "idmap" without uidMappings and gidMappings maps through the container's user namespace, and linux.namespaces has none`]);
    c.linux.namespaces.push({ type: 'user' });
    c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    const t = translateConfig('/b', c, host);
    expect(t.mounts[0]).toMatchObject({ kind: 'bind', idmap: { maps: { uid: '0 5000 10\n', gid: '0 6000 10\n' }, recursive: true } });
    expect(t.mounts[1]).toMatchObject({ kind: 'bind', idmap: { recursive: false } });
    const ops = compileCreatePlan({ ...createInput(), mounts: t.mounts }).map(String).join(' ');
    expect(ops).toContain(`op bind mount 4 /srv/e /m 0 5000 10\n 0 6000 10\n 5 ${(1 << 12) | (1 << 14)} 0 0 2 1`);
    expect(ops).toContain(`op bind mount 2 /srv/u /u 5 ${1 << 12} 0 0 1 0`);
    c.mounts = [
      { destination: '/a', source: '/srv/e', options: ['bind', 'idmap', 'ridmap'] },
      { destination: '/b', source: '/srv/e', options: ['bind'], gidMappings: [{ containerID: 0, hostID: 1, size: 1 }] },
      { destination: '/c', source: '/srv/e', options: ['bind'], uidMappings: [{ containerID: 0, hostID: 1, size: 0 }], gidMappings: [] },
      { destination: '/d', type: 'proc', source: 'proc', options: ['ridmap'] },
    ];
    expect(problems(c).sort()).toEqual([
      'mounts[0].options: "idmap" and "ridmap" together: one is recursive, the other not',
      'mounts[1].uidMappings: an idmapped mount needs both uidMappings and gidMappings',
      'mounts[2].gidMappings: expected a list of 1 to 340 { containerID, hostID, size }',
      'mounts[2].uidMappings[0]: expected { containerID, hostID, size } with whole numbers, size ≥ 1',
      'mounts[3].options: only a bind mount can be idmapped here (the filesystem of another type is mounted by the container, already in its ids)',
    ]);
  });

  it('linux.devices in a user namespace are bound from the host (mknod is refused there)', () => {
    const c = base();
    c.linux.namespaces.push({ type: 'user' });
    c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
    c.linux.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229 }, { path: '/dev/test1', type: 'c', major: 10, minor: 666 }];
    expect(problems(c)).toEqual(['linux.devices[1].path: /dev/test1 does not exist on the host (in a user namespace devices are bound from the host)']);
    c.linux.devices.pop();
    const t = translateConfig('/b', c, host);
    expect(t.devices).toEqual(['/dev/fuse']);
    expect(t.mknods).toEqual([]);
  });

  it('names every field it does not carry out, and ignores unknown properties', () => {
    const c = base();
    c.linux.intelRdt = { closID: 'a' };
    c.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    c.linux.namespaces = [{ type: 'pid' }, { type: 'mount', path: '/proc/1/ns/mnt' }, { type: 'uts' }, { type: 'ipc' }];
    c.linux.resources = { blockIO: { leafWeight: 10 }, memory: { useHierarchy: true } };
    c.linux.sysctl = { 'kernel.panic': '1' };
    c.mounts = [{ destination: '/x', type: 'bind', source: '/srv/x', options: ['rbind', 'tmpcopyup'] }, { destination: '/y', type: 'bind', source: '/nope' }];
    c.process.user = { uid: 0, gid: 0, umask: 0o1000 };
    c.process.apparmorProfile = 'p';
    c.annotations = { 'io.stratoswarm.restart': 'sometimes' };
    c.someFutureField = { anything: true };
    expect(problems(c)).toEqual(
      expect.arrayContaining([
        'linux.intelRdt: is not supported',
        'linux.uidMappings: given without a user namespace in linux.namespaces',
        'process.apparmorProfile: is not supported',
        'linux.resources.blockIO.leafWeight: is not supported: leaf weights were the CFQ scheduler’s, which left the kernel in Linux 5.0 (BFQ has none); weight and weightDevice are',
        'linux.resources.memory.useHierarchy: is not supported',
        'linux.sysctl["kernel.panic"]: is not namespaced: it would change the host',
        'mounts[0].options: "tmpcopyup" is not supported',
        'mounts[1].source: `/nope` does not exist',
        'process.user.umask: expected an integer from 0 to 511 (0777)',
        'annotations["io.stratoswarm.restart"]: unknown restart policy "sometimes" (one of no, on-failure, always, unless-stopped)',
      ]),
    );
    expect(problems(c).some((p) => p.includes('someFutureField'))).toBe(false);
    expect(problems({ ociVersion: '2.0.0', process: { args: [] } })).toEqual(expect.arrayContaining(['ociVersion: expected a 1.x version, got "2.0.0"', 'root.path: expected the rootfs directory', 'process.args: expected a non-empty list of strings']));
  });

  it('sysctl: only namespaced keys, net.* only with an own network namespace', () => {
    expect(sysctlProblem('net.core.somaxconn', '10', true)).toBeUndefined();
    expect(sysctlProblem('net.core.somaxconn', '10', false)).toMatch(/own network namespace/);
    expect(sysctlProblem('kernel.shmmax', '10', false)).toBeUndefined();
    expect(sysctlProblem('vm.swappiness', '10', true)).toMatch(/not namespaced/);
  });

  it('a personality fills what the engine left unset and keeps what it set', () => {
    const free = personalityResources('Explorer', {});
    expect(free.resources.memoryLimit).toBe(free.plan.memoryLimit);
    const capped = personalityResources('Explorer', { memoryLimit: 1 << 26 });
    expect(capped.resources.memoryLimit).toBe(1 << 26);
    expect(capped.resources.memoryReservation).toBeLessThanOrEqual(1 << 26);
    expect(() => personalityResources('Nobody', {})).toThrow(/personality/);
  });

  it('the create plan of a bundle binds its rootfs as it is and runs its mounts in order, devices after /dev', () => {
    const ops = compileCreatePlan({
      cgroupProcs: [], stateDir: '/s', rootfs: '/m', lowerDirs: [], upperDir: '', workDir: '', stdout: '/o', stderr: '/e', network: 'none', hostname: '', volumes: [],
      security: { maskedPaths: [], readonlyPaths: [], readonlyRoot: false },
      rootfsDir: '/bundle/rootfs',
      mounts: [
        { kind: 'fs', source: 'proc', target: '/proc', fstype: 'proc', data: '', flags: 0, isFile: false },
        { kind: 'fs', source: 'tmpfs', target: '/dev', fstype: 'tmpfs', data: 'mode=755', flags: 0, isFile: false },
        { kind: 'fs', source: 'devpts', target: '/dev/pts', fstype: 'devpts', data: 'newinstance', flags: 0, isFile: false },
      ],
    }).map(String);
    const at = (s: string) => ops.indexOf(s);
    expect(ops.join(' ')).toContain('op overlay bind 2 /bundle/rootfs /m');
    expect(ops.some((o) => o.startsWith('lowerdir='))).toBe(false);
    expect(at('/dev/pts')).toBeLessThan(at('/dev/null'));
    expect(ops.filter((o) => o === 'hostname')).toEqual([]);
  });
});
