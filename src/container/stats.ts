/**
 * Usage samples of one container: cgroup counters and its network namespace's interfaces.
 * Each sample also feeds the usage history its personality plans from.
 */
import { RuntimeError } from '../errors.js';
import type { Controller } from '../isolation/layout.js';
import { UsageHistory } from '../usage-histogram.js';
import { isLive, type ContainerContext } from './context.js';
import type { ContainerStats } from './types.js';

export type StatsPart = 'cpu' | 'memory' | 'pids' | 'blockIo' | 'network' | 'gpu';

export class StatsSampler {
  /** Decaying history of observed usage; personalities plan from it. */
  readonly usage = new UsageHistory();
  private lastCpu: { usageNs: number; t: number } | undefined;

  sample(ctx: ContainerContext, only?: readonly StatsPart[]): ContainerStats {
    const { rec, parts } = ctx;
    if (!isLive(rec.state)) throw new RuntimeError(`stats of container ${rec.name}: it is ${rec.state}`, { code: 'ESTATE', step: 'state', containerId: rec.id });
    const now = Date.now();
    const controllers = only?.flatMap((k): Controller[] => (k === 'cpu' ? ['cpu', 'cpuacct'] : k === 'blockIo' ? ['blkio'] : k === 'network' || k === 'gpu' ? [] : [k]));
    const cg = parts.cgroups.stats(rec.id, controllers);
    const out: ContainerStats = { ...cg, timestamp: now };
    if (cg.cpu) {
      if (this.lastCpu && now > this.lastCpu.t) out.cpuCores = (cg.cpu.usageNs - this.lastCpu.usageNs) / 1e6 / (now - this.lastCpu.t);
      this.lastCpu = { usageNs: cg.cpu.usageNs, t: now };
    }
    if (rec.pid && ctx.config.spec.network !== 'host' && (!only || only.includes('network'))) {
      const net = parts.kernel.netDev(rec.pid);
      if (net) out.network = net;
    }
    if (out.cpuCores !== undefined || cg.memory) {
      this.usage.add({ timestampMs: now, cpuCores: out.cpuCores ?? 0, memoryBytes: cg.memory?.currentBytes ?? 0 });
    }
    return out;
  }
}
