/**
 * Live responses to pressure, by the personality's rules: an OOM kill inside the container,
 * or memory use held near the limit, grows the memory limit; CPU throttled for a sustained
 * period grows the CPU limit. Each growth is at least the personality's saturation step
 * (1 + 0.5·risk tolerance), bounded by the caps given, logged and evented; after the
 * personality's scale-down delay with the pressure gone, the limit steps back toward the
 * configured one by its scale-down fraction. One timer per running container, read-only
 * cgroup reads except when a limit changes.
 */
import type { Personality } from '../personality/personality.js';
import type { ContainerContext } from './context.js';
import type { ResourceUpdate } from './types.js';

export interface AutoscaleOptions {
  /** Growth stops here (default: 8 × the configured limit). */
  maxMemoryBytes?: number;
  /** Growth stops here, cores (default: 8 × the configured limit). */
  maxCpus?: number;
  /** How often the counters are read (default 1000 ms). */
  intervalMs?: number;
}

export interface AutoscaleEvent {
  id: string;
  resource: 'memory' | 'cpu';
  from: number;
  to: number;
  reason: 'oom' | 'pressure' | 'throttled' | 'scale-down';
}

const PRESSURE = 0.9; // memory use / limit that counts as pressure
const THROTTLED = 0.2; // share of CFS periods throttled that counts as pressure
const SUSTAINED = 3; // ticks in a row

export class Autoscaler {
  private timer: NodeJS.Timeout | undefined;
  private last: { oomKills: number; periods: number; throttled: number } | undefined;
  private memHigh = 0;
  private cpuHigh = 0;
  private calm = 0;
  private lastChange = Date.now();
  private busy = false;

  constructor(
    private readonly ctx: ContainerContext,
    private readonly opts: AutoscaleOptions,
    private readonly apply: (changes: ResourceUpdate) => Promise<void>,
    private readonly emit: (e: AutoscaleEvent) => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.last = undefined;
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private get personality(): Personality {
    return this.ctx.config.spec.personality;
  }

  private configured(): { memory?: number | undefined; cpu?: number | undefined } {
    const r = this.ctx.config.spec.resources;
    return { memory: r.memoryLimit, cpu: r.cpuLimit };
  }

  private current(): { memory?: number | undefined; cpu?: number | undefined } {
    const r = (this.ctx.rec.resources ?? {}) as { memoryLimit?: number; cpuLimit?: number };
    return { memory: r.memoryLimit, cpu: r.cpuLimit };
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const s = this.ctx.parts.cgroups.stats(this.ctx.rec.id, ['cpu', 'memory']);
      const now = { oomKills: s.memory?.oomKills ?? 0, periods: s.cpu?.periods ?? 0, throttled: s.cpu?.throttledPeriods ?? 0 };
      const prev = this.last;
      this.last = now;
      if (!prev) return;
      const cur = this.current();
      const step = this.personality.decisions.saturationStep;
      const memPressed = s.memory && cur.memory ? s.memory.currentBytes >= PRESSURE * cur.memory : false;
      this.memHigh = memPressed ? this.memHigh + 1 : 0;
      const dp = now.periods - prev.periods;
      const cpuPressed = dp > 0 && (now.throttled - prev.throttled) / dp >= THROTTLED;
      this.cpuHigh = cpuPressed ? this.cpuHigh + 1 : 0;
      const oom = now.oomKills > prev.oomKills;
      if (cur.memory && (oom || this.memHigh >= SUSTAINED)) {
        const max = this.opts.maxMemoryBytes ?? 8 * (this.configured().memory ?? cur.memory);
        const to = Math.min(max, Math.ceil((cur.memory * step) / 4096) * 4096);
        if (to > cur.memory) await this.change('memory', cur.memory, to, oom ? 'oom' : 'pressure');
        this.memHigh = 0;
        return;
      }
      if (cur.cpu && this.cpuHigh >= SUSTAINED) {
        const max = this.opts.maxCpus ?? 8 * (this.configured().cpu ?? cur.cpu);
        const to = Math.min(max, Math.round(cur.cpu * step * 100) / 100);
        if (to > cur.cpu) await this.change('cpu', cur.cpu, to, 'throttled');
        this.cpuHigh = 0;
        return;
      }
      // Calm: after the scale-down delay, step back toward the configured limits.
      this.calm = memPressed || cpuPressed ? 0 : this.calm + 1;
      if (this.calm < SUSTAINED || Date.now() - this.lastChange < this.personality.decisions.scaleDownDelayMs) return;
      const conf = this.configured();
      const back = this.personality.decisions.scaleDownStep;
      if (cur.memory && conf.memory && cur.memory > conf.memory && s.memory && s.memory.currentBytes < 0.5 * conf.memory) {
        const to = Math.max(conf.memory, Math.ceil((cur.memory - (cur.memory - conf.memory) * back) / 4096) * 4096);
        await this.change('memory', cur.memory, to, 'scale-down');
      } else if (cur.cpu && conf.cpu && cur.cpu > conf.cpu) {
        const to = Math.max(conf.cpu, Math.round((cur.cpu - (cur.cpu - conf.cpu) * back) * 100) / 100);
        await this.change('cpu', cur.cpu, to, 'scale-down');
      }
    } catch (e) {
      // The container went away between ticks, or a limit could not be written: try again.
      this.ctx.log.debug({ err: e }, 'autoscale tick failed');
    } finally {
      this.busy = false;
    }
  }

  private async change(resource: 'memory' | 'cpu', from: number, to: number, reason: AutoscaleEvent['reason']): Promise<void> {
    const cur = this.current();
    const changes: ResourceUpdate = resource === 'memory' ? { memoryLimit: to } : { cpuLimit: to };
    // memory+swap moves with memory, as the configuration keeps them.
    const swap = (this.ctx.rec.resources as { memorySwap?: number } | undefined)?.memorySwap;
    if (resource === 'memory' && swap !== undefined && cur.memory) changes.memorySwap = Math.max(to, swap + (to - cur.memory));
    await this.apply(changes);
    this.lastChange = Date.now();
    this.ctx.log.info({ resource, from, to, reason }, 'autoscale');
    this.emit({ id: this.ctx.rec.id, resource, from, to, reason });
  }
}
