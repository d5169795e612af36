/**
 * Live resource changes, all or nothing: cgroup files first (the driver restores what it
 * wrote if one write fails), then the bandwidth shaping, whose failure puts the cgroup
 * files back. The cgroup rules are isolation/container-limits.ts.
 */
import { RuntimeError } from '../errors.js';
import { inheritedCpuset, updateLimits, type LimitContext } from '../isolation/container-limits.js';
import { ContainerConfig, type ResourceSpec } from './config.js';
import { isLive, resourcesOf, type ContainerContext } from './context.js';
import type { ResourcePlan } from '../personality/allocate.js';
import type { ResourceUpdate } from './types.js';

function limitContext(ctx: ContainerContext): LimitContext {
  return {
    blockDevice: () => ctx.parts.kernel.blockDevice(ctx.rec.paths.storageDir),
    inheritedCpuset: () => inheritedCpuset(ctx.parts.kernel, ctx.parts.cgroups.dirs(ctx.rec.id)),
  };
}

/**
 * Applies `changes`; `save` = false leaves the record's file to the caller (evolution saves
 * less often). `validated`: the caller has checked that the settings after the change form a
 * valid configuration (evolution checks its bounds once, validSettingsBox below). `cached`:
 * the cgroup files hold what this runtime last wrote (evolution, which owns the limits while
 * it runs); they are not read back first.
 */
export async function applyResources(ctx: ContainerContext, changes: ResourceUpdate, save: boolean, validated = false, cached = false): Promise<void> {
  const { rec, parts } = ctx;
  const name = rec.name;
  if (!isLive(rec.state)) throw new RuntimeError(`update container ${name}: it is ${rec.state}`, { code: 'ESTATE', step: 'state', containerId: rec.id });
  const before = resourcesOf(ctx);
  const after: ResourceSpec = { ...before };
  for (const [k, v] of Object.entries(changes) as [keyof ResourceSpec, unknown][]) {
    if (v === null) delete after[k];
    else if (v !== undefined) (after as Record<string, unknown>)[k] = v;
  }
  // The same validation as at build time, naming each bad field.
  if (!validated) validateSettings(ctx, after);
  const gpusChange = (changes.gpuCount !== undefined || changes.gpuDevices !== undefined) && JSON.stringify(after.gpuDevices) !== JSON.stringify(before.gpuDevices);
  if (gpusChange || (changes.gpuMig !== undefined && JSON.stringify(after.gpuMig) !== JSON.stringify(before.gpuMig))) {
    throw new RuntimeError(`update container ${name}: GPUs and MIG instances are assigned at create and cannot change while it exists`, { code: 'EUNSUPPORTED', step: 'config', containerId: rec.id });
  }
  const bandwidthChanges = changes.networkBandwidth !== undefined && after.networkBandwidth !== before.networkBandwidth;
  if (bandwidthChanges && !rec.network) {
    throw new RuntimeError(`update container ${name}: networkBandwidth needs network "bridge"`, { code: 'EINVAL', step: 'config', containerId: rec.id });
  }
  const limits = limitContext(ctx);
  parts.cgroups.update(rec.id, updateLimits(changes, after, limits), { cached });
  if (bandwidthChanges) {
    const n = rec.network!;
    try {
      n.result = await parts.network.setBandwidth(rec.id, `/proc/${rec.pid}/ns/net`, n.result as never, before.networkBandwidth, after.networkBandwidth);
      n.bandwidthMbps = after.networkBandwidth;
    } catch (e) {
      parts.cgroups.update(rec.id, updateLimits(changes, before, limits, true));
      throw e instanceof RuntimeError ? e.wrap(`update container ${name}: networkBandwidth`) : e;
    }
  }
  rec.resources = { ...after };
  if (save) parts.state.save(rec);
  ctx.log.debug({ changes }, 'resources updated');
}

function validateSettings(ctx: ContainerContext, resources: ResourceSpec): void {
  const spec = ctx.config.spec;
  ContainerConfig.fromSpec({ ...spec, personality: spec.personality, resources } as never);
}

/**
 * Checks that every setting of `names` anywhere in [min, max] (the others as they are now)
 * is a valid configuration, by checking the box's corners: the configuration's rules on
 * these settings are ranges and orderings between two of them, linear inequalities, which
 * hold on the whole box when they hold on its corners. False when a corner is invalid (each
 * change is then validated on its own) or there are too many settings to check this way.
 */
export function validSettingsBox(ctx: ContainerContext, bounds: readonly { name: string; min: number; max: number }[]): boolean {
  if (bounds.length > 4) return false;
  const base = resourcesOf(ctx) as Record<string, unknown>;
  for (let corner = 0; corner < 1 << bounds.length; corner++) {
    const at: Record<string, unknown> = { ...base };
    bounds.forEach((b, i) => (at[b.name] = corner & (1 << i) ? b.max : b.min));
    try {
      validateSettings(ctx, at as ResourceSpec);
    } catch {
      return false;
    }
  }
  return true;
}

/** A personality's resource plan as a live update (soft limits: no cap, only the reservation). */
export function planUpdate(plan: ResourcePlan): ResourceUpdate {
  return {
    cpuLimit: plan.hardLimits ? Math.max(0.01, Math.round(plan.cpuLimit * 100) / 100) : null,
    cpuWeight: Math.max(1, Math.min(10000, Math.round(plan.cpuWeight))),
    // A cooperative personality keeps only the reservation it holds under pressure (soft
    // limit / memory.low).
    memoryLimit: plan.hardLimits ? Math.max(4 * 1024 * 1024, Math.ceil(plan.memoryLimit / 4096) * 4096) : null,
    memoryReservation: plan.memoryReservation > 0 ? Math.ceil(plan.memoryReservation / 4096) * 4096 : null,
    pidsLimit: plan.pidsLimit,
  };
}
