/**
 * `io.stratoswarm.personality`: a pod asks for a personality, and the personality's
 * allocation (personality/allocate.ts) for what the engine requested decides the settings
 * the engine left to the runtime — CPU weight, memory reservation, the pids limit, and the
 * hard caps when the personality enforces them. What the engine set itself stays as it is.
 */
import type { Resources } from '../isolation/resources.js';
import { allocateResources, type ResourcePlan } from '../personality/allocate.js';
import { Personality } from '../personality/personality.js';

export interface PersonalityAllocation {
  personality: string;
  plan: ResourcePlan;
  resources: Resources;
}

export function personalityResources(name: string, given: Resources): PersonalityAllocation {
  const personality = Personality.byName(name);
  const plan = allocateResources(personality, { cpu: given.cpuLimit, memory: given.memoryLimit, pids: given.pidsLimit }, undefined, undefined, 0);
  const r: Resources = { ...given };
  r.cpuWeight ??= plan.cpuWeight;
  r.pidsLimit ??= plan.pidsLimit;
  if (plan.hardLimits) {
    r.cpuLimit ??= plan.cpuLimit;
    r.memoryLimit ??= plan.memoryLimit;
  }
  // A reservation above the limit would be refused: the limit the engine set bounds it.
  r.memoryReservation ??= Math.min(plan.memoryReservation, r.memoryLimit ?? plan.memoryReservation);
  const { updatedAtMs: _t, ...stable } = plan;
  return { personality: personality.name, plan: stable, resources: r };
}
