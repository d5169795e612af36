/** The plain security options a profile is built from, and Docker's defaults for them. */
import type { SeccompProfile } from './seccomp-types.js';

/**
 * runc's and Docker's masked paths: kernel state that is global (not namespaced), leaks
 * host details, or has been an attack vector. /proc/interrupts and thermal_throttle leak
 * per-CPU activity of other tenants; powercap is CVE-2020-8694 (Platypus).
 * A `*` matches one path component; it is expanded against the host's /proc and /sys,
 * which are the same kernel's.
 */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/sys/devices/system/cpu/cpu*/thermal_throttle',
  '/sys/devices/virtual/powercap',
  '/sys/firmware',
];

/** Writable host-wide kernel knobs: /proc/sys (core_pattern, ...), sysrq-trigger, irq affinity. */
export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** RLIMIT_* numbers as the generic Linux ABI (x86, arm, riscv...) has them. */
export const RLIMITS = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
} as const;
export type RlimitName = keyof typeof RLIMITS;

/** RLIM_INFINITY. */
export const RLIM_INFINITY = (1n << 64n) - 1n;

export type RlimitValue = number | bigint | 'unlimited';
export interface RlimitSpec {
  soft: RlimitValue;
  hard: RlimitValue;
}

export const DEFAULT_USERNS_SIZE = 65536;

/** The plain options a profile is built from; everything is optional. */
export interface SecurityOptions {
  /** Changes to the default set (Docker's --cap-add/--cap-drop); names with or without CAP_, or "ALL". */
  capabilities?: { add?: string[]; drop?: string[] };
  /** PR_SET_NO_NEW_PRIVS (default true): setuid binaries and file capabilities grant nothing. */
  noNewPrivileges?: boolean;
  /** 'default' (default), 'unconfined', or an OCI linux.seccomp object / its JSON text. */
  seccomp?: 'default' | 'unconfined' | SeccompProfile | string;
  /** Mount the root filesystem read-only (default false, as Docker). */
  readonlyRoot?: boolean;
  /** Replaces the default masked paths. */
  maskedPaths?: string[];
  /** Replaces the default read-only paths. */
  readonlyPaths?: string[];
  /** By name (RLIMIT_NOFILE or NOFILE); a number sets soft and hard alike. */
  rlimits?: Record<string, RlimitSpec | RlimitValue>;
  /**
   * Run in a user namespace (default on): root inside maps to an unprivileged host uid, so
   * an escape lands without host privileges. `size` ids are mapped (default 65536).
   */
  userNamespace?: boolean | { enabled?: boolean; size?: number };
}

export interface ResolvedRlimit {
  name: RlimitName;
  resource: number;
  soft: bigint;
  hard: bigint;
}
