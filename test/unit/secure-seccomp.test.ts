/**
 * The default seccomp profile (what it allows and denies, per capability set and
 * architecture), Docker-style conditional rules, OCI profile validation, and compilation
 * through the real addon where it is built (no root needed).
 */
import { skipBecause } from '../helpers/skip.js';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { NativeKernel } from '../../src/kernel/kernel.js';
import { loadNative } from '../../src/kernel/native.js';
import {
  ALLOWED_SYSCALLS,
  CLONE_NAMESPACE_FLAGS,
  DEFAULT_CAPABILITIES,
  allowedSyscalls,
  defaultSeccompProfile,
  defaultSeccompTemplate,
  parseOciSeccomp,
  resolveSeccompProfile,
  type OciSeccompProfile,
} from '../../src/secure-runtime/index.js';

const X64 = { arch: 'x64', kernelRelease: '6.18.0' };

/** Everything the default profile must refuse to a container with Docker's 14 capabilities. */
const DENIED = [
  'unshare', 'setns', 'mount', 'umount', 'umount2', 'pivot_root',
  'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree', 'mount_setattr',
  'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'create_module',
  'bpf', 'perf_event_open', 'keyctl', 'add_key', 'request_key', 'userfaultfd',
  'io_uring_setup', 'io_uring_enter', 'io_uring_register', 'open_by_handle_at',
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd', 'process_madvise',
  'acct', 'swapon', 'swapoff', 'reboot', 'settimeofday', 'stime', 'clock_settime', 'clock_settime64',
  'syslog', 'vhangup', 'quotactl', 'quotactl_fd', 'lookup_dcookie', 'nfsservctl', 'iopl', 'ioperm',
  'sethostname', 'setdomainname', 'fanotify_init', 'mbind', 'set_mempolicy', 'get_mempolicy', 'migrate_pages',
  'move_pages', 'uselib', 'ustat', 'sysfs', '_sysctl', 'vm86', 'vm86old', 'get_kernel_syms', 'query_module',
];

function rulesFor(p: OciSeccompProfile, name: string) {
  return (p.syscalls ?? []).filter((r) => r.names.includes(name));
}

describe('default seccomp profile (Docker capabilities, x86_64)', () => {
  const p = defaultSeccompProfile(X64);
  const { unconditional, conditional } = allowedSyscalls(p);

  it('refuses by default with EPERM and covers the x86_64, i386 and x32 ABIs', () => {
    expect(p.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(p.defaultErrnoRet).toBe(1);
    expect(p.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  });

  it('allows the ordinary syscalls a program needs', () => {
    for (const s of ['read', 'write', 'openat', 'close', 'mmap', 'brk', 'execve', 'exit_group', 'futex', 'fork', 'vfork',
      'wait4', 'pipe2', 'bind', 'connect', 'accept4', 'epoll_wait', 'rt_sigaction', 'arch_prctl', 'modify_ldt',
      'prctl', 'seccomp', 'capset', 'setuid', 'setgroups', 'chroot', 'mknod', 'name_to_handle_at', 'statx', 'rseq', 'close_range']) {
      expect(unconditional, s).toContain(s);
    }
  });

  it('refuses namespace, mount, module, kexec, bpf, keyring, io_uring, ptrace and clock syscalls', () => {
    for (const s of DENIED) {
      expect(unconditional.has(s) || conditional.has(s), s).toBe(false);
    }
    for (const s of DENIED) expect(ALLOWED_SYSCALLS, s).not.toContain(s);
  });

  it('allows clone only without namespace flags, and makes clone3 fail with ENOSYS', () => {
    expect(unconditional.has('clone')).toBe(false);
    expect(rulesFor(p, 'clone')).toEqual([
      { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, op: 'SCMP_CMP_MASKED_EQ' }] },
    ]);
    expect(CLONE_NAMESPACE_FLAGS).toBe(0x10000000 | 0x20000000 | 0x40000000 | 0x04000000 | 0x08000000 | 0x02000000 | 0x00020000);
    expect(rulesFor(p, 'clone3')).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  });

  it('allows only the harmless personalities and every socket family but AF_VSOCK', () => {
    const values = rulesFor(p, 'personality').map((r) => r.args?.[0]);
    expect(values).toEqual([0, 8, 0x20000, 0x20008, 0xffffffff].map((v) => ({ index: 0, value: v, op: 'SCMP_CMP_EQ' })));
    expect(rulesFor(p, 'socket')).toEqual([{ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] }]);
  });

  it('has no rule left that names a capability or an architecture', () => {
    for (const r of p.syscalls ?? []) {
      expect(r).not.toHaveProperty('includes');
      expect(r).not.toHaveProperty('excludes');
    }
    expect(p).not.toHaveProperty('archMap');
  });

  it('is the default for Docker capabilities when none are given', () => {
    expect(defaultSeccompProfile({ arch: 'x64', kernelRelease: '6.18.0' })).toEqual(
      defaultSeccompProfile({ ...X64, capabilities: DEFAULT_CAPABILITIES }),
    );
  });
});

describe('default seccomp profile follows the capability set (as Docker’s does)', () => {
  const names = (caps: string[]) => allowedSyscalls(defaultSeccompProfile({ ...X64, capabilities: [...DEFAULT_CAPABILITIES, ...caps] }));

  it('CAP_SYS_ADMIN opens the namespace and mount syscalls, clone and clone3', () => {
    const { unconditional } = names(['CAP_SYS_ADMIN']);
    for (const s of ['mount', 'umount2', 'unshare', 'setns', 'clone', 'clone3', 'fsopen', 'bpf', 'perf_event_open', 'sethostname']) {
      expect(unconditional, s).toContain(s);
    }
    const p = defaultSeccompProfile({ ...X64, capabilities: ['CAP_SYS_ADMIN'] });
    expect(rulesFor(p, 'clone3').some((r) => r.action === 'SCMP_ACT_ERRNO')).toBe(false);
    expect(rulesFor(p, 'clone').some((r) => r.args)).toBe(false);
    // still never allowed
    for (const s of ['keyctl', 'add_key', 'userfaultfd', 'io_uring_setup', 'kexec_load', 'swapon', 'pivot_root']) {
      expect(unconditional.has(s), s).toBe(false);
    }
  });

  it.each([
    ['CAP_SYS_PTRACE', ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kcmp', 'pidfd_getfd']],
    ['CAP_SYS_MODULE', ['init_module', 'finit_module', 'delete_module']],
    ['CAP_SYS_BOOT', ['reboot']],
    ['CAP_SYS_TIME', ['settimeofday', 'clock_settime']],
    ['CAP_SYS_RAWIO', ['iopl', 'ioperm']],
    ['CAP_SYS_PACCT', ['acct']],
    ['CAP_SYS_NICE', ['mbind', 'set_mempolicy']],
    ['CAP_SYSLOG', ['syslog']],
    ['CAP_DAC_READ_SEARCH', ['open_by_handle_at']],
    ['CAP_BPF', ['bpf']],
    ['CAP_PERFMON', ['perf_event_open']],
    ['CAP_SYS_TTY_CONFIG', ['vhangup']],
  ])('%s allows %j', (cap, syscalls) => {
    const { unconditional } = names([cap]);
    for (const s of syscalls) expect(unconditional, s).toContain(s);
    expect(unconditional.has('mount')).toBe(false);
  });

  it('dropping CAP_SYS_CHROOT removes chroot', () => {
    const p = defaultSeccompProfile({ ...X64, capabilities: DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_SYS_CHROOT') });
    expect(allowedSyscalls(p).unconditional.has('chroot')).toBe(false);
  });
});

describe('default seccomp profile on other architectures', () => {
  it('arm64: AArch64 and 32-bit ARM, the ARM-only syscalls, no x86 ones', () => {
    const p = defaultSeccompProfile({ arch: 'arm64', kernelRelease: '6.1.0' });
    expect(p.architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    const { unconditional } = allowedSyscalls(p);
    expect(unconditional).toContain('set_tls');
    expect(unconditional.has('arch_prctl')).toBe(false);
    expect(unconditional.has('modify_ldt')).toBe(false);
  });

  it('s390x: clone flags are checked in the second argument', () => {
    const p = defaultSeccompProfile({ arch: 's390x' });
    expect(p.architectures).toEqual(['SCMP_ARCH_S390X', 'SCMP_ARCH_S390']);
    expect(rulesFor(p, 'clone').map((r) => r.args?.[0]?.index)).toEqual([1]);
  });
});

describe('Docker-style conditional rules', () => {
  it('the template keeps its conditions and resolves like Docker: includes all caps, excludes any', () => {
    const t = defaultSeccompTemplate();
    expect(t.archMap?.[0]).toEqual({ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] });
    expect(t.syscalls?.some((r) => r.includes?.caps?.includes('CAP_SYS_ADMIN'))).toBe(true);
    // The template is itself a valid profile.
    const json = JSON.parse(JSON.stringify(t));
    expect(parseOciSeccomp(json)).toEqual(json);
  });

  it('minKernel includes and excludes compare against the running kernel', () => {
    const profile = parseOciSeccomp({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['ptrace'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '4.8' } },
        { names: ['old_thing'], action: 'SCMP_ACT_ALLOW', excludes: { minKernel: '5.0' } },
        { names: ['both'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['SYS_ADMIN', 'CAP_NET_ADMIN'] } },
      ],
    });
    const new_ = resolveSeccompProfile(profile, { capabilities: ['CAP_SYS_ADMIN'], arch: 'x64', kernelRelease: '6.1.0-13-amd64' });
    expect(new_.syscalls?.map((r) => r.names[0])).toEqual(['ptrace']);
    const old = resolveSeccompProfile(profile, { capabilities: ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN'], arch: 'x64', kernelRelease: '4.4.0' });
    expect(old.syscalls?.map((r) => r.names[0])).toEqual(['old_thing', 'both']);
    expect(old.architectures).toBeUndefined();
  });

  it('archMap picks the native entry; a plain architectures list is kept', () => {
    const withMap = parseOciSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      archMap: [{ architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }, { architecture: 'SCMP_ARCH_X86_64', subArchitectures: null }],
    });
    expect(resolveSeccompProfile(withMap, { capabilities: [], arch: 'x64' }).architectures).toEqual(['SCMP_ARCH_X86_64']);
    expect(resolveSeccompProfile(withMap, { capabilities: [], arch: 'arm64' }).architectures).toEqual(['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    const plain = parseOciSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'] });
    expect(resolveSeccompProfile(plain, { capabilities: [], arch: 'arm64' }).architectures).toEqual(['SCMP_ARCH_X86_64']);
  });
});

describe('parseOciSeccomp', () => {
  function fields(input: unknown): string[] {
    try {
      parseOciSeccomp(input);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).fields();
    }
    throw new Error('expected a ConfigError');
  }

  it('accepts an OCI linux.seccomp object and normalizes it', () => {
    const p = parseOciSeccomp({
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 1,
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
      flags: ['SECCOMP_FILTER_FLAG_LOG'],
      syscalls: [
        { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
        { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }] },
        { name: 'getpid', action: 'SCMP_ACT_ALLOW' },
        { names: ['socket'], action: 'SCMP_ACT_ERRNO', errnoRet: 97, args: [{ index: 0, value: '18446744073709551615', valueTwo: 1, op: 'SCMP_CMP_MASKED_EQ' }] },
      ],
    });
    expect(p.syscalls?.[2]).toEqual({ names: ['getpid'], action: 'SCMP_ACT_ALLOW' });
    expect(p.syscalls?.[3]?.args?.[0]).toEqual({ index: 0, value: (1n << 64n) - 1n, valueTwo: 1, op: 'SCMP_CMP_MASKED_EQ' });
  });

  it('accepts JSON text', () => {
    expect(parseOciSeccomp('{"defaultAction":"SCMP_ACT_ALLOW"}')).toEqual({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [] });
    expect(fields('{not json')).toEqual(['seccomp']);
  });

  it('names every bad field', () => {
    expect(
      fields({
        defaultAction: 'SCMP_ACT_MAYBE',
        defaultErrnoRet: 5000,
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_Z80'],
        flags: ['SECCOMP_FILTER_FLAG_NOPE'],
        listenerPath: '/run/agent.sock',
        bogus: 1,
        syscalls: [
          { names: ['read'], action: 'SCMP_ACT_ALLOW' },
          { names: [], action: 'SCMP_ACT_ALLOW' },
          { names: ['Read Me'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 },
          { names: ['mount'], action: 'SCMP_ACT_NOTIFY' },
          { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 6, value: -1, op: 'SCMP_CMP_SOMETIMES' }, { index: 0, value: 2 ** 60, op: 'SCMP_CMP_EQ', extra: 1 }] },
          { names: ['x'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_FLY'], minKernel: 'latest' }, excludes: 'no' },
          'not a rule',
        ],
      }),
    ).toEqual([
      'seccomp.bogus',
      'seccomp.defaultAction',
      'seccomp.defaultErrnoRet',
      'seccomp.architectures[1]',
      'seccomp.flags[0]',
      'seccomp.listenerPath',
      'seccomp.syscalls[1].names',
      'seccomp.syscalls[2].names[0]',
      'seccomp.syscalls[2].errnoRet',
      'seccomp.syscalls[3].action',
      'seccomp.syscalls[4].args[0].index',
      'seccomp.syscalls[4].args[0].value',
      'seccomp.syscalls[4].args[0].op',
      'seccomp.syscalls[4].args[1].extra',
      'seccomp.syscalls[4].args[1].value',
      'seccomp.syscalls[5].includes.caps[0]',
      'seccomp.syscalls[5].includes.minKernel',
      'seccomp.syscalls[5].excludes',
      'seccomp.syscalls[6]',
    ]);
  });

  it('requires defaultAction and refuses architectures with archMap', () => {
    expect(fields({})).toEqual(['seccomp.defaultAction']);
    expect(fields({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], archMap: [] })).toEqual(['seccomp.archMap']);
    expect(fields([])).toEqual(['seccomp']);
  });

  it('uses the caller’s field prefix', () => {
    try {
      parseOciSeccomp({ defaultAction: 1 }, 'spec.linux.seccomp');
    } catch (e) {
      expect((e as ConfigError).fields()).toEqual(['spec.linux.seccomp.defaultAction']);
    }
  });
});

let addonError: unknown;
try {
  loadNative();
} catch (e) {
  addonError = e;
}

describe.skipIf(skipBecause(addonError !== undefined && `the addon does not load: ${(addonError as Error).message}`, 'libseccomp compilation'))('compiled by the native addon (libseccomp)', () => {
  const kernel = new NativeKernel();

  it('compiles the default profile to classic BPF', () => {
    const { bpf, unknownSyscalls } = kernel.compileSeccomp(defaultSeccompProfile());
    expect(bpf.length % 8).toBe(0); // struct sock_filter
    expect(bpf.length / 8).toBeGreaterThan(100);
    expect(bpf.length / 8).toBeLessThanOrEqual(4096); // BPF_MAXINSNS
    // Names this libseccomp does not know yet are skipped, never names the profile lacks.
    for (const s of unknownSyscalls) expect(ALLOWED_SYSCALLS).toContain(s);
    for (const s of ['read', 'clone', 'clone3', 'personality', 'socket', 'futex_waitv']) expect(unknownSyscalls).not.toContain(s);
  });

  it('compiles the profile for every capability and for every architecture it knows', () => {
    const all = defaultSeccompProfile({ capabilities: ['CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_MODULE', 'CAP_BPF', 'CAP_PERFMON'] });
    expect(kernel.compileSeccomp(all).bpf.length).toBeGreaterThan(0);
    expect(kernel.compileSeccomp(defaultSeccompProfile({ arch: 'arm64' })).bpf.length).toBeGreaterThan(0);
  });

  it('compiles a validated custom profile', () => {
    const p = parseOciSeccomp({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['mount', 'no_such_syscall'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
    });
    const r = kernel.compileSeccomp(resolveSeccompProfile(p, { capabilities: [] }));
    expect(r.unknownSyscalls).toEqual(['no_such_syscall']);
  });
});
