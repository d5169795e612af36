/**
 * Linux capabilities by name and number, and the 64-bit masks the container init hands to
 * capset(2) and PR_CAPBSET_DROP. Numbers are <linux/capability.h>'s; they never change once
 * a kernel release ships them, so the table is safe to hard-code.
 */

/** Every capability this library knows, indexed by its number. */
export const CAPABILITY_NAMES = [
  'CAP_CHOWN', // 0
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL', // 5
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE', // 10
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', // 15
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', // 20
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', // 25
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL', // 30
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM', // 35
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON', // 5.8
  'CAP_BPF', // 5.8
  'CAP_CHECKPOINT_RESTORE', // 5.9
] as const;

export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

/**
 * Docker's default set (moby oci/caps/defaults.go). Everything else, CAP_SYS_ADMIN above all,
 * is what lets root in a container reach the host kernel's global state.
 */
export const DEFAULT_CAPABILITIES: readonly CapabilityName[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

const BY_NAME = new Map<string, number>(CAPABILITY_NAMES.map((n, i) => [n, i]));

/**
 * "chown", "CHOWN", "cap_chown" and "CAP_CHOWN" all name CAP_CHOWN (Docker accepts each).
 * "ALL" is returned as is; anything unknown gives undefined.
 */
export function normalizeCapability(name: string): CapabilityName | 'ALL' | undefined {
  if (typeof name !== 'string') return undefined;
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  return BY_NAME.has(full) ? (full as CapabilityName) : undefined;
}

export function capabilityNumber(name: CapabilityName): number {
  return BY_NAME.get(name)!;
}

/** The mask with one bit per capability number. */
export function capabilityMask(names: Iterable<CapabilityName>): bigint {
  let m = 0n;
  for (const n of names) m |= 1n << BigInt(capabilityNumber(n));
  return m;
}

/** Bits 0..lastCap: what the running kernel knows. */
export function knownMask(lastCap: number): bigint {
  return (1n << BigInt(lastCap + 1)) - 1n;
}

/**
 * Names for the bits of a mask, in number order; a bit this library has no name for (a
 * capability newer than it) is given as "CAP_<n>".
 */
export function capabilityNames(mask: bigint): string[] {
  const out: string[] = [];
  for (let i = 0; i < 64; i++) {
    if ((mask >> BigInt(i)) & 1n) out.push(CAPABILITY_NAMES[i] ?? `CAP_${i}`);
  }
  return out;
}

/** Sorts names by capability number and removes duplicates. */
export function sortCapabilities(names: Iterable<CapabilityName>): CapabilityName[] {
  return [...new Set(names)].sort((a, b) => capabilityNumber(a) - capabilityNumber(b));
}
