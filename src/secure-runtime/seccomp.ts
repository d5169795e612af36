/**
 * Seccomp profiles: the default one, validation of user-supplied ones, and resolution of
 * Docker's conditional rules (includes/excludes by capability, architecture and kernel) into
 * the plain OCI `linux.seccomp` shape that native/seccomp.cc compiles.
 */
import { release } from 'node:os';
import { ConfigError, Problems } from '../errors.js';
import type { OciSeccompArg, OciSeccompProfile, OciSeccompRule } from '../kernel/native.js';
import { DEFAULT_CAPABILITIES, normalizeCapability } from './capabilities.js';

export type { OciSeccompArg, OciSeccompProfile, OciSeccompRule };

/** Docker's rule conditions: caps all held, arch among these, kernel at least this. */
export interface SeccompCondition {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

export interface SeccompRule extends OciSeccompRule {
  comment?: string;
  includes?: SeccompCondition;
  excludes?: SeccompCondition;
}

export interface SeccompArchMapEntry {
  architecture: string;
  subArchitectures: string[] | null;
}

/**
 * An OCI `linux.seccomp` object, optionally with Docker's extensions (`archMap`, per-rule
 * `includes`/`excludes`), so Docker's own profile JSON can be used as is.
 */
export interface SeccompProfile extends OciSeccompProfile {
  syscalls?: SeccompRule[];
  archMap?: SeccompArchMapEntry[];
  flags?: string[];
}

export const SECCOMP_ACTIONS = [
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_LOG',
  'SCMP_ACT_TRACE',
] as const;

export const SECCOMP_OPS = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
] as const;

export const SECCOMP_ARCHES = [
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
] as const;

/**
 * Filter flags accepted in a profile, and ignored: the filter is loaded by a single-threaded
 * init, so TSYNC is moot; the others only change logging, speculation mitigations or notify
 * waits, so ignoring them never widens what the filter allows.
 */
export const SECCOMP_FLAGS = [
  'SECCOMP_FILTER_FLAG_TSYNC',
  'SECCOMP_FILTER_FLAG_LOG',
  'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
  'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
] as const;

const EPERM = 1;
const ENOSYS = 38;
const AF_VSOCK = 40;
/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (0x7E020000). */
export const CLONE_NAMESPACE_FLAGS = 0x7e020000;
const MAX_U64 = (1n << 64n) - 1n;

/** The host's architecture in the names Docker's `includes.arches` uses (Go's GOARCH). */
export function dockerArch(arch: string = process.arch): string {
  switch (arch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return 'x86';
    case 'ppc64':
      return 'ppc64le';
    default:
      return arch; // arm64, arm, s390x, riscv64, loong64, mips...
  }
}

/** The seccomp architectures a filter for this host covers: the native one and the ABIs its kernel also runs. */
export function seccompArchitectures(arch: string = process.arch): string[] {
  switch (arch) {
    case 'x64':
      // i386 (int 0x80) and x32 (nr | 0x40000000) are other doors into the same kernel;
      // a filter that only knows x86_64 would leave them to the bad-arch action.
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'arm64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    case 'ia32':
      return ['SCMP_ARCH_X86'];
    case 'arm':
      return ['SCMP_ARCH_ARM'];
    case 'ppc64':
      return ['SCMP_ARCH_PPC64LE'];
    case 's390x':
      return ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'];
    case 'riscv64':
      return ['SCMP_ARCH_RISCV64'];
    case 'loong64':
      return ['SCMP_ARCH_LOONGARCH64'];
    default:
      return [];
  }
}

/**
 * Ordinary syscalls every process may make: Docker's default allowlist (moby
 * profiles/seccomp/default.json), without io_uring_* (see the README) and ptrace's family
 * (only with CAP_SYS_PTRACE), plus syscalls newer than that list that touch only the caller's
 * own state. libseccomp skips names it does not know yet; they are reported, not fatal.
 */
export const ALLOWED_SYSCALLS: readonly string[] = [
  'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'cachestat', 'capget', 'capset',
  'chdir', 'chmod', 'chown', 'chown32', 'clock_adjtime', 'clock_adjtime64', 'clock_getres',
  'clock_getres_time64', 'clock_gettime', 'clock_gettime64', 'clock_nanosleep', 'clock_nanosleep_time64',
  'close', 'close_range', 'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3', 'epoll_create',
  'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old',
  'eventfd', 'eventfd2', 'execve', 'execveat', 'exit', 'exit_group', 'faccessat', 'faccessat2', 'fadvise64',
  'fadvise64_64', 'fallocate', 'fanotify_mark', 'fchdir', 'fchmod', 'fchmodat', 'fchmodat2', 'fchown',
  'fchown32', 'fchownat', 'fcntl', 'fcntl64', 'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fork',
  'fremovexattr', 'fsetxattr', 'fstat', 'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64', 'fsync', 'ftruncate',
  'ftruncate64', 'futex', 'futex_requeue', 'futex_time64', 'futex_wait', 'futex_waitv', 'futex_wake',
  'futimesat', 'getcpu', 'getcwd', 'getdents', 'getdents64', 'getegid', 'getegid32', 'geteuid', 'geteuid32',
  'getgid', 'getgid32', 'getgroups', 'getgroups32', 'getitimer', 'getpeername', 'getpgid', 'getpgrp', 'getpid',
  'getppid', 'getpriority', 'getrandom', 'getresgid', 'getresgid32', 'getresuid', 'getresuid32', 'getrlimit',
  'get_robust_list', 'getrusage', 'getsid', 'getsockname', 'getsockopt', 'get_thread_area', 'gettid',
  'gettimeofday', 'getuid', 'getuid32', 'getxattr', 'getxattrat', 'inotify_add_watch', 'inotify_init',
  'inotify_init1', 'inotify_rm_watch', 'io_cancel', 'ioctl', 'io_destroy', 'io_getevents', 'io_pgetevents',
  'io_pgetevents_time64', 'ioprio_get', 'ioprio_set', 'io_setup', 'io_submit', 'ipc', 'kill',
  'landlock_add_rule', 'landlock_create_ruleset', 'landlock_restrict_self', 'lchown', 'lchown32', 'lgetxattr',
  'link', 'linkat', 'listen', 'listmount', 'listxattr', 'listxattrat', 'llistxattr', '_llseek', 'lremovexattr',
  'lseek', 'lsetxattr', 'lsm_get_self_attr', 'lsm_list_modules', 'lsm_set_self_attr', 'lstat', 'lstat64',
  'madvise', 'map_shadow_stack', 'membarrier', 'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat',
  'mknod', 'mknodat', 'mlock', 'mlock2', 'mlockall', 'mmap', 'mmap2', 'mprotect', 'mq_getsetattr', 'mq_notify',
  'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64', 'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink',
  'mremap', 'mseal', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'msync', 'munlock', 'munlockall', 'munmap',
  'name_to_handle_at', 'nanosleep', 'newfstatat', '_newselect', 'open', 'openat', 'openat2', 'pause',
  'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free', 'pkey_mprotect', 'poll',
  'ppoll', 'ppoll_time64', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64', 'process_mrelease',
  'pselect6', 'pselect6_time64', 'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead', 'readlink',
  'readlinkat', 'readv', 'recv', 'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg', 'remap_file_pages',
  'removexattr', 'removexattrat', 'rename', 'renameat', 'renameat2', 'restart_syscall', 'rmdir', 'rseq',
  'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn', 'rt_sigsuspend',
  'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo', 'sched_getaffinity', 'sched_getattr',
  'sched_getparam', 'sched_get_priority_max', 'sched_get_priority_min', 'sched_getscheduler',
  'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_setaffinity', 'sched_setattr',
  'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'select', 'semctl', 'semget', 'semop',
  'semtimedop', 'semtimedop_time64', 'send', 'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg', 'sendto',
  'setfsgid', 'setfsgid32', 'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32',
  'setitimer', 'setpgid', 'setpriority', 'setregid', 'setregid32', 'setresgid', 'setresgid32', 'setresuid',
  'setresuid32', 'setreuid', 'setreuid32', 'setrlimit', 'set_robust_list', 'setsid', 'setsockopt',
  'set_thread_area', 'set_tid_address', 'setuid', 'setuid32', 'setxattr', 'setxattrat', 'shmat', 'shmctl',
  'shmdt', 'shmget', 'shutdown', 'sigaltstack', 'signalfd', 'signalfd4', 'sigprocmask', 'sigreturn',
  'socketcall', 'socketpair', 'splice', 'stat', 'stat64', 'statfs', 'statfs64', 'statmount', 'statx',
  'symlink', 'symlinkat', 'sync', 'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'tgkill', 'time',
  'timer_create', 'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime',
  'timer_settime64', 'timerfd_create', 'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime',
  'timerfd_settime64', 'times', 'tkill', 'truncate', 'truncate64', 'ugetrlimit', 'umask', 'uname', 'unlink',
  'unlinkat', 'uretprobe', 'utime', 'utimensat', 'utimensat_time64', 'utimes', 'vfork', 'vmsplice', 'wait4',
  'waitid', 'waitpid', 'write', 'writev',
];

const allow = (names: string[], extra: Partial<SeccompRule> = {}): SeccompRule => ({
  names,
  action: 'SCMP_ACT_ALLOW',
  ...extra,
});
const withCaps = (...caps: string[]): SeccompCondition => ({ caps });
const onArches = (...arches: string[]): SeccompCondition => ({ arches });

/**
 * The default profile as Docker writes its own: rules that apply only when the container
 * holds a capability (`includes.caps`) or runs on an architecture (`includes.arches`).
 * `defaultSeccompProfile()` resolves it for one capability set; this form is what to copy
 * when writing a custom profile (it is accepted as is).
 */
export function defaultSeccompTemplate(): SeccompProfile {
  const personality = [0, 8, 0x20000, 0x20008, 0xffffffff].map((v) =>
    allow(['personality'], {
      // PER_LINUX, PER_LINUX32, UNAME26 and the query: the only personalities with a use.
      // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC and friends weaken exploit mitigations.
      args: [{ index: 0, value: v, op: 'SCMP_CMP_EQ' }],
    }),
  );
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: EPERM,
    archMap: [
      { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
      { architecture: 'SCMP_ARCH_S390X', subArchitectures: ['SCMP_ARCH_S390'] },
      { architecture: 'SCMP_ARCH_PPC64LE', subArchitectures: null },
      { architecture: 'SCMP_ARCH_RISCV64', subArchitectures: null },
      { architecture: 'SCMP_ARCH_LOONGARCH64', subArchitectures: null },
    ],
    syscalls: [
      allow([...ALLOWED_SYSCALLS]),
      allow(['socket'], {
        comment: 'AF_VSOCK reaches the hypervisor and is not confined by network namespaces',
        args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_NE' }],
      }),
      ...personality,
      allow(['sync_file_range2', 'swapcontext'], { includes: onArches('ppc64le') }),
      allow(['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls'], {
        includes: onArches('arm', 'arm64'),
      }),
      allow(['arch_prctl'], { includes: onArches('amd64', 'x32') }),
      allow(['modify_ldt'], { includes: onArches('amd64', 'x32', 'x86') }),
      allow(['s390_pci_mmio_read', 's390_pci_mmio_write', 's390_runtime_instr'], { includes: onArches('s390', 's390x') }),
      allow(['riscv_flush_icache', 'riscv_hwprobe'], { includes: onArches('riscv64') }),
      // Shocker (2014): with CAP_DAC_READ_SEARCH a handle reaches any inode of the filesystem.
      allow(['open_by_handle_at'], { includes: withCaps('CAP_DAC_READ_SEARCH') }),
      allow(
        [
          'bpf', 'clone', 'clone3', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie',
          'mount', 'mount_setattr', 'move_mount', 'open_tree', 'perf_event_open', 'quotactl', 'quotactl_fd',
          'setdomainname', 'sethostname', 'setns', 'syslog', 'umount', 'umount2', 'unshare',
        ],
        { includes: withCaps('CAP_SYS_ADMIN') },
      ),
      allow(['clone'], {
        comment: 'new namespaces are a kernel attack surface (user namespaces above all) the agent has no use for',
        args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, op: 'SCMP_CMP_MASKED_EQ' }],
        excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] },
      }),
      allow(['clone'], {
        comment: 's390 passes the flags in the second argument',
        args: [{ index: 1, value: CLONE_NAMESPACE_FLAGS, op: 'SCMP_CMP_MASKED_EQ' }],
        includes: onArches('s390', 's390x'),
        excludes: withCaps('CAP_SYS_ADMIN'),
      }),
      {
        names: ['clone3'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: ENOSYS,
        comment: 'its flags sit behind a pointer seccomp cannot read; ENOSYS makes libc fall back to clone',
        excludes: withCaps('CAP_SYS_ADMIN'),
      },
      allow(['reboot'], { includes: withCaps('CAP_SYS_BOOT') }),
      allow(['chroot'], { includes: withCaps('CAP_SYS_CHROOT') }),
      allow(['delete_module', 'init_module', 'finit_module'], { includes: withCaps('CAP_SYS_MODULE') }),
      allow(['acct'], { includes: withCaps('CAP_SYS_PACCT') }),
      allow(['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'], {
        includes: withCaps('CAP_SYS_PTRACE'),
      }),
      allow(['iopl', 'ioperm'], { includes: withCaps('CAP_SYS_RAWIO') }),
      allow(['settimeofday', 'stime', 'clock_settime', 'clock_settime64'], { includes: withCaps('CAP_SYS_TIME') }),
      allow(['vhangup'], { includes: withCaps('CAP_SYS_TTY_CONFIG') }),
      allow(['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'], { includes: withCaps('CAP_SYS_NICE') }),
      allow(['syslog'], { includes: withCaps('CAP_SYSLOG') }),
      allow(['bpf'], { includes: withCaps('CAP_BPF') }),
      allow(['perf_event_open'], { includes: withCaps('CAP_PERFMON') }),
    ],
  };
}

export interface SeccompResolveContext {
  /** The container's capability set (its bounding set), CAP_ names. */
  capabilities: readonly string[];
  /** Node's `process.arch` spelling. */
  arch?: string;
  /** `uname -r` of the host, for `minKernel`. */
  kernelRelease?: string;
}

function parseKernelVersion(s: string): number[] {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(s);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : [0, 0, 0];
}

function kernelAtLeast(running: string, min: string): boolean {
  const a = parseKernelVersion(running);
  const b = parseKernelVersion(min);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return true;
}

/**
 * Turns a profile with Docker's conditional rules into a plain OCI profile for one
 * container: the architectures for this host, and only the rules whose conditions hold.
 */
export function resolveSeccompProfile(profile: SeccompProfile, ctx: SeccompResolveContext): OciSeccompProfile {
  const arch = ctx.arch ?? process.arch;
  const goArch = dockerArch(arch);
  const kernel = ctx.kernelRelease ?? release();
  const caps = new Set(ctx.capabilities.map((c) => normalizeCapability(c) ?? c));
  let architectures = profile.architectures ? [...profile.architectures] : [];
  if (profile.archMap) {
    const native = seccompArchitectures(arch)[0];
    const entry = profile.archMap.find((e) => e.architecture === native);
    architectures = entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : [];
  }
  const syscalls: OciSeccompRule[] = [];
  for (const rule of profile.syscalls ?? []) {
    const ex = rule.excludes;
    if (ex?.arches?.includes(goArch)) continue;
    if (ex?.caps?.some((c) => caps.has(normalizeCapability(c) ?? c))) continue;
    if (ex?.minKernel && kernelAtLeast(kernel, ex.minKernel)) continue;
    const inc = rule.includes;
    if (inc?.arches && inc.arches.length > 0 && !inc.arches.includes(goArch)) continue;
    if (inc?.caps?.some((c) => !caps.has(normalizeCapability(c) ?? c))) continue;
    if (inc?.minKernel && !kernelAtLeast(kernel, inc.minKernel)) continue;
    const out: OciSeccompRule = { names: [...rule.names], action: rule.action };
    if (rule.errnoRet !== undefined) out.errnoRet = rule.errnoRet;
    if (rule.args && rule.args.length > 0) out.args = rule.args.map((a) => ({ ...a }));
    syscalls.push(out);
  }
  const out: OciSeccompProfile = { defaultAction: profile.defaultAction, syscalls };
  if (profile.defaultErrnoRet !== undefined) out.defaultErrnoRet = profile.defaultErrnoRet;
  if (architectures.length > 0) out.architectures = architectures;
  return out;
}

export interface DefaultSeccompOptions {
  /** The container's capability set; default: Docker's 14 (DEFAULT_CAPABILITIES). */
  capabilities?: readonly string[];
  arch?: string;
  kernelRelease?: string;
}

/** The default profile resolved for one capability set and this host, ready to compile. */
export function defaultSeccompProfile(opts: DefaultSeccompOptions = {}): OciSeccompProfile {
  return resolveSeccompProfile(defaultSeccompTemplate(), {
    capabilities: opts.capabilities ?? DEFAULT_CAPABILITIES,
    arch: opts.arch,
    kernelRelease: opts.kernelRelease,
  });
}

/** Syscall names a profile lets through for this host and capability set, with or without argument conditions. */
export function allowedSyscalls(profile: OciSeccompProfile): { unconditional: Set<string>; conditional: Set<string> } {
  const unconditional = new Set<string>();
  const conditional = new Set<string>();
  const allowAll = profile.defaultAction === 'SCMP_ACT_ALLOW' || profile.defaultAction === 'SCMP_ACT_LOG';
  for (const r of profile.syscalls ?? []) {
    const allows = r.action === 'SCMP_ACT_ALLOW' || r.action === 'SCMP_ACT_LOG';
    if (!allows || allowAll) continue;
    for (const n of r.names) (r.args && r.args.length > 0 ? conditional : unconditional).add(n);
  }
  for (const n of unconditional) conditional.delete(n);
  return { unconditional, conditional };
}

// ---------------------------------------------------------------------------------------
// Validation of user-supplied profiles

const NAME_RE = /^[a-z_][a-z0-9_]*$/;
const KERNEL_RE = /^\d+\.\d+(?:\.\d+)?$/;
const TOP_KEYS = new Set(['defaultAction', 'defaultErrnoRet', 'architectures', 'archMap', 'flags', 'syscalls', 'listenerPath', 'listenerMetadata']);
const RULE_KEYS = new Set(['names', 'name', 'action', 'errnoRet', 'args', 'comment', 'includes', 'excludes']);
const ARG_KEYS = new Set(['index', 'value', 'valueTwo', 'op']);
const COND_KEYS = new Set(['caps', 'arches', 'minKernel']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value as a message shows it (bigints with their n). */
export function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}n`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

function unknownKeys(o: Record<string, unknown>, allowed: Set<string>, field: string, problems: Problems): void {
  for (const k of Object.keys(o)) {
    if (!allowed.has(k)) problems.add(`${field}.${k}`, 'unknown field');
  }
}

function checkErrno(v: unknown, field: string, problems: Problems): number | undefined {
  if (v === undefined) return undefined;
  // The kernel clamps SECCOMP_RET_ERRNO data to MAX_ERRNO (4095).
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 4095) {
    problems.add(field, `expected an errno number 0..4095, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function checkAction(v: unknown, field: string, problems: Problems): string | undefined {
  if (typeof v !== 'string') {
    problems.add(field, `expected one of ${SECCOMP_ACTIONS.join(', ')}, got ${describe(v)}`);
    return undefined;
  }
  if (v === 'SCMP_ACT_NOTIFY') {
    problems.add(field, 'SCMP_ACT_NOTIFY needs a seccomp agent, which this runtime does not run');
    return undefined;
  }
  if (!(SECCOMP_ACTIONS as readonly string[]).includes(v)) {
    problems.add(field, `expected one of ${SECCOMP_ACTIONS.join(', ')}, got ${describe(v)}`);
    return undefined;
  }
  return v;
}

function checkU64(v: unknown, field: string, problems: Problems): number | bigint | undefined {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) problems.add(field, `expected a non-negative integer, got ${describe(v)}`);
    else if (!Number.isSafeInteger(v)) problems.add(field, `${v} is beyond 2^53 and lost precision in JSON; give it as a decimal string or a bigint`);
    else return v;
    return undefined;
  }
  let b: bigint | undefined;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'string' && /^(?:0|[1-9]\d*|0x[0-9a-fA-F]+)$/.test(v)) b = BigInt(v);
  if (b === undefined || b < 0n || b > MAX_U64) {
    problems.add(field, `expected an integer 0..2^64-1, got ${describe(v)}`);
    return undefined;
  }
  return b;
}

function checkCondition(v: unknown, field: string, problems: Problems): SeccompCondition | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) {
    problems.add(field, `expected an object with caps, arches or minKernel, got ${describe(v)}`);
    return undefined;
  }
  unknownKeys(v, COND_KEYS, field, problems);
  const out: SeccompCondition = {};
  if (v.caps !== undefined) {
    if (!Array.isArray(v.caps)) problems.add(`${field}.caps`, 'expected an array of capability names');
    else {
      out.caps = [];
      v.caps.forEach((c, i) => {
        const n = typeof c === 'string' ? normalizeCapability(c) : undefined;
        if (n === undefined || n === 'ALL') problems.add(`${field}.caps[${i}]`, `unknown capability ${describe(c)}`);
        else out.caps!.push(n);
      });
    }
  }
  if (v.arches !== undefined) {
    if (!Array.isArray(v.arches) || v.arches.some((a) => typeof a !== 'string')) {
      problems.add(`${field}.arches`, 'expected an array of architecture names (amd64, arm64, x86, ...)');
    } else out.arches = [...(v.arches as string[])];
  }
  if (v.minKernel !== undefined) {
    if (typeof v.minKernel !== 'string' || !KERNEL_RE.test(v.minKernel)) {
      problems.add(`${field}.minKernel`, `expected a kernel version like "5.8", got ${describe(v.minKernel)}`);
    } else out.minKernel = v.minKernel;
  }
  return out;
}

function checkArch(v: unknown, field: string, problems: Problems): string | undefined {
  if (typeof v !== 'string' || !(SECCOMP_ARCHES as readonly string[]).includes(v)) {
    problems.add(field, `unknown architecture ${describe(v)} (expected SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, ...)`);
    return undefined;
  }
  return v;
}

function checkRule(v: unknown, field: string, problems: Problems): SeccompRule | undefined {
  if (!isObject(v)) {
    problems.add(field, `expected an object with names and action, got ${describe(v)}`);
    return undefined;
  }
  unknownKeys(v, RULE_KEYS, field, problems);
  const names: string[] = [];
  if (v.names === undefined && typeof v.name === 'string') {
    // Docker's older spelling: one rule per syscall.
    if (!NAME_RE.test(v.name)) problems.add(`${field}.name`, `not a syscall name: ${describe(v.name)}`);
    else names.push(v.name);
  } else if (!Array.isArray(v.names) || v.names.length === 0) {
    problems.add(`${field}.names`, 'expected a non-empty array of syscall names');
  } else {
    v.names.forEach((n, i) => {
      if (typeof n !== 'string' || !NAME_RE.test(n)) problems.add(`${field}.names[${i}]`, `not a syscall name: ${describe(n)}`);
      else names.push(n);
    });
  }
  const action = checkAction(v.action, `${field}.action`, problems);
  const errnoRet = checkErrno(v.errnoRet, `${field}.errnoRet`, problems);
  if (errnoRet !== undefined && action !== undefined && action !== 'SCMP_ACT_ERRNO' && action !== 'SCMP_ACT_TRACE') {
    problems.add(`${field}.errnoRet`, `only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, the action is ${action}`);
  }
  const args: OciSeccompArg[] = [];
  if (v.args !== undefined && v.args !== null) {
    if (!Array.isArray(v.args)) problems.add(`${field}.args`, 'expected an array');
    else {
      v.args.forEach((a, i) => {
        const af = `${field}.args[${i}]`;
        if (!isObject(a)) {
          problems.add(af, `expected an object with index, value and op, got ${describe(a)}`);
          return;
        }
        unknownKeys(a, ARG_KEYS, af, problems);
        const index = a.index;
        if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 5) {
          problems.add(`${af}.index`, `expected an argument index 0..5, got ${describe(index)}`);
        }
        const value = checkU64(a.value, `${af}.value`, problems);
        const valueTwo = a.valueTwo === undefined ? undefined : checkU64(a.valueTwo, `${af}.valueTwo`, problems);
        const op = a.op;
        if (typeof op !== 'string' || !(SECCOMP_OPS as readonly string[]).includes(op)) {
          problems.add(`${af}.op`, `expected one of ${SECCOMP_OPS.join(', ')}, got ${describe(op)}`);
        }
        if (value !== undefined && typeof index === 'number' && typeof op === 'string') {
          const arg: OciSeccompArg = { index, value, op };
          if (valueTwo !== undefined) arg.valueTwo = valueTwo;
          args.push(arg);
        }
      });
    }
  }
  const includes = checkCondition(v.includes, `${field}.includes`, problems);
  const excludes = checkCondition(v.excludes, `${field}.excludes`, problems);
  if (v.comment !== undefined && typeof v.comment !== 'string') problems.add(`${field}.comment`, 'expected a string');
  if (action === undefined) return undefined;
  const rule: SeccompRule = { names, action };
  if (errnoRet !== undefined) rule.errnoRet = errnoRet;
  if (args.length > 0) rule.args = args;
  if (typeof v.comment === 'string') rule.comment = v.comment;
  if (includes) rule.includes = includes;
  if (excludes) rule.excludes = excludes;
  return rule;
}

/**
 * Validates a seccomp profile into `problems` (fields named from `field`, e.g.
 * `seccomp.syscalls[3].action`) and returns its normalized copy, or undefined when invalid.
 */
export function checkSeccompProfile(input: unknown, field: string, problems: Problems): SeccompProfile | undefined {
  let v = input;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch (e) {
      problems.add(field, `not valid JSON: ${(e as Error).message}`);
      return undefined;
    }
  }
  if (!isObject(v)) {
    problems.add(field, `expected an OCI linux.seccomp object, 'default' or 'unconfined', got ${describe(v)}`);
    return undefined;
  }
  const before = problems.list.length;
  unknownKeys(v, TOP_KEYS, field, problems);
  const defaultAction = checkAction(v.defaultAction, `${field}.defaultAction`, problems);
  const defaultErrnoRet = checkErrno(v.defaultErrnoRet, `${field}.defaultErrnoRet`, problems);
  let architectures: string[] | undefined;
  if (v.architectures !== undefined && v.architectures !== null) {
    if (!Array.isArray(v.architectures)) problems.add(`${field}.architectures`, 'expected an array');
    else architectures = v.architectures.map((a, i) => checkArch(a, `${field}.architectures[${i}]`, problems) ?? '');
  }
  let archMap: SeccompArchMapEntry[] | undefined;
  if (v.archMap !== undefined && v.archMap !== null) {
    if (!Array.isArray(v.archMap)) problems.add(`${field}.archMap`, 'expected an array');
    else {
      if (architectures && architectures.length > 0) {
        problems.add(`${field}.archMap`, 'give either architectures or archMap, not both');
      }
      archMap = v.archMap.map((e, i) => {
        const ef = `${field}.archMap[${i}]`;
        if (!isObject(e)) {
          problems.add(ef, 'expected an object with architecture and subArchitectures');
          return { architecture: '', subArchitectures: null };
        }
        const architecture = checkArch(e.architecture, `${ef}.architecture`, problems) ?? '';
        let subArchitectures: string[] | null = null;
        if (e.subArchitectures !== undefined && e.subArchitectures !== null) {
          if (!Array.isArray(e.subArchitectures)) problems.add(`${ef}.subArchitectures`, 'expected an array or null');
          else subArchitectures = e.subArchitectures.map((a, k) => checkArch(a, `${ef}.subArchitectures[${k}]`, problems) ?? '');
        }
        return { architecture, subArchitectures };
      });
    }
  }
  let flags: string[] | undefined;
  if (v.flags !== undefined && v.flags !== null) {
    if (!Array.isArray(v.flags)) problems.add(`${field}.flags`, 'expected an array');
    else {
      flags = [];
      v.flags.forEach((f, i) => {
        if (typeof f !== 'string' || !(SECCOMP_FLAGS as readonly string[]).includes(f)) {
          problems.add(`${field}.flags[${i}]`, `unknown flag ${describe(f)} (expected one of ${SECCOMP_FLAGS.join(', ')})`);
        } else flags!.push(f);
      });
    }
  }
  for (const k of ['listenerPath', 'listenerMetadata'] as const) {
    if (v[k] !== undefined && v[k] !== '') problems.add(`${field}.${k}`, 'seccomp notify agents are not supported by this runtime');
  }
  const syscalls: SeccompRule[] = [];
  if (v.syscalls !== undefined && v.syscalls !== null) {
    if (!Array.isArray(v.syscalls)) problems.add(`${field}.syscalls`, 'expected an array of rules');
    else v.syscalls.forEach((r, i) => {
      const rule = checkRule(r, `${field}.syscalls[${i}]`, problems);
      if (rule) syscalls.push(rule);
    });
  }
  if (problems.list.length > before || defaultAction === undefined) return undefined;
  const out: SeccompProfile = { defaultAction, syscalls };
  if (defaultErrnoRet !== undefined) out.defaultErrnoRet = defaultErrnoRet;
  if (architectures) out.architectures = architectures;
  if (archMap) out.archMap = archMap;
  if (flags) out.flags = flags;
  return out;
}

/**
 * Validates an OCI `linux.seccomp` object (or its JSON text); Docker's profile extensions
 * (archMap, includes/excludes) are accepted. Throws a ConfigError naming every bad field.
 */
export function parseOciSeccomp(input: unknown, field = 'seccomp'): SeccompProfile {
  const problems = new Problems();
  const out = checkSeccompProfile(input, field, problems);
  problems.throwIfAny('invalid seccomp profile');
  if (!out) throw new ConfigError('invalid seccomp profile', [{ field, problem: 'invalid' }]);
  return out;
}
