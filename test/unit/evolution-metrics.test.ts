import { describe, expect, it } from 'vitest';
import { defaultFitness, metricsBetween, resourceCost } from '../../src/evolution/metrics.js';

describe('metrics', () => {
  it('derives a generation’s metrics from two readings', () => {
    const m = metricsBetween(
      { timestampMs: 0, cpuUsageUsec: 0, memoryBytes: 0, workDone: 100 },
      { timestampMs: 2000, cpuUsageUsec: 3_000_000, memoryBytes: 2 ** 29, workDone: 500, custom: { errors: 1 } },
      { cpuLimit: 2, memoryLimit: 2 ** 30 },
    );
    expect(m).toEqual({ throughput: 200, cpuUsageCores: 1.5, cpuLimit: 2, memoryBytes: 2 ** 29, memoryLimit: 2 ** 30, resourceUsage: 3, intervalMs: 2000, custom: { errors: 1 } });
    const noWork = metricsBetween({ timestampMs: 0, cpuUsageUsec: 0, memoryBytes: 0 }, { timestampMs: 1000, cpuUsageUsec: 500_000, memoryBytes: 0 }, { cpuLimit: 1, memoryLimit: 2 ** 29 }, { memory: 2 ** 29 });
    expect(noWork.throughput).toBe(0.5);
    expect(noWork.resourceUsage).toBe(2);
    expect(defaultFitness(noWork)).toBe(0.25);
    // The landscape's cost term is this cost with references of 1 core and 512 MiB.
    expect(resourceCost(1.073, 739 * 2 ** 20, { cpu: 1, memory: 512 * 2 ** 20 })).toBeCloseTo(1.073 + 739 / 512, 12);
  });
});
