/**
 * The cgroup rules for a container's resource settings: which limits a configuration asks
 * for at create, and which writes an update needs — what a removed setting becomes, which
 * settings the kernel couples, and the device disk limits apply to. The settings→files
 * mapping itself is mapping.ts.
 */
import { dirname } from 'node:path';
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import { UNLIMITED, type Resources } from './resources.js';

/** The container settings these rules read (ContainerConfig's resources). */
export interface ResourceSettings {
  cpuLimit?: number | undefined;
  cpuWeight?: number | undefined;
  memoryLimit?: number | undefined;
  memorySwap?: number | undefined;
  memoryReservation?: number | undefined;
  pidsLimit?: number | undefined;
  cpusetCpus?: string | undefined;
  cpusetMems?: string | undefined;
  diskIops?: number | undefined;
  diskBps?: number | undefined;
  diskWeight?: number | undefined;
}

/** A change: a value sets a limit, null removes it, undefined leaves it alone. */
export type ResourceChange = { [K in keyof ResourceSettings]?: ResourceSettings[K] | null };

/** cgroup v2's default weight (v1 shares 1024): what a removed cpuWeight returns to. */
export const DEFAULT_CPU_WEIGHT = 100;
/** BFQ's default weight: what a removed diskWeight returns to. */
export const DEFAULT_DISK_WEIGHT = 100;

export interface LimitContext {
  /** The whole disk that holds the container's writable layer, where its disk I/O lands. */
  blockDevice: () => string;
  /** The CPUs and memory nodes the container's parent cgroup allows: what a removed cpuset returns to. */
  inheritedCpuset: () => { cpus: string; mems: string };
}

/** The limits a container is created with. `cpuset` comes from its hardware affinity. */
export function createLimits(r: ResourceSettings, cpuset: { cpus?: string | undefined; mems?: string | undefined }, ctx: Pick<LimitContext, 'blockDevice'>): Resources {
  const out: Resources = {
    cpuLimit: r.cpuLimit,
    cpuWeight: r.cpuWeight,
    memoryLimit: r.memoryLimit,
    memorySwap: r.memorySwap,
    memoryReservation: r.memoryReservation,
    pidsLimit: r.pidsLimit,
    cpusetCpus: r.cpusetCpus ?? cpuset.cpus,
    cpusetMems: r.cpusetMems ?? cpuset.mems,
    blockIoWeight: r.diskWeight,
  };
  for (const k of Object.keys(out) as (keyof Resources)[]) if (out[k] === undefined) delete out[k];
  if (r.diskIops !== undefined || r.diskBps !== undefined) {
    out.blockIo = [{ device: ctx.blockDevice(), readIops: r.diskIops, writeIops: r.diskIops, readBps: r.diskBps, writeBps: r.diskBps }];
  }
  return out;
}

const SCALARS = ['cpuLimit', 'cpuWeight', 'memoryLimit', 'memorySwap', 'memoryReservation', 'pidsLimit'] as const;

/**
 * The cgroup writes that take a container from its settings to `after`, for the fields
 * `changes` names. `revert` (undoing a failed update) rewrites both disk limits.
 */
export function updateLimits(changes: ResourceChange, after: ResourceSettings, ctx: LimitContext, revert = false): Resources {
  const out: Resources = {};
  for (const k of SCALARS) {
    if (changes[k] === undefined) continue;
    const v = after[k];
    out[k] = v ?? (k === 'cpuWeight' ? DEFAULT_CPU_WEIGHT : UNLIMITED);
  }
  // memsw (v1) and memory.swap.max (v2) are bounds relative to the memory limit: a swap
  // change is written with the memory limit it goes with.
  if (changes.memorySwap !== undefined && out.memoryLimit === undefined) out.memoryLimit = after.memoryLimit ?? UNLIMITED;
  if (changes.cpusetCpus !== undefined || changes.cpusetMems !== undefined) {
    const inherited = after.cpusetCpus === undefined || after.cpusetMems === undefined ? ctx.inheritedCpuset() : undefined;
    if (changes.cpusetCpus !== undefined) out.cpusetCpus = after.cpusetCpus ?? inherited!.cpus;
    if (changes.cpusetMems !== undefined) out.cpusetMems = after.cpusetMems ?? inherited!.mems;
  }
  if (changes.diskWeight !== undefined) out.blockIoWeight = after.diskWeight ?? DEFAULT_DISK_WEIGHT;
  if (changes.diskIops !== undefined || changes.diskBps !== undefined) {
    const iops = after.diskIops ?? UNLIMITED;
    const bps = after.diskBps ?? UNLIMITED;
    out.blockIo = [{
      device: ctx.blockDevice(),
      ...(changes.diskIops !== undefined || revert ? { readIops: iops, writeIops: iops } : {}),
      ...(changes.diskBps !== undefined || revert ? { readBps: bps, writeBps: bps } : {}),
    }];
  }
  return out;
}

/**
 * What a container's cpuset returns to when its own is removed: its parent cgroup's (v2's
 * effective set, which a parent that sets none inherits from above).
 */
export function inheritedCpuset(kernel: Pick<Kernel, 'exists' | 'readFile'>, containerDirs: readonly string[]): { cpus: string; mems: string } {
  for (const dir of containerDirs) {
    const parent = dirname(dir);
    for (const suffix of ['.effective', '']) {
      if (kernel.exists(`${parent}/cpuset.cpus${suffix}`)) {
        return { cpus: kernel.readFile(`${parent}/cpuset.cpus${suffix}`).trim(), mems: kernel.readFile(`${parent}/cpuset.mems${suffix}`).trim() };
      }
    }
  }
  throw new RuntimeError('remove cpuset: no cpuset controller is mounted', { code: 'EUNSUPPORTED', step: 'cgroup' });
}
