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
import type { PlanDeviceNode } from './cdi/nodes.js';
import { editSources, type CdiRegistry } from './cdi/registry.js';
import type { PlanNetDevice } from './cdi/netdev.js';
import type { CdiHook, CdiIntelRdt } from './cdi/spec.js';
import { visibleDevicesEnv, type DriverFiles } from './driver.js';
import { assignGpus, type GpuHost, type GpuInventory } from './inventory.js';
import type { MigInstance } from './mig.js';
import { migCapNodes, NVIDIA_CAPS_DIR } from './mig-nodes.js';
import { mpsParts, type GpuShare } from './quota.js';

export const NVIDIA_GPU_KIND = 'nvidia.com/gpu';

export interface GpuPrepareContext {
  engine: 'native' | 'nvidia';
  inventory?: GpuInventory | undefined;
  /** The GPUs and MIG instances the scheduler gave this container; without it the listed or first GPUs. */
  assigned?: { gpus: number[]; mig?: string[] | undefined } | undefined;
  cdi?: (() => CdiRegistry) | undefined;
  driver?: DriverFiles | undefined;
  host: GpuHost;
  devDir: string;
  statNode?: StatNode | undefined;
  mpsPipeDir: string;
  /** The driver's MIG capability files (/proc/driver/nvidia/capabilities). */
  capsDir?: string | undefined;
  exists(path: string): boolean;
  /** A host file's text, undefined when unreadable (MIG capability files). */
  read?(path: string): string | undefined;
}

export interface GpuRequestSpec {
  gpuCount?: number | undefined;
  gpuDevices?: number[] | undefined;
  gpuShare?: GpuShare | undefined;
  gpuMig?: { count: number; profile?: string | undefined } | undefined;
  /** CDI names asked for directly. */
  devices?: string[] | undefined;
}

export interface GpuPlanPart {
  gpus?: { indexes: number[]; uuids?: string[] | undefined; cdi?: string[] | undefined; /** MIG instances by `<gpu>:<index>`. */ mig?: string[] | undefined } | undefined;
  /** Host nodes bound at /dev/<name> (the built-in GPU path). */
  hostNodes: string[];
  /** Host node → container path (CDI), with the spec's own mode and owner when it sets them (cdi/nodes.ts). */
  deviceNodes: PlanDeviceNode[];
  /** The device rules, the defaults included. */
  rules: DeviceRule[];
  mounts: { source: string; target: string; readOnly: boolean }[];
  env: string[];
  hooks: CdiHook[];
  additionalGids: number[];
  /** Host interfaces to move into the container's network namespace (cdi/netdev.ts). */
  netDevices: PlanNetDevice[];
  /** The resctrl class of service to join (cdi/rdt.ts), with where the spec set it. */
  intelRdt?: { rdt: CdiIntelRdt; origin: string } | undefined;
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

/** The MIG instances given by count (not named as CDI devices), from the assignment. */
function countedMig(req: GpuRequestSpec, ctx: GpuPrepareContext): MigInstance[] {
  if (!req.gpuMig) return [];
  const all = (ctx.inventory?.devices ?? []).flatMap((d) => d.migInstances ?? []);
  const named = (m: MigInstance) => [m.id, m.uuid].some((n) => n && req.devices?.includes(`${NVIDIA_GPU_KIND}=${n}`));
  const ids = ctx.assigned?.mig;
  if (!ids) throw new RuntimeError('gpuMig: MIG instances requested but none were assigned', { code: 'EINVAL', step: 'config' });
  return ids.map((id) => {
    const m = all.find((x) => x.id === id);
    if (!m) throw new RuntimeError(`gpuMig: the assigned MIG instance ${id} is no longer on this host (its MIG configuration changed)`, { code: 'ENOTFOUND', step: 'config' });
    return m;
  }).filter((m) => !named(m));
}

export function prepareGpus(req: GpuRequestSpec, ctx: GpuPrepareContext, imageEnv: readonly string[] = []): GpuPlanPart | undefined {
  const wantsGpus = !!req.gpuCount || !!req.gpuDevices?.length;
  if (!wantsGpus && !req.gpuMig && !req.devices?.length) return undefined;
  const part: GpuPlanPart = { hostNodes: [], deviceNodes: [], rules: [...DEFAULT_DEVICE_RULES], mounts: [], env: [], hooks: [], additionalGids: [], netDevices: [] };
  const cdiNames = [...(req.devices ?? [])];
  const registry = ctx.cdi && (cdiNames.length || ((wantsGpus || req.gpuMig) && ctx.engine === 'nvidia')) ? ctx.cdi() : undefined;
  const useCdi = ctx.engine === 'nvidia' && !!registry?.kinds().includes(NVIDIA_GPU_KIND);
  let ourEnv: string[] = [];
  let visible: { uuid?: string | undefined }[] = [];
  const mig = countedMig(req, ctx);
  if (mig.length) {
    if (useCdi) {
      const names = mig.map((m) => {
        const name = [m.id, m.uuid].map((n) => `${NVIDIA_GPU_KIND}=${n}`).find((n) => registry!.has(n));
        if (!name) throw new RuntimeError(`gpuMig: MIG ${m.id} has no device in the CDI specs of ${NVIDIA_GPU_KIND} (they have ${registry!.deviceNames(NVIDIA_GPU_KIND).join(', ')})`, { code: 'ENOTFOUND', step: 'config' });
        return name;
      });
      cdiNames.unshift(...names);
    } else {
      const parents = [...new Set(mig.map((m) => m.gpu))];
      const nodes = assignGpus({ gpuDevices: parents }, ctx.devDir, ctx.host, ctx.inventory)!;
      part.hostNodes = nodes.deviceNodes;
      part.rules = nodes.rules;
      for (const m of mig) {
        const minor = ctx.inventory!.devices.find((d) => d.index === m.gpu)!.minor;
        const caps = migCapNodes(m, minor, { capsDir: ctx.capsDir ?? NVIDIA_CAPS_DIR, devDir: ctx.devDir, procDevices: ctx.host.procDevices, read: ctx.read ?? (() => undefined), exists: ctx.exists });
        part.deviceNodes.push(...caps.deviceNodes);
        part.rules.push(...caps.rules);
      }
      if (ctx.engine === 'nvidia' && ctx.driver) part.mounts.push(...ctx.driver.mounts.map((x) => ({ ...x, readOnly: true })));
    }
    visible = mig;
    part.gpus = { indexes: [], mig: mig.map((m) => m.id) };
  }
  if (wantsGpus) {
    if (!ctx.inventory) throw new RuntimeError('prepare: GPUs requested but no GPU inventory was given', { code: 'EINVAL', step: 'config' });
    const field = req.gpuDevices?.length ? 'gpuDevices' : 'gpuCount';
    const request = ctx.assigned ? { gpuDevices: ctx.assigned.gpus } : { gpuCount: req.gpuCount, gpuDevices: req.gpuDevices };
    const gpus = assignGpus(request, ctx.devDir, ctx.host, ctx.inventory)!;
    const infos = gpus.indexes.map((i) => ctx.inventory!.devices.find((d) => d.index === i)!);
    const uuids = infos.every((d) => d.uuid) ? infos.map((d) => d.uuid!) : undefined;
    let viaCdi: string[] | undefined;
    if (useCdi) {
      viaCdi = infos.map((d) => {
        const name = cdiGpuName(registry!, d.index, d.uuid);
        if (!name) throw new RuntimeError(`${field}: GPU ${d.index} has no device in the CDI specs of ${NVIDIA_GPU_KIND} (they have ${registry!.deviceNames(NVIDIA_GPU_KIND).join(', ')})`, { code: 'ENOTFOUND', step: 'config' });
        return name;
      });
      cdiNames.unshift(...viaCdi);
    } else {
      part.hostNodes = [...new Set([...part.hostNodes, ...gpus.deviceNodes])];
      for (const r of gpus.rules) if (!part.rules.some((x) => JSON.stringify(x) === JSON.stringify(r))) part.rules.push(r);
      if (ctx.engine === 'nvidia' && ctx.driver && !mig.length) part.mounts.push(...ctx.driver.mounts.map((m) => ({ ...m, readOnly: true })));
    }
    visible = [...infos, ...visible];
    if (req.gpuShare) {
      const mps = mpsParts(req.gpuShare, gpus.indexes.length, ctx.mpsPipeDir, ctx.exists);
      if (mps) {
        ourEnv.push(...mps.env);
        part.mounts.push(...mps.mounts);
      }
    }
    part.gpus = { indexes: gpus.indexes, uuids, ...(viaCdi ? { cdi: viaCdi } : {}), ...(part.gpus?.mig ? { mig: part.gpus.mig } : {}) };
  }
  if (ctx.engine === 'nvidia' && visible.length) ourEnv.unshift(...visibleDevicesEnv(visible, imageEnv));
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
    part.deviceNodes.push(
      ...applied.deviceNodes.map((n) => ({
        hostPath: n.hostPath,
        path: n.path,
        ...(n.fileMode !== undefined || n.uid !== undefined || n.gid !== undefined ? { own: { type: n.type, major: n.major, minor: n.minor, fileMode: n.fileMode, uid: n.uid, gid: n.gid } } : {}),
      })),
    );
    for (const r of applied.rules) part.rules.push(r);
    const taken = new Set(part.mounts.map((m) => m.target));
    for (const m of applied.mounts) if (!taken.has(m.target)) part.mounts.push(m);
    part.env = mergeEnv(ourEnv, applied.env);
    part.hooks = applied.hooks;
    part.additionalGids = applied.additionalGids;
    part.netDevices = applied.netDevices;
    part.intelRdt = applied.intelRdt;
  } else part.env = ourEnv;
  return part;
}
