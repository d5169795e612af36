/** Resource allocation: the plan a personality makes for a workload and its usage history. */
import { Problems } from '../errors.js';
import type { UsageHistory } from '../usage-histogram.js';
import type { DecisionValues } from './decision-table.js';
import type { Personality } from './personality.js';

export interface WorkloadRequest {
  /** Cores. */
  cpu?: number;
  /** Bytes. */
  memory?: number;
  gpus?: number;
  pids?: number;
}

export interface ResourcePlan {
  /** Cores, fractional: cpu.max quota / period. */
  cpuLimit: number;
  /** cgroup v2 cpu.weight, 1..10000. */
  cpuWeight: number;
  /** Bytes: memory.max with hard limits, memory.high without. */
  memoryLimit: number;
  /** Bytes: memory.low. */
  memoryReservation: number;
  pidsLimit: number;
  gpuCount: number;
  /**
   * true: enforce cpuLimit and memoryLimit as hard caps (cpu.max, memory.max).
   * false: the container shares instead; memoryLimit becomes a reclaim threshold
   * (memory.high) and contention is settled by cpuWeight and memoryReservation.
   */
  hardLimits: boolean;
  /** When any value of the plan last changed; the scale-down delay counts from here. */
  updatedAtMs?: number;
}

const MIB = 1024 * 1024;
const PAGE = 4096;
/** Used when the workload neither asks for a resource nor has a history of using it. */
export const DEFAULT_CPU_CORES = 1;
export const DEFAULT_MEMORY_BYTES = 256 * MIB;
export const DEFAULT_PIDS = 256;
const MIN_CPU_CORES = 0.01;
const MIN_MEMORY_BYTES = 16 * MIB;
/** Samples' worth of history at which observation and request weigh the same. */
const CONFIDENCE_SAMPLES = 30;
/** Usage at or above this fraction of the current limit means the limit hides the demand. */
const SATURATION = 0.9;

const okAmount = (v: unknown): boolean => v === undefined || (typeof v === 'number' && v >= 0 && v < Number.POSITIVE_INFINITY);
const okCount = (v: unknown): boolean => v === undefined || (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v));

function validateWorkload(w: WorkloadRequest): void {
  // The common, valid case allocates nothing: decisions run often and must stay cheap.
  if (w && okAmount(w.cpu) && okAmount(w.memory) && okCount(w.gpus) && okCount(w.pids)) return;
  const problems = new Problems();
  for (const key of ['cpu', 'memory', 'gpus', 'pids'] as const) {
    const v = w?.[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      problems.add(`workload.${key}`, `expected a non-negative number, got ${JSON.stringify(v)}`);
    } else if ((key === 'gpus' || key === 'pids') && !Number.isInteger(v)) {
      problems.add(`workload.${key}`, `expected an integer, got ${v}`);
    }
  }
  problems.throwIfAny('invalid workload request');
}

/**
 * The demand to plan for: the request until the history has enough evidence, then more
 * and more the observed percentile.
 */
function demand(requested: number | undefined, observed: number | undefined, confidence: number, fallback: number): number {
  if (requested === undefined || requested === 0) return observed ?? requested ?? fallback;
  if (observed === undefined) return requested;
  return confidence * observed + (1 - confidence) * requested;
}

/**
 * Hysteresis: increases apply at once (a short container is worse than a wasteful one),
 * decreases wait out the delay and then close only part of the gap, and changes inside
 * the deadband are ignored both ways so noise never moves a limit.
 */
function settle(target: number, current: number | undefined, d: DecisionValues, canScaleDown: boolean): number {
  if (current === undefined || !(current > 0)) return target;
  if (Math.abs(target - current) <= d.deadband * current) return current;
  if (target > current) return target;
  if (!canScaleDown) return current;
  return current + d.scaleDownStep * (target - current);
}

/**
 * The resource plan for a workload. Pure when `nowMs` is given (it defaults to the newest
 * usage sample's time, then the clock): the same arguments give the same plan, and the
 * cost does not depend on how many samples or containers there are.
 */
export function allocateResources(
  personality: Personality,
  workload: WorkloadRequest = {},
  usage?: UsageHistory,
  current?: ResourcePlan,
  nowMs?: number,
): ResourcePlan {
  validateWorkload(workload);
  const d = personality.decisions;
  const now = nowMs ?? usage?.latestMs ?? Date.now();
  const n = usage ? usage.effectiveSamples(now) : 0;
  const confidence = n / (n + CONFIDENCE_SAMPLES);
  const seen = usage !== undefined && n > 0;

  const cpuHigh = seen ? usage.cpuPercentile(d.cpuPercentile) : undefined;
  const cpuMid = seen ? usage.cpuPercentile(0.5) : undefined;
  const memHigh = seen ? usage.memoryPercentile(d.memoryPercentile) : undefined;
  const memMid = seen ? usage.memoryPercentile(0.5) : undefined;

  const grow = 1 + d.headroom;
  let cpuLimit = demand(workload.cpu, cpuHigh, confidence, DEFAULT_CPU_CORES) * d.cpuProvisionFactor * grow;
  let memoryLimit = demand(workload.memory, memHigh, confidence, DEFAULT_MEMORY_BYTES) * d.memoryProvisionFactor * grow;
  // A container pinned at its limit shows usage equal to the limit, not its demand; only
  // growing past the limit reveals how much more it wants.
  if (current && cpuHigh !== undefined && cpuHigh >= SATURATION * current.cpuLimit) {
    cpuLimit = Math.max(cpuLimit, current.cpuLimit * d.saturationStep);
  }
  if (current && memHigh !== undefined && memHigh >= SATURATION * current.memoryLimit) {
    memoryLimit = Math.max(memoryLimit, current.memoryLimit * d.saturationStep);
  }
  let cpuWeight = 100 * demand(workload.cpu, cpuMid, confidence, DEFAULT_CPU_CORES) * d.cpuWeightFactor;
  let memoryReservation = demand(workload.memory, memMid, confidence, DEFAULT_MEMORY_BYTES) * d.reservationFraction;

  const lastChange = current?.updatedAtMs ?? Number.NEGATIVE_INFINITY;
  const canScaleDown = now - lastChange >= d.scaleDownDelayMs;
  cpuLimit = settle(cpuLimit, current?.cpuLimit, d, canScaleDown);
  memoryLimit = settle(memoryLimit, current?.memoryLimit, d, canScaleDown);
  cpuWeight = settle(cpuWeight, current?.cpuWeight, d, canScaleDown);
  memoryReservation = settle(memoryReservation, current?.memoryReservation, d, canScaleDown);

  cpuLimit = Math.max(MIN_CPU_CORES, Math.ceil(cpuLimit * 1000) / 1000);
  memoryLimit = Math.max(MIN_MEMORY_BYTES, Math.ceil(memoryLimit / PAGE) * PAGE);
  memoryReservation = Math.min(memoryLimit, Math.ceil(memoryReservation / PAGE) * PAGE);
  cpuWeight = Math.min(10_000, Math.max(1, Math.round(cpuWeight)));
  // Process counts and GPUs are not observed, and a GPU cannot be shared, so both are what
  // the workload asks for; only the pids default scales with risk.
  const pidsLimit = workload.pids || Math.ceil(DEFAULT_PIDS * d.cpuProvisionFactor);
  const gpuCount = workload.gpus ?? 0;
  const hardLimits = d.hardLimits === 1;

  const plan: ResourcePlan = { cpuLimit, cpuWeight, memoryLimit, memoryReservation, pidsLimit, gpuCount, hardLimits, updatedAtMs: now };
  if (
    current &&
    current.updatedAtMs !== undefined &&
    current.cpuLimit === cpuLimit &&
    current.cpuWeight === cpuWeight &&
    current.memoryLimit === memoryLimit &&
    current.memoryReservation === memoryReservation &&
    current.pidsLimit === pidsLimit &&
    current.gpuCount === gpuCount &&
    current.hardLimits === hardLimits
  ) {
    plan.updatedAtMs = current.updatedAtMs;
  }
  return plan;
}
