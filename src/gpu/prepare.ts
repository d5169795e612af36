/**
 * The GPU and CDI part of a container's plan. GPUs (chosen by the scheduler, or the listed
 * ones) go through CDI when a spec of `nvidia.com/gpu` describes them and the engine is
 * `nvidia`, exactly as devices named with ContainerConfig.devices() do; without a spec the
 * `nvidia` engine binds their device nodes and injects the host driver's files (driver.ts),
 * and the `native` engine binds device nodes only. Pure: it reads specs and host nodes and
 * changes nothing, so a bad name or a missing node fails before anything exists.
 */
import { RuntimeError } from '../errors.js';
import { DEFAULT_DEVICE_RULES } from '../isolation/devices.js';
import type { DeviceRule } from '../isolation/resources.js';
import { mergeEdits, type StatNode } from './cdi/apply.js';
import { editSources, type CdiRegistry } from './cdi/registry.js';
import type { CdiHook } from './cdi/spec.js';
import { visibleDevicesEnv, type DriverFiles } from './driver.js';
import { assignGpus, type GpuHost, type GpuInventory } from './inventory.js';
import { mpsParts, type GpuShare } from './quota.js';

export const NVIDIA_GPU_KIND = 'nvidia.com/gpu';

export interface GpuPrepareContext {
  engine: 'native' | 'nvidia';
  inventory?: GpuInventory | undefined;
  /** The GPUs the scheduler gave this container; without it the listed or first GPUs. */
  assigned?: number[] | undefined;
  cdi?: (() => CdiRegistry) | undefined;
  driver?: DriverFiles | undefined;
  host: GpuHost;
  devDir: string;
  statNode?: StatNode | undefined;
  mpsPipeDir: string;
  exists(path: string): boolean;
}

export interface GpuRequestSpec {
  gpuCount?: number | undefined;
  gpuDevices?: number[] | undefined;
  gpuShare?: GpuShare | undefined;
  /** CDI names asked for directly. */
  devices?: string[] | undefined;
}

export interface GpuPlanPart {
  gpus?: { indexes: number[]; uuids?: string[] | undefined; cdi?: string[] | undefined } | undefined;
  /** Host nodes bound at /dev/<name> (the built-in GPU path). */
  hostNodes: string[];
  /** Host node → container path (CDI). */
  deviceNodes: { hostPath: string; path: string }[];
  /** The device rules, the defaults included. */
  rules: DeviceRule[];
  mounts: { source: string; target: string; readOnly: boolean }[];
  env: string[];
  hooks: CdiHook[];
  additionalGids: number[];
}

function cdiGpuName(registry: CdiRegistry, index: number, uuid: string | undefined): string | undefined {
  for (const name of [String(index), uuid]) if (name && registry.has(`${NVIDIA_GPU_KIND}=${name}`)) return `${NVIDIA_GPU_KIND}=${name}`;
  return undefined;
}

/** NAME=value lists merged: a later list's value of a name replaces an earlier one's. */
export function mergeEnv(...lists: readonly (readonly string[])[]): string[] {
  const out = new Map<string, string>();
  for (const l of lists) for (const e of l) out.set(e.slice(0, e.indexOf('=')), e);
  return [...out.values()];
}

export function prepareGpus(req: GpuRequestSpec, ctx: GpuPrepareContext, imageEnv: readonly string[] = []): GpuPlanPart | undefined {
  const wantsGpus = !!req.gpuCount || !!req.gpuDevices?.length;
  if (!wantsGpus && !req.devices?.length) return undefined;
  const part: GpuPlanPart = { hostNodes: [], deviceNodes: [], rules: [...DEFAULT_DEVICE_RULES], mounts: [], env: [], hooks: [], additionalGids: [] };
  const cdiNames = [...(req.devices ?? [])];
  const registry = ctx.cdi && (cdiNames.length || (wantsGpus && ctx.engine === 'nvidia')) ? ctx.cdi() : undefined;
  let ourEnv: string[] = [];
  if (wantsGpus) {
    if (!ctx.inventory) throw new RuntimeError('prepare: GPUs requested but no GPU inventory was given', { code: 'EINVAL', step: 'config' });
    const field = req.gpuDevices?.length ? 'gpuDevices' : 'gpuCount';
    const request = ctx.assigned ? { gpuDevices: ctx.assigned } : { gpuCount: req.gpuCount, gpuDevices: req.gpuDevices };
    const gpus = assignGpus(request, ctx.devDir, ctx.host, ctx.inventory)!;
    const infos = gpus.indexes.map((i) => ctx.inventory!.devices.find((d) => d.index === i)!);
    const uuids = infos.every((d) => d.uuid) ? infos.map((d) => d.uuid!) : undefined;
    const useCdi = ctx.engine === 'nvidia' && registry?.kinds().includes(NVIDIA_GPU_KIND);
    let viaCdi: string[] | undefined;
    if (useCdi) {
      viaCdi = infos.map((d) => {
        const name = cdiGpuName(registry!, d.index, d.uuid);
        if (!name) throw new RuntimeError(`${field}: GPU ${d.index} has no device in the CDI specs of ${NVIDIA_GPU_KIND} (they have ${registry!.deviceNames(NVIDIA_GPU_KIND).join(', ')})`, { code: 'ENOTFOUND', step: 'config' });
        return name;
      });
      cdiNames.unshift(...viaCdi);
    } else {
      part.hostNodes = gpus.deviceNodes;
      part.rules = gpus.rules;
      if (ctx.engine === 'nvidia' && ctx.driver) part.mounts.push(...ctx.driver.mounts.map((m) => ({ ...m, readOnly: true })));
    }
    if (ctx.engine === 'nvidia') ourEnv = visibleDevicesEnv(infos, imageEnv);
    if (req.gpuShare) {
      const mps = mpsParts(req.gpuShare, gpus.indexes.length, ctx.mpsPipeDir, ctx.exists);
      if (mps) {
        ourEnv.push(...mps.env);
        part.mounts.push(...mps.mounts);
      }
    }
    part.gpus = { indexes: gpus.indexes, uuids, ...(viaCdi ? { cdi: viaCdi } : {}) };
  }
  if (cdiNames.length) {
    if (!registry) throw new RuntimeError('devices: CDI devices asked for but no CDI registry was given', { code: 'EINVAL', step: 'config' });
    // The GPUs' names come first in the list, so a field index past them is the config's own.
    const offset = cdiNames.length - (req.devices?.length ?? 0);
    let resolved;
    try {
      resolved = registry.resolve(cdiNames);
    } catch (e) {
      const gpuField = req.gpuDevices?.length ? 'gpuDevices' : 'gpuCount';
      if (e instanceof RuntimeError && offset > 0) e.message = e.message.replace(/^devices\[(\d+)\]/, (_, i: string) => (Number(i) < offset ? gpuField : `devices[${Number(i) - offset}]`));
      throw e;
    }
    const applied = mergeEdits(editSources(resolved), ctx.statNode);
    part.deviceNodes.push(...applied.deviceNodes.map((n) => ({ hostPath: n.hostPath, path: n.path })));
    for (const r of applied.rules) part.rules.push(r);
    const taken = new Set(part.mounts.map((m) => m.target));
    for (const m of applied.mounts) if (!taken.has(m.target)) part.mounts.push(m);
    part.env = mergeEnv(ourEnv, applied.env);
    part.hooks = applied.hooks;
    part.additionalGids = applied.additionalGids;
  } else part.env = ourEnv;
  return part;
}
