/** The default seccomp profile in Docker's conditional form, before resolution for one container. */
import { ALLOWED_SYSCALLS } from './seccomp-allowlist.js';
import type { SeccompCondition, SeccompProfile, SeccompRule } from './seccomp-types.js';

const EPERM = 1;
const ENOSYS = 38;
const AF_VSOCK = 40;
/** CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (0x7E020000). */
export const CLONE_NAMESPACE_FLAGS = 0x7e020000;

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
