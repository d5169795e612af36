/** What a fitness function sees about one generation's interval. */
export interface EvolutionMetrics {
  /** The workload's own work counter per second when it reports one, else CPU-seconds used per second. */
  throughput: number;
  /** Average cores used over the interval. */
  cpuUsageCores: number;
  /** Cores allowed during the interval. */
  cpuLimit: number;
  memoryBytes: number;
  memoryLimit: number;
  /** Normalised cost of the allocation: cpuLimit / reference cores + memoryLimit / reference bytes. */
  resourceUsage: number;
  intervalMs: number;
  /** Processes the kernel's OOM killer killed in the container during the interval, where the host counts them. */
  oomKills?: number;
  /** Share of the interval's CFS periods in which the container was throttled (0..1), where known. */
  throttledShare?: number;
  custom?: Record<string, number>;
}

export type FitnessFunction = (metrics: EvolutionMetrics) => number;

/** Two consecutive readings of a container's counters, from which metricsBetween() derives a generation's metrics. */
export interface StatsReading {
  timestampMs: number;
  /** Cumulative CPU time used (cgroup cpu.stat usage_usec). */
  cpuUsageUsec: number;
  memoryBytes: number;
  /** Cumulative count of the workload's own unit of work, when it reports one. */
  workDone?: number;
  /** Cumulative OOM kills, CFS periods and throttled periods, where the host counts them. */
  oomKills?: number;
  periods?: number;
  throttledPeriods?: number;
  custom?: Record<string, number>;
}

export interface ResourceReference {
  /** Cores that cost 1. Default 1. */
  cpu?: number;
  /** Bytes that cost 1. Default 1 GiB. */
  memory?: number;
}

/** The allocation's cost in reference units, so fitness = throughput / resourceUsage is work per unit of resources. */
export function resourceCost(cpuLimit: number, memoryLimit: number, reference: ResourceReference = {}): number {
  return cpuLimit / (reference.cpu ?? 1) + memoryLimit / (reference.memory ?? 1024 ** 3);
}

export function metricsBetween(
  prev: StatsReading,
  cur: StatsReading,
  settings: { cpuLimit: number; memoryLimit: number },
  reference: ResourceReference = {},
): EvolutionMetrics {
  const intervalMs = cur.timestampMs - prev.timestampMs;
  const seconds = intervalMs / 1000;
  const cpuUsageCores = seconds > 0 ? Math.max(0, cur.cpuUsageUsec - prev.cpuUsageUsec) / 1e6 / seconds : 0;
  const work = cur.workDone !== undefined && prev.workDone !== undefined ? cur.workDone - prev.workDone : undefined;
  const throughput = work !== undefined ? (seconds > 0 ? work / seconds : 0) : cpuUsageCores;
  const m: EvolutionMetrics = {
    throughput,
    cpuUsageCores,
    cpuLimit: settings.cpuLimit,
    memoryBytes: cur.memoryBytes,
    memoryLimit: settings.memoryLimit,
    resourceUsage: resourceCost(settings.cpuLimit, settings.memoryLimit, reference),
    intervalMs,
  };
  if (cur.oomKills !== undefined && prev.oomKills !== undefined) m.oomKills = Math.max(0, cur.oomKills - prev.oomKills);
  if (cur.periods !== undefined && prev.periods !== undefined && cur.throttledPeriods !== undefined && prev.throttledPeriods !== undefined) {
    const periods = cur.periods - prev.periods;
    m.throttledShare = periods > 0 ? Math.min(1, Math.max(0, (cur.throttledPeriods - prev.throttledPeriods) / periods)) : 0;
  }
  if (cur.custom) m.custom = { ...cur.custom };
  return m;
}

/** Work per unit of allocated resources: what a container should maximise unless told otherwise. */
export const defaultFitness: FitnessFunction = (m) => (m.resourceUsage > 0 ? m.throughput / m.resourceUsage : 0);
