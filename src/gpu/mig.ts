/**
 * MIG instances as the scheduler sees them. A GPU with MIG on runs CUDA only through its MIG
 * devices (one compute instance of a GPU instance each); NVML lists them per parent GPU with
 * an index, a UUID (`MIG-...`), a name ending in the profile (`... MIG 1g.10gb`) and their
 * memory. Each is named `<gpu>:<index>`, as the NVIDIA toolkit's generated CDI spec names
 * them (`nvidia.com/gpu=0:1`). They are assigned like GPUs: exclusive unless both holder
 * and newcomer share, by count (of one profile or any), or by name or UUID through CDI; a
 * request that cannot be met names what holds each instance.
 */
import { RuntimeError } from '../errors.js';
import type { NvmlDevice } from '../kernel/native.js';
import type { GpuAssignmentRecord, GpuStrategy, NumaDistance, SchedulableGpu } from './scheduler.js';

export interface MigInstance {
  /** `<gpu>:<index>`, the CDI device name of the toolkit's spec. */
  id: string;
  /** The parent GPU (NVML index). */
  gpu: number;
  /** NVML's MIG device index on the parent. */
  index: number;
  uuid?: string | undefined;
  /** `1g.10gb`, `3g.40gb`, `1c.2g.20gb`, from NVML's name; undefined when it does not say. */
  profile?: string | undefined;
  memoryBytes?: number | undefined;
  gpuInstanceId?: number | undefined;
  computeInstanceId?: number | undefined;
  /** Containers holding it (runtime.gpus()). */
  assignedTo?: string[] | undefined;
}

/** A MIG profile as NVML and nvidia-smi spell it: `1g.10gb`, `1c.2g.20gb`, `1g.10gb+me`. */
export const MIG_PROFILE = /^(\d+c\.)?\d+g\.\d+gb(\+[a-z]+)?$/;

/** The MIG instances of one GPU, from NVML's MIG devices. */
export function migInstances(gpu: number, devices: NvmlDevice['migDevices']): MigInstance[] {
  return (devices ?? []).map((m) => {
    const last = m.name.trim().split(/\s+/).pop() ?? '';
    return {
      id: `${gpu}:${m.index}`,
      gpu,
      index: m.index,
      uuid: m.uuid || undefined,
      profile: MIG_PROFILE.test(last) ? last : undefined,
      memoryBytes: m.memoryTotal > 0 ? m.memoryTotal : undefined,
      gpuInstanceId: m.gpuInstanceId >= 0 ? m.gpuInstanceId : undefined,
      computeInstanceId: m.computeInstanceId >= 0 ? m.computeInstanceId : undefined,
    };
  });
}

export interface MigRequest {
  /** How many MIG instances, of `profile` when given. */
  count?: number | undefined;
  profile?: string | undefined;
  /** These instances (by `<gpu>:<index>`), asked for by CDI name or UUID. */
  names?: string[] | undefined;
  shared?: boolean | undefined;
  numaNode?: number | undefined;
  strategy: GpuStrategy;
}

export function migHolders(id: string, held: readonly GpuAssignmentRecord[]): GpuAssignmentRecord[] {
  return held.filter((a) => a.mig?.includes(id));
}

function free(id: string, held: readonly GpuAssignmentRecord[], shared: boolean): boolean {
  // A parent held whole (given out before its MIG mode went on) holds every instance.
  const gpu = Number(id.slice(0, id.indexOf(':')));
  const h = [...migHolders(id, held), ...held.filter((a) => a.gpus.includes(gpu))];
  return h.length === 0 || (shared && h.every((a) => a.shared));
}

function state(m: MigInstance, held: readonly GpuAssignmentRecord[]): string {
  const h = [...migHolders(m.id, held), ...held.filter((a) => a.gpus.includes(m.gpu))];
  const what = `MIG ${m.id}${m.profile ? ` (${m.profile})` : ''}`;
  return `${what} ${h.length ? `is held by ${h.map((a) => `${a.name} (${a.containerId.slice(0, 12)}${a.shared ? ', shared' : ''})`).join(', ')}` : 'is free'}`;
}

/** Every MIG instance of the GPUs with MIG on. */
export function allMig(gpus: readonly SchedulableGpu[]): MigInstance[] {
  return gpus.flatMap((g) => (g.mig ? (g.migInstances ?? []) : []));
}

/**
 * Picks MIG instances for `req`: the named ones (refused naming the holder when held), then
 * `count` more of the profile, nearest the container's NUMA node first; packing fills the
 * GPUs whose instances are already busy, spreading takes the least busy GPU. Throws EBUSY
 * when too few are free, EUNSUPPORTED when the host has too few at all.
 */
export function chooseMig(req: MigRequest, gpus: readonly SchedulableGpu[], held: readonly GpuAssignmentRecord[], distance: NumaDistance): string[] {
  const shared = !!req.shared;
  const all = allMig(gpus);
  const out: string[] = [];
  for (const name of req.names ?? []) {
    const m = all.find((x) => x.id === name);
    if (!m) throw new RuntimeError(`devices: MIG instance ${name} is not one of this host's (${all.map((x) => x.id).join(', ') || 'none'})`, { code: 'ENOTFOUND', step: 'config' });
    if (!free(m.id, held, shared)) throw new RuntimeError(`devices: ${state(m, held)}${shared ? '' : ' (MIG instances are exclusive; share only between containers that opt in)'}`, { code: 'EBUSY', step: 'config' });
    if (!out.includes(m.id)) out.push(m.id);
  }
  const count = req.count ?? 0;
  if (count === 0) return out;
  const what = `${count} MIG instance${count > 1 ? 's' : ''}${req.profile ? ` of profile ${req.profile}` : ''}`;
  const kind = all.filter((m) => !req.profile || m.profile === req.profile);
  if (kind.length < count) {
    const profiles = [...new Set(all.map((m) => m.profile ?? 'unknown'))].join(', ');
    throw new RuntimeError(`gpuMig: ${what} requested but this host has ${kind.length === 0 ? 'none' : `only ${kind.length}`}${all.length ? ` (its MIG instances: ${all.length}, profiles ${profiles})` : ' (no GPU has MIG on)'}`, { code: 'EUNSUPPORTED', step: 'config' });
  }
  const avail = kind.filter((m) => !out.includes(m.id) && free(m.id, held, shared));
  if (avail.length < count) {
    throw new RuntimeError(`gpuMig: ${what} requested but only ${avail.length} of ${kind.length} ${avail.length === 1 ? 'is' : 'are'} free: ${kind.map((m) => state(m, held)).join('; ')}`, { code: 'EBUSY', step: 'config' });
  }
  const node = (m: MigInstance) => gpus.find((g) => g.index === m.gpu)?.numaNode;
  const dist = (m: MigInstance) => (req.numaNode === undefined ? 0 : node(m) === undefined ? 1000 : distance(req.numaNode, node(m)!));
  const busy = (gpu: number) => allMig(gpus).filter((m) => m.gpu === gpu && migHolders(m.id, held).length > 0).length;
  const sign = req.strategy === 'pack' ? -1 : 1;
  avail.sort((a, b) => dist(a) - dist(b) || sign * (busy(a.gpu) - busy(b.gpu)) || a.gpu - b.gpu || a.index - b.index);
  return [...out, ...avail.slice(0, count).map((m) => m.id)];
}

/** The MIG instance a CDI device name of nvidia.com/gpu stands for (`0:1` or `MIG-<uuid>`), if any. */
export function migByName(name: string, instances: readonly MigInstance[]): MigInstance | undefined {
  return instances.find((m) => m.id === name || (m.uuid !== undefined && m.uuid === name));
}
