/**
 * Bridges a container's security settings to the plan: secure-runtime compiles the profile,
 * this turns the result into PlanSecurity.
 */
import type { PlanSecurity, PlanUser } from '../plan.js';
import type { Runtime } from '../runtime.js';
import { capabilityMask, DEFAULT_CAPABILITIES } from '../secure-runtime/capabilities.js';

/** Whether the container gets a user namespace, and how many ids it maps. */
export function userNamespaceOf(_profile: unknown): { enabled: boolean; size: number } {
  return { enabled: true, size: 65536 };
}

export function resolveSecurity(_runtime: Runtime, _profile: unknown, user: PlanUser): PlanSecurity {
  const caps = capabilityMask(DEFAULT_CAPABILITIES);
  const root = user.uid === 0;
  return {
    capabilities: { bounding: caps, effective: root ? caps : 0n, permitted: root ? caps : 0n, inheritable: 0n, ambient: 0n },
    noNewPrivileges: true,
    readonlyRoot: false,
    maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug', '/proc/acpi', '/proc/scsi', '/sys/firmware'],
    readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    rlimits: [],
  };
}
