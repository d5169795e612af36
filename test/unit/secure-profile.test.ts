/**
 * SecurityProfile: defaults, capability add/drop as Docker resolves it, and ConfigErrors
 * that name every bad field.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  CAPABILITY_NAMES,
  DEFAULT_CAPABILITIES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  RLIM_INFINITY,
  SecurityProfile,
  capabilityMask,
  capabilityNames,
  normalizeCapability,
} from '../../src/secure-runtime/index.js';

function configError(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('capability names', () => {
  it('normalizes with or without CAP_, in any case, and knows ALL', () => {
    expect(normalizeCapability('chown')).toBe('CAP_CHOWN');
    expect(normalizeCapability('CAP_SYS_ADMIN')).toBe('CAP_SYS_ADMIN');
    expect(normalizeCapability('cap_net_raw')).toBe('CAP_NET_RAW');
    expect(normalizeCapability('all')).toBe('ALL');
    expect(normalizeCapability('CAP_NOPE')).toBeUndefined();
  });

  it('numbers capabilities as <linux/capability.h> does', () => {
    expect(CAPABILITY_NAMES[0]).toBe('CAP_CHOWN');
    expect(CAPABILITY_NAMES[21]).toBe('CAP_SYS_ADMIN');
    expect(CAPABILITY_NAMES[40]).toBe('CAP_CHECKPOINT_RESTORE');
    expect(capabilityMask(['CAP_CHOWN', 'CAP_SYS_ADMIN'])).toBe((1n << 0n) | (1n << 21n));
    expect(capabilityNames((1n << 21n) | (1n << 50n))).toEqual(['CAP_SYS_ADMIN', 'CAP_50']);
  });

  it("default set is exactly Docker's 14 (mask 0xa80425fb)", () => {
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(capabilityMask(DEFAULT_CAPABILITIES)).toBe(0xa80425fbn);
  });
});

describe('SecurityProfile.default()', () => {
  const p = SecurityProfile.default();

  it("follows Docker's defaults (but for the user namespace, on by default)", () => {
    expect([...p.capabilities].sort()).toEqual([...DEFAULT_CAPABILITIES].sort());
    expect(p.noNewPrivileges).toBe(true);
    expect(p.seccomp).toBe('default');
    expect(p.readonlyRoot).toBe(false);
    expect(p.rlimits).toEqual([]);
    expect(p.userNamespace).toEqual({ enabled: true, size: 65536 });
  });

  it("masks runc's and Docker's current lists", () => {
    for (const m of ['/proc/acpi', '/proc/asound', '/proc/interrupts', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
      '/proc/sched_debug', '/proc/scsi', '/proc/timer_list', '/proc/timer_stats', '/sys/devices/virtual/powercap', '/sys/firmware']) {
      expect(p.maskedPaths).toContain(m);
    }
    expect(p.maskedPaths).toEqual(DEFAULT_MASKED_PATHS);
    expect(p.readonlyPaths).toEqual(['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger']);
    expect(p.readonlyPaths).toEqual(DEFAULT_READONLY_PATHS);
  });

  it('is immutable', () => {
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.capabilities)).toBe(true);
  });
});

describe('capability add/drop', () => {
  const caps = (o: { add?: string[]; drop?: string[] }) => [...SecurityProfile.from({ capabilities: o }).capabilities];

  it('adds and drops by name, with or without CAP_', () => {
    const c = caps({ add: ['SYS_PTRACE', 'cap_net_admin'], drop: ['NET_RAW', 'CAP_MKNOD'] });
    expect(c).toContain('CAP_SYS_PTRACE');
    expect(c).toContain('CAP_NET_ADMIN');
    expect(c).not.toContain('CAP_NET_RAW');
    expect(c).not.toContain('CAP_MKNOD');
    expect(c).toHaveLength(14);
  });

  it('drop ALL keeps only the added', () => {
    expect(caps({ drop: ['ALL'], add: ['NET_BIND_SERVICE'] })).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(caps({ drop: ['all'] })).toEqual([]);
  });

  it('add ALL gives every known capability but the dropped', () => {
    expect(caps({ add: ['ALL'] })).toEqual([...CAPABILITY_NAMES]);
    const c = caps({ add: ['ALL'], drop: ['SYS_ADMIN', 'SYS_MODULE'] });
    expect(c).toHaveLength(CAPABILITY_NAMES.length - 2);
    expect(c).not.toContain('CAP_SYS_ADMIN');
  });

  it('keeps the set in capability-number order without duplicates', () => {
    const c = caps({ add: ['KILL', 'CAP_KILL', 'SYS_ADMIN'] });
    expect(c.filter((x) => x === 'CAP_KILL')).toHaveLength(1);
    const nums = c.map((x) => CAPABILITY_NAMES.indexOf(x));
    expect(nums).toEqual([...nums].sort((a, b) => a - b));
  });

  it('builder matches plain options', () => {
    const b = SecurityProfile.builder().addCapabilities('SYS_PTRACE').dropCapabilities('NET_RAW').build();
    // Docker's 14 without NET_RAW (13), with SYS_PTRACE (19), in capability-number order.
    const want = [
      'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP',
      'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_MKNOD', 'CAP_AUDIT_WRITE', 'CAP_SETFCAP',
    ];
    expect(b.capabilities).toEqual(want);
    expect(SecurityProfile.from({ capabilities: { add: ['SYS_PTRACE'], drop: ['NET_RAW'] } }).capabilities).toEqual(want);
  });
});

describe('ConfigError names every bad field', () => {
  it('reports all problems of one profile at once', () => {
    const err = configError(() =>
      SecurityProfile.from({
        capabilities: { add: ['CAP_FLY', 'SYS_ADMIN'], drop: ['SYS_ADMIN', 42 as unknown as string] },
        noNewPrivileges: 'yes' as unknown as boolean,
        readonlyRoot: 1 as unknown as boolean,
        maskedPaths: ['relative', '/proc/../etc', '/etc/*'],
        readonlyPaths: ['/proc/*'],
        rlimits: { RLIMIT_NOFILE: { soft: 10, hard: 5 }, RLIMIT_BOGUS: 1, nproc: { soft: -5, hard: 'lots' } } as never,
        userNamespace: { size: 0 },
        seccomp: { defaultAction: 'SCMP_ACT_NOPE' } as never,
        extra: true,
      } as never),
    );
    expect(err.fields()).toEqual(
      expect.arrayContaining([
        'security.extra',
        'security.capabilities.add[0]',
        'security.capabilities.add[1]',
        'security.capabilities.drop[1]',
        'security.noNewPrivileges',
        'security.readonlyRoot',
        'security.maskedPaths[0]',
        'security.maskedPaths[1]',
        'security.maskedPaths[2]',
        'security.readonlyPaths[0]',
        'security.rlimits.RLIMIT_NOFILE.soft',
        'security.rlimits.RLIMIT_BOGUS',
        'security.rlimits.nproc.soft',
        'security.rlimits.nproc.hard',
        'security.userNamespace.size',
        'security.seccomp.defaultAction',
      ]),
    );
    expect(err.message).toMatch(/^invalid security profile: /);
  });

  it('refuses ALL both added and dropped', () => {
    expect(configError(() => SecurityProfile.from({ capabilities: { add: ['ALL'], drop: ['ALL'] } })).fields()).toEqual(['security.capabilities.add']);
  });

  it('refuses capabilities that are not a { add, drop } object', () => {
    expect(configError(() => SecurityProfile.from({ capabilities: ['CHOWN'] as never })).fields()).toEqual(['security.capabilities']);
    expect(configError(() => SecurityProfile.from({ capabilities: { keep: [] } as never })).fields()).toEqual(['security.capabilities.keep']);
  });

  it('refuses the root itself as a masked path', () => {
    expect(configError(() => SecurityProfile.from({ maskedPaths: ['/'] })).fields()).toEqual(['security.maskedPaths[0]']);
  });
});

describe('rlimits', () => {
  it('accepts names with or without RLIMIT_, numbers, bigints and unlimited', () => {
    const p = SecurityProfile.from({
      rlimits: { nofile: { soft: 1024, hard: 4096 }, RLIMIT_CORE: 0, RLIMIT_AS: 'unlimited', stack: { soft: 8n << 20n, hard: 'unlimited' } },
    });
    expect(p.rlimits).toEqual([
      { name: 'RLIMIT_STACK', resource: 3, soft: 8n << 20n, hard: RLIM_INFINITY },
      { name: 'RLIMIT_CORE', resource: 4, soft: 0n, hard: 0n },
      { name: 'RLIMIT_NOFILE', resource: 7, soft: 1024n, hard: 4096n },
      { name: 'RLIMIT_AS', resource: 9, soft: RLIM_INFINITY, hard: RLIM_INFINITY },
    ]);
  });

  it('refuses soft above hard and the same resource twice', () => {
    const err = configError(() => SecurityProfile.from({ rlimits: { NOFILE: { soft: 2, hard: 1 }, RLIMIT_NOFILE: 5 } }));
    expect(err.fields()).toEqual(['security.rlimits.NOFILE.soft', 'security.rlimits.RLIMIT_NOFILE']);
  });

  it('builder rlimit(name, soft, hard)', () => {
    const p = SecurityProfile.builder().rlimit('NPROC', 100, 200).build();
    expect(p.rlimits).toEqual([{ name: 'RLIMIT_NPROC', resource: 6, soft: 100n, hard: 200n }]);
  });
});

describe('paths, root, seccomp choice and user namespace', () => {
  it('maskPath()/readonlyPath() add to the defaults; the list forms replace them', () => {
    const p = SecurityProfile.builder().maskPath('/proc/cpuinfo').readonlyPath('/proc/cmdline').build();
    expect(p.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS, '/proc/cpuinfo']);
    expect(p.readonlyPaths).toEqual([...DEFAULT_READONLY_PATHS, '/proc/cmdline']);
    const q = SecurityProfile.builder().maskedPaths(['/proc/kcore']).readonlyPaths([]).build();
    expect(q.maskedPaths).toEqual(['/proc/kcore']);
    expect(q.readonlyPaths).toEqual([]);
  });

  it('readonlyRoot, noNewPrivileges and unconfined seccomp', () => {
    const p = SecurityProfile.builder().readonlyRoot().noNewPrivileges(false).seccomp('unconfined').build();
    expect(p.readonlyRoot).toBe(true);
    expect(p.noNewPrivileges).toBe(false);
    expect(p.seccomp).toBe('unconfined');
  });

  it('takes a custom seccomp profile as an object or JSON text', () => {
    const json = '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO"}]}';
    const p = SecurityProfile.from({ seccomp: json });
    expect(p.seccomp).toMatchObject({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO' }] });
    expect(SecurityProfile.from({ seccomp: JSON.parse(json) }).seccomp).toEqual(p.seccomp);
  });

  it('user namespace: on/off and size', () => {
    expect(SecurityProfile.from({ userNamespace: false }).userNamespace).toEqual({ enabled: false, size: 65536 });
    expect(SecurityProfile.from({ userNamespace: true }).userNamespace).toEqual({ enabled: true, size: 65536 });
    expect(SecurityProfile.from({ userNamespace: { size: 1000 } }).userNamespace).toEqual({ enabled: true, size: 1000 });
    expect(SecurityProfile.builder().userNamespace(false).build().userNamespace.enabled).toBe(false);
  });

  it('resolve() takes a profile, options or nothing', () => {
    const p = SecurityProfile.default();
    expect(SecurityProfile.resolve(p)).toBe(p);
    expect(SecurityProfile.resolve(undefined).capabilities).toEqual(p.capabilities);
    expect(SecurityProfile.resolve({ readonlyRoot: true }).readonlyRoot).toBe(true);
    expect(() => SecurityProfile.resolve({ readonlyRoot: 'x' })).toThrow(ConfigError);
  });

  it('survives JSON (state files): toJSON() is JSON-safe and from() reads it back', () => {
    const p = SecurityProfile.from({
      capabilities: { add: ['SYS_PTRACE'], drop: ['ALL'] },
      rlimits: { NOFILE: { soft: 1024, hard: 1n << 60n }, CORE: 'unlimited' },
      seccomp: { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['socket'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1n << 63n, op: 'SCMP_CMP_EQ' }] }] },
      userNamespace: { size: 4096 },
    });
    const text = JSON.stringify(p);
    const q = SecurityProfile.from(JSON.parse(text));
    expect(q.capabilities).toEqual(['CAP_SYS_PTRACE']);
    expect(q.rlimits).toEqual(p.rlimits);
    expect(q.seccomp).toEqual(p.seccomp);
    expect(q.userNamespace).toEqual({ enabled: true, size: 4096 });
    expect(JSON.stringify(SecurityProfile.default())).not.toMatch(/n"/);
  });

  it('toOptions() round-trips', () => {
    const p = SecurityProfile.builder().addCapabilities('SYS_PTRACE').dropCapabilities('MKNOD').readonlyRoot().rlimit('NOFILE', 10, 'unlimited').build();
    const q = SecurityProfile.from(p.toOptions());
    expect(q.capabilities).toEqual(p.capabilities);
    expect(q.rlimits).toEqual(p.rlimits);
    expect(q.readonlyRoot).toBe(true);
  });
});
