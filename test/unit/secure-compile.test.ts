/**
 * compileSecurity: capability sets for root and non-root users, the kernel's last
 * capability, seccomp ordering, masked-path patterns and user-namespace checks. A stub
 * Kernel records what would be compiled; no root, no addon.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, RuntimeError } from '../../src/errors.js';
import type { Kernel } from '../../src/kernel/kernel.js';
import type { OciSeccompProfile } from '../../src/kernel/native.js';
import {
  CAPABILITY_NAMES,
  SecurityProfile,
  capabilityMask,
  compileSecurity,
  DEFAULT_CAPABILITIES,
  expandPathPattern,
} from '../../src/secure-runtime/index.js';

class StubKernel implements Kernel {
  compiled: OciSeccompProfile[] = [];
  constructor(private tree: Record<string, string[]> = {}) {}
  cgroupWrite(): void {}
  readFile(): string {
    return '';
  }
  writeFile(): void {}
  exists(path: string): boolean {
    if (path in this.tree) return true;
    const parent = path.slice(0, path.lastIndexOf('/')) || '/';
    return (this.tree[parent] ?? []).includes(path.slice(path.lastIndexOf('/') + 1));
  }
  mkdir(): void {}
  rmdir(): void {}
  readdir(path: string): string[] {
    const e = this.tree[path];
    if (!e) throw new RuntimeError(`readdir ${path}: ENOENT`, { code: 'ENOTFOUND' });
    return [...e];
  }
  compileSeccomp(profile: OciSeccompProfile): { bpf: Buffer; unknownSyscalls: string[] } {
    this.compiled.push(profile);
    return { bpf: Buffer.alloc(8 * 3), unknownSyscalls: ['mseal'] };
  }
  request(): number {
    return -1;
  }
  connect(): number {
    return -1;
  }
  send(): number {
    return 0;
  }
  sendWhenWritable(): number {
    return 0;
  }
  peerGone(): boolean {
    return true;
  }
  pipe(): [number, number] {
    return [-1, -1];
  }
  close(): void {}
  openPty(): never {
    throw new Error('no terminals here');
  }
  async startTerminalRelay(): Promise<never> {
    throw new Error('no terminals here');
  }
}

const DOCKER = capabilityMask(DEFAULT_CAPABILITIES);
const bit = (name: (typeof CAPABILITY_NAMES)[number]) => 1n << BigInt(CAPABILITY_NAMES.indexOf(name));
const ROOT = { uid: 0, gid: 0 };
const USER = { uid: 1000, gid: 1000 };

describe('capability sets', () => {
  it('root: bounding = effective = permitted = the set; inheritable and ambient empty', () => {
    const c = compileSecurity(undefined, ROOT, new StubKernel(), 40).capabilities;
    expect(c).toEqual({ bounding: DOCKER, effective: DOCKER, permitted: DOCKER, inheritable: 0n, ambient: 0n });
    expect(DOCKER).toBe(0xa80425fbn);
  });

  it('non-root: only the bounding set', () => {
    const c = compileSecurity(undefined, USER, new StubKernel(), 40).capabilities;
    expect(c).toEqual({ bounding: DOCKER, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n });
  });

  it('add and drop change every set root holds', () => {
    const p = SecurityProfile.builder().addCapabilities('SYS_PTRACE').dropCapabilities('NET_RAW').build();
    const c = compileSecurity(p, ROOT, new StubKernel(), 40).capabilities;
    const want = (DOCKER | bit('CAP_SYS_PTRACE')) & ~bit('CAP_NET_RAW');
    expect(c.bounding).toBe(want);
    expect(c.effective).toBe(want);
    expect(c.permitted).toBe(want);
  });

  it('drop ALL leaves nothing, not even in the bounding set', () => {
    const c = compileSecurity({ capabilities: { drop: ['ALL'] } }, ROOT, new StubKernel(), 40).capabilities;
    expect(c).toEqual({ bounding: 0n, effective: 0n, permitted: 0n, inheritable: 0n, ambient: 0n });
  });

  it('add ALL is every capability the running kernel knows', () => {
    const k = new StubKernel();
    const c = compileSecurity({ capabilities: { add: ['ALL'] } }, ROOT, k, 40);
    expect(c.capabilities.bounding).toBe((1n << 41n) - 1n);
    expect(c.unsupportedCapabilities).toEqual([]);
    // An older kernel (5.4: CAP_AUDIT_READ = 37 is the last) gets no bits it does not know.
    const old = compileSecurity({ capabilities: { add: ['ALL'] } }, ROOT, k, 37);
    expect(old.capabilities.bounding).toBe((1n << 38n) - 1n);
    expect(old.unsupportedCapabilities).toEqual(['CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE']);
  });

  it('the seccomp profile is resolved for the capabilities the kernel grants', () => {
    const k = new StubKernel();
    compileSecurity({ capabilities: { add: ['BPF'] } }, ROOT, k, 37, { arch: 'x64' });
    const names = new Set(k.compiled[0]!.syscalls!.flatMap((r) => r.names));
    expect(names.has('bpf')).toBe(false);
    compileSecurity({ capabilities: { add: ['BPF'] } }, ROOT, k, 40, { arch: 'x64' });
    expect(new Set(k.compiled[1]!.syscalls!.flatMap((r) => r.names)).has('bpf')).toBe(true);
  });
});

describe('seccomp in the compiled data', () => {
  it('default: the compiled filter, its unknown names and the profile it came from', () => {
    const k = new StubKernel();
    const c = compileSecurity(undefined, ROOT, k, 40, { arch: 'x64' });
    expect(c.seccomp?.bpf.length).toBe(24);
    expect(c.seccomp?.unknownSyscalls).toEqual(['mseal']);
    expect(c.seccomp?.profile).toBe(k.compiled[0]);
    expect(c.seccomp?.profile.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(c.noNewPrivileges).toBe(true);
    expect(c.seccompBeforeCapabilityDrop).toBe(false);
  });

  it('compiles each distinct resolved profile once per kernel seam', () => {
    const k = new StubKernel();
    const a = compileSecurity(undefined, ROOT, k, 40);
    const b = compileSecurity(undefined, USER, k, 40); // same capability set, same filter
    expect(k.compiled).toHaveLength(1);
    expect(b.seccomp!.bpf).toEqual(a.seccomp!.bpf);
    expect(b.seccomp!.bpf).not.toBe(a.seccomp!.bpf); // a copy: callers may not share one buffer
    compileSecurity({ capabilities: { add: ['SYS_PTRACE'] } }, ROOT, k, 40);
    expect(k.compiled).toHaveLength(2);
    compileSecurity(undefined, ROOT, new StubKernel(), 40);
    expect(k.compiled).toHaveLength(2);
  });

  it('unconfined: no filter at all', () => {
    const k = new StubKernel();
    const c = compileSecurity({ seccomp: 'unconfined' }, ROOT, k, 40);
    expect(c.seccomp).toBeUndefined();
    expect(k.compiled).toEqual([]);
    expect(c.seccompBeforeCapabilityDrop).toBe(false);
  });

  it('without no_new_privs the filter is loaded before the capability drop, unless CAP_SYS_ADMIN stays', () => {
    expect(compileSecurity({ noNewPrivileges: false }, ROOT, new StubKernel(), 40).seccompBeforeCapabilityDrop).toBe(true);
    expect(compileSecurity({ noNewPrivileges: false }, USER, new StubKernel(), 40).seccompBeforeCapabilityDrop).toBe(true);
    const admin = { noNewPrivileges: false, capabilities: { add: ['SYS_ADMIN'] } };
    expect(compileSecurity(admin, ROOT, new StubKernel(), 40).seccompBeforeCapabilityDrop).toBe(false);
    // A non-root user keeps nothing effective, so even then the filter goes first.
    expect(compileSecurity(admin, USER, new StubKernel(), 40).seccompBeforeCapabilityDrop).toBe(true);
  });

  it('a custom profile with Docker conditions is resolved before compiling', () => {
    const k = new StubKernel();
    compileSecurity(
      {
        seccomp: {
          defaultAction: 'SCMP_ACT_ALLOW',
          syscalls: [
            { names: ['mount'], action: 'SCMP_ACT_ERRNO', excludes: { caps: ['CAP_SYS_ADMIN'] } },
            { names: ['ptrace'], action: 'SCMP_ACT_ERRNO', includes: { arches: ['arm64'] } },
          ],
        },
      },
      ROOT,
      k,
      40,
      { arch: 'x64' },
    );
    expect(k.compiled[0]).toEqual({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount'], action: 'SCMP_ACT_ERRNO' }] });
  });

  it('a compile error from the addon names the field', () => {
    const k = new StubKernel();
    k.compileSeccomp = () => {
      throw new RuntimeError('compile seccomp profile: syscalls[0]: bad', { code: 'EINVAL', step: 'seccomp' });
    };
    expect(() => compileSecurity(undefined, ROOT, k, 40)).toThrow(/^security\.seccomp: compile seccomp profile/);
  });
});

describe('paths, rlimits and the user namespace', () => {
  it('expands * in masked paths against the host tree and keeps only what exists', () => {
    const k = new StubKernel({
      '/sys/devices/system/cpu': ['cpu0', 'cpu1', 'cpufreq', 'online'],
      '/sys/devices/system/cpu/cpu0': ['thermal_throttle'],
      '/sys/devices/system/cpu/cpu1': ['thermal_throttle'],
      '/sys/devices/system/cpu/cpufreq': [],
    });
    expect(expandPathPattern('/sys/devices/system/cpu/cpu*/thermal_throttle', k)).toEqual([
      '/sys/devices/system/cpu/cpu0/thermal_throttle',
      '/sys/devices/system/cpu/cpu1/thermal_throttle',
    ]);
    const c = compileSecurity(undefined, ROOT, k, 40);
    expect(c.maskedPaths).toContain('/sys/devices/system/cpu/cpu1/thermal_throttle');
    expect(c.maskedPaths).toContain('/proc/kcore');
    expect(c.maskedPaths.some((p) => p.includes('*'))).toBe(false);
    // No such directory on this host: the pattern expands to nothing.
    expect(compileSecurity(undefined, ROOT, new StubKernel(), 40).maskedPaths.some((p) => p.includes('thermal'))).toBe(false);
  });

  it('passes readonlyRoot, read-only paths and rlimits through', () => {
    const p = SecurityProfile.builder().readonlyRoot().rlimit('NOFILE', 1024, 4096).readonlyPath('/proc/cmdline').build();
    const c = compileSecurity(p, USER, new StubKernel(), 40);
    expect(c.readonlyRoot).toBe(true);
    expect(c.readonlyPaths).toContain('/proc/cmdline');
    expect(c.rlimits).toEqual([{ name: 'RLIMIT_NOFILE', resource: 7, soft: 1024n, hard: 4096n }]);
  });

  it('refuses ids the user namespace does not map, and bad ids', () => {
    const small = { userNamespace: { size: 1000 } };
    expect(compileSecurity(small, { uid: 999, gid: 0 }, new StubKernel(), 40).userNamespace).toEqual({ enabled: true, size: 1000 });
    const e = (() => {
      try {
        compileSecurity(small, { uid: 1000, gid: 65534 }, new StubKernel(), 40);
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.fields()).toEqual(['user.uid', 'user.gid']);
    expect(() => compileSecurity(undefined, { uid: -1, gid: 0.5 }, new StubKernel(), 40)).toThrow(ConfigError);
    expect(() => compileSecurity(undefined, ROOT, new StubKernel(), 64)).toThrow(/lastCap/);
  });

  it('plain options are validated like a profile', () => {
    expect(() => compileSecurity({ readonlyRoot: 'yes' } as never, ROOT, new StubKernel(), 40)).toThrow(ConfigError);
  });
});
