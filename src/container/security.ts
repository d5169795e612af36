/**
 * Bridges a container's security settings to the plan: secure-runtime compiles the profile
 * (capabilities, seccomp BPF, masked paths, rlimits), this hands the result to the plan.
 */
import type { PlanSecurity, PlanUser } from '../plan.js';
import type { Runtime } from '../runtime.js';
import { compileSecurity, SecurityProfile } from '../secure-runtime/index.js';

/** Whether the container gets a user namespace, and how many ids it maps. */
export function userNamespaceOf(profile: unknown): { enabled: boolean; size: number } {
  return { ...SecurityProfile.resolve(profile).userNamespace };
}

export function resolveSecurity(runtime: Runtime, profile: unknown, user: PlanUser): PlanSecurity {
  return compileSecurity(profile as never, user, runtime.kernel, runtime.lastCap());
}
