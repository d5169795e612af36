/**
 * GPU scheduling: which GPUs a container gets. Assignments are exclusive unless both the
 * holder and the newcomer ask to share; a request that cannot be met is an error naming
 * what holds each GPU, never a silent share. Among free GPUs, those nearest the container's
 * NUMA node come first (the kernel's node distance; NVLink peers of GPUs already picked for
 * the same container before PCIe-only ones), and the personality breaks the remaining ties:
 * packing (fill nodes that are already busy, keep whole nodes free) for cooperative and
 * conservative ones, spreading (least-busy node first) for aggressive and explorer ones.
 * The choice is a pure function; the store around it (store.ts) makes it durable and atomic.
 */
import { RuntimeError } from '../errors.js';
import type { MigInstance } from './mig.js';

export type GpuStrategy = 'pack' | 'spread';

/** What scheduling knows of one GPU. */
export interface SchedulableGpu {
  index: number;
  uuid?: string | undefined;
  /** NUMA node of its PCI device; undefined when the host does not say. */
  numaNode?: number | undefined;
  /** GPUs it has NVLink to (NVML indexes). */
  nvlinkPeers?: number[] | undefined;
  /** NVML's PCIe topology level to each GPU by index (lower is nearer; -1 unknown). */
  pcieLevels?: number[] | undefined;
  /** MIG is on: the GPU runs CUDA only through its MIG instances (mig.ts). */
  mig?: boolean | undefined;
  migInstances?: MigInstance[] | undefined;
}

export interface GpuAssignmentRecord {
  containerId: string;
  name: string;
  gpus: number[];
  /** MIG instances it holds, as `<gpu>:<index>` (mig.ts). */
  mig?: string[] | undefined;
  shared: boolean;
  assignedAt: string;
  /** The process that reserved them, so a reservation made before the container's record is not taken for stale. */
  owner?: { pid: number; startTime: string | undefined } | undefined;
}

export interface GpuRequest {
  /** How many GPUs, any of them. */
  count?: number | undefined;
  /** These GPUs (NVML indexes). */
  devices?: number[] | undefined;
  /** MIG instances: how many (of one profile, when given), and those named as CDI devices. */
  mig?: { count?: number | undefined; profile?: string | undefined; names?: string[] | undefined } | undefined;
  /** May share its GPUs with other sharing containers (MPS quotas then apply). */
  shared?: boolean | undefined;
  /** The NUMA node the container's CPUs or memory are on, when known. */
  numaNode?: number | undefined;
  strategy: GpuStrategy;
}

/** Packing or spreading, from the personality's traits: explorers spread, cooperators pack. */
export function strategyOf(traits: { exploration: number; cooperation: number }): GpuStrategy {
  return traits.exploration > traits.cooperation ? 'spread' : 'pack';
}

/** The kernel's distance between NUMA nodes (node<N>/distance), 10 local and 20 remote by default. */
export type NumaDistance = (from: number, to: number) => number;
export const defaultDistance: NumaDistance = (a, b) => (a === b ? 10 : 20);

/** Who holds GPU `index`, whole or (when its MIG mode changed since) through a MIG instance. */
function holders(index: number, held: readonly GpuAssignmentRecord[]): GpuAssignmentRecord[] {
  return held.filter((a) => a.gpus.includes(index) || a.mig?.some((m) => m.startsWith(`${index}:`)));
}

function available(index: number, held: readonly GpuAssignmentRecord[], shared: boolean): boolean {
  const h = holders(index, held);
  return h.length === 0 || (shared && h.every((a) => a.shared));
}

function busyText(index: number, held: readonly GpuAssignmentRecord[]): string {
  const h = holders(index, held);
  return `GPU ${index} ${h.length ? `is held by ${h.map((a) => `${a.name} (${a.containerId.slice(0, 12)}${a.shared ? ', shared' : ''})`).join(', ')}` : 'is free'}`;
}

/**
 * Picks GPUs for `req`. `field` names the configuration field in errors (gpuCount,
 * gpuDevices). Throws ENOTFOUND for a GPU the host lacks and EBUSY when too few are free.
 */
export function chooseGpus(req: GpuRequest, gpus: readonly SchedulableGpu[], held: readonly GpuAssignmentRecord[], distance: NumaDistance = defaultDistance): number[] {
  const shared = !!req.shared;
  const present = gpus.map((g) => g.index);
  if (req.devices?.length) {
    const missing = req.devices.filter((d) => !present.includes(d));
    if (missing.length) {
      throw new RuntimeError(`gpuDevices: GPU ${missing.join(', ')} requested but this host has ${present.length ? `only GPUs ${present.join(', ')}` : 'no NVIDIA GPU'}`, { code: 'EUNSUPPORTED', step: 'config' });
    }
    const mig = req.devices.filter((d) => gpus.find((g) => g.index === d)?.mig);
    if (mig.length) throw new RuntimeError(`gpuDevices: GPU ${mig.join(', ')} has MIG enabled: ask for its MIG instances (gpuMig({ count: 1 }), or devices(['nvidia.com/gpu=${mig[0]}:0']))`, { code: 'EINVAL', step: 'config' });
    const busy = req.devices.filter((d) => !available(d, held, shared));
    if (busy.length) {
      throw new RuntimeError(`gpuDevices: ${busy.map((b) => busyText(b, held)).join('; ')}${shared ? '' : ' (assignments are exclusive; share only between containers that opt in)'}`, { code: 'EBUSY', step: 'config' });
    }
    return [...new Set(req.devices)];
  }
  const count = req.count ?? 0;
  if (count === 0) return [];
  if (count > gpus.length) {
    throw new RuntimeError(`gpuCount: ${count} GPU${count > 1 ? 's' : ''} requested but this host has ${gpus.length ? `only GPUs ${present.join(', ')}` : 'no NVIDIA GPU'}`, { code: 'EUNSUPPORTED', step: 'config' });
  }
  const free = gpus.filter((g) => !g.mig && available(g.index, held, shared));
  if (free.length < count) {
    const state = (g: SchedulableGpu) => (g.mig ? `GPU ${g.index} has MIG enabled (ask for its instances with gpuMig)` : busyText(g.index, held));
    throw new RuntimeError(
      `gpuCount: ${count} GPU${count > 1 ? 's' : ''} requested but only ${free.length} of ${gpus.length} ${free.length === 1 ? 'is' : 'are'} free: ${gpus.map(state).join('; ')}`,
      { code: 'EBUSY', step: 'config' },
    );
  }
  // How busy each node is: packing prefers busy nodes, spreading idle ones.
  const nodeLoad = (node: number | undefined) => gpus.filter((g) => g.numaNode === node && holders(g.index, held).length > 0).length;
  const gpuLoad = (index: number) => holders(index, held).length;
  const dist = (g: SchedulableGpu) => (req.numaNode === undefined ? 0 : g.numaNode === undefined ? 1000 : distance(req.numaNode, g.numaNode));
  const sign = req.strategy === 'pack' ? -1 : 1;
  const rank = (a: SchedulableGpu, b: SchedulableGpu, picked: readonly SchedulableGpu[]) => {
    const d = dist(a) - dist(b);
    if (d !== 0) return d;
    // A GPU with NVLink to one already picked for this container comes before one without.
    const link = (g: SchedulableGpu) => (picked.some((p) => p.nvlinkPeers?.includes(g.index) || g.nvlinkPeers?.includes(p.index)) ? 0 : 1);
    const l = link(a) - link(b);
    if (l !== 0) return l;
    // Then the nearest on PCIe to the first one picked (one switch before the host bridge).
    const pcie = (g: SchedulableGpu) => {
      const v = picked.length ? picked[0]!.pcieLevels?.[g.index] : undefined;
      return v === undefined || v < 0 ? 1000 : v;
    };
    const p = pcie(a) - pcie(b);
    if (p !== 0) return p;
    // The rest of one container's GPUs stay on the node of its first.
    const same = (g: SchedulableGpu) => (picked.length && picked[0]!.numaNode === g.numaNode ? 0 : 1);
    const s = same(a) - same(b);
    if (s !== 0) return s;
    const n = sign * (nodeLoad(a.numaNode) - nodeLoad(b.numaNode));
    if (n !== 0) return n;
    const g = sign * (gpuLoad(a.index) - gpuLoad(b.index));
    return g !== 0 ? g : a.index - b.index;
  };
  const picked: SchedulableGpu[] = [];
  const left = [...free];
  while (picked.length < count) {
    left.sort((a, b) => rank(a, b, picked));
    picked.push(left.shift()!);
  }
  return picked.map((g) => g.index);
}
