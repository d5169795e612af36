/**
 * Live responses to pressure, by the personality's rules: an OOM kill inside the container,
 * or memory use held near the limit, grows the memory limit; CPU throttled for a sustained
 * period grows the CPU limit. Each growth is at least the personality's saturation step
 * (1 + 0.5·risk tolerance), bounded by the caps given, logged and evented; after the
 * personality's scale-down delay with the pressure gone, the limit steps back toward the
 * configured one by its scale-down fraction.
 *
 * When the host itself is short (host-pressure.ts), cooperative personalities yield first:
 * they grow nothing and give back what they were grown by, at once, and the others grow only
 * once no cooperative container of the runtime holds such slack any more.
 *
 * The counters come from the batched reads evolution uses (counters.ts; an evolving
 * container's two samplers share one read) and the ticks from the process's one generation
 * scheduler, so autoscaled containers share wake-ups and one native read per tick instead of
 * a timer and a file read each.
 */
import type { CgroupCounters } from '../evolution/cgroup-counters.js';
import { gridFor, sharedScheduler } from '../evolution/scheduler.js';
import type { EvolutionTimers } from '../evolution/timers.js';
import type { Personality } from '../personality/personality.js';
import type { ContainerContext } from './context.js';
import { leaseCounters, type CounterLease } from './counters.js';
import { hostPressure, type HostPressure, type PressureResource } from './host-pressure.js';
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
  resource: PressureResource;
  from: number;
  to: number;
  reason: 'oom' | 'pressure' | 'throttled' | 'scale-down' | 'host-short';
}

const PRESSURE = 0.9; // memory use / limit that counts as pressure
const THROTTLED = 0.2; // share of CFS periods throttled that counts as pressure
const SUSTAINED = 3; // ticks in a row
/** Cooperation from which a personality yields to the others (the trait that also makes its limits soft). */
export const COOPERATIVE = 0.8;

/** The autoscaled containers of one runtime: who holds slack the host may need back. */
export class AutoscaleGroup {
  private readonly members = new Set<Autoscaler>();
  add(a: Autoscaler): void {
    this.members.add(a);
  }
  delete(a: Autoscaler): void {
    this.members.delete(a);
  }
  /** Whether a cooperative member still holds `resource` above its configured limit. */
  cooperativeSlack(resource: PressureResource): boolean {
    for (const m of this.members) if (m.cooperative && m.slack(resource)) return true;
    return false;
  }
}

/** What an autoscaler needs besides its container; each part replaceable for tests. */
export interface AutoscaleParts {
  group: AutoscaleGroup;
  host: HostPressure;
  timers?: EvolutionTimers;
  /** The counters now (default: the container's cgroup counters, read in the batch). */
  read?: () => Promise<CgroupCounters>;
  now?: () => number;
  /**
   * The settings evolution evolves now ('memoryLimit', 'cpuLimit'): evolution owns them, and
   * autoscale only answers an OOM kill there (memory pressure and throttling are the very
   * trade-off evolution measures; changing the limit under it would spoil its measurement).
   */
  evolved?: () => ReadonlySet<string>;
}

const GENE: Record<PressureResource, string> = { memory: 'memoryLimit', cpu: 'cpuLimit' };

const groups = new WeakMap<object, AutoscaleGroup>();
/** The group of the containers that share `key` (their runtime's parts). */
export function autoscaleGroup(key: object): AutoscaleGroup {
  let g = groups.get(key);
  if (!g) groups.set(key, (g = new AutoscaleGroup()));
  return g;
}

export class Autoscaler {
  private timer: unknown = undefined;
  private running = false;
  private counters: CounterLease | undefined;
  private last: { oomKills: number; periods: number; throttled: number } | undefined;
  /** The cgroup's OOM-kill count up to which kills have been acted on (the counter outlives restarts). */
  private oomSeen = 0;
  private oomBaseline: number | undefined;
  private memHigh = 0;
  private cpuHigh = 0;
  private calm = 0;
  private lastChange: number;
  private readonly timers: EvolutionTimers;
  private readonly now: () => number;
  private readonly parts: AutoscaleParts;

  constructor(
    private readonly ctx: Pick<ContainerContext, 'config' | 'rec' | 'log'> & Partial<Pick<ContainerContext, 'parts'>>,
    private readonly opts: AutoscaleOptions,
    private readonly apply: (changes: ResourceUpdate) => Promise<void>,
    private readonly emit: (e: AutoscaleEvent) => void,
    parts?: AutoscaleParts,
  ) {
    this.parts = parts ?? { group: autoscaleGroup(ctx.parts!), host: hostPressure(ctx.parts!.kernel) };
    const interval = opts.intervalMs ?? 1000;
    this.timers = this.parts.timers ?? sharedScheduler().timers(gridFor(interval));
    this.now = this.parts.now ?? Date.now;
    this.lastChange = this.now();
  }

  get cooperative(): boolean {
    return this.personality.traits().cooperation >= COOPERATIVE;
  }

  /** Whether the limit of `resource` is above the configured one. */
  slack(resource: PressureResource): boolean {
    if (this.owned(resource)) return false;
    const cur = this.current()[resource];
    const conf = this.configured()[resource];
    return cur !== undefined && conf !== undefined && cur > conf;
  }

  /**
   * `oomKillsAtStart`: the cgroup's OOM-kill count when the workload started, when this
   * starts with it; a kill before the first tick then counts. Without it the first tick's
   * counts are the baseline (autoscale turned on for a container already running).
   */
  start(oomKillsAtStart?: number): void {
    if (this.running) return;
    this.running = true;
    this.last = undefined;
    this.oomBaseline = oomKillsAtStart;
    this.parts.group.add(this);
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.parts.group.delete(this);
    this.counters?.release();
    this.counters = undefined;
  }

  private schedule(): void {
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      if (!this.running) return;
      // From a microtask, as evolution's generations run: every read of the wake-up is then
      // asked for before the batch is read, so they all go in one native call.
      void Promise.resolve()
        .then(() => this.tick())
        .finally(() => {
          if (this.running && this.timer === undefined) this.schedule();
        });
    }, this.opts.intervalMs ?? 1000);
  }

  private read(): Promise<CgroupCounters> {
    if (this.parts.read) return this.parts.read();
    this.counters ??= leaseCounters(this.ctx as ContainerContext);
    return this.counters.read();
  }

  /** Whether evolution owns the limit of `resource` now. */
  private owned(resource: PressureResource): boolean {
    return this.parts.evolved?.().has(GENE[resource]) ?? false;
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

  /** One tick: reads the counters and acts on them. */
  async tick(): Promise<void> {
    try {
      await this.observe(await this.read());
    } catch (e) {
      // The container went away between ticks, or a limit could not be written: try again.
      this.ctx.log.debug({ err: e }, 'autoscale tick failed');
    }
  }

  private async observe(s: CgroupCounters): Promise<void> {
    const now = { oomKills: s.oomKills ?? 0, periods: s.periods ?? 0, throttled: s.throttledPeriods ?? 0 };
    const prev = this.last ?? (this.oomBaseline !== undefined ? { ...now, oomKills: this.oomBaseline } : undefined);
    this.last = now;
    this.oomBaseline = undefined;
    if (!prev) return;
    const cur = this.current();
    const conf = this.configured();
    const memPressed = cur.memory ? s.memoryBytes >= PRESSURE * cur.memory : false;
    this.memHigh = memPressed ? this.memHigh + 1 : 0;
    const dp = now.periods - prev.periods;
    const cpuPressed = dp > 0 && (now.throttled - prev.throttled) / dp >= THROTTLED;
    this.cpuHigh = cpuPressed ? this.cpuHigh + 1 : 0;
    const oom = now.oomKills > prev.oomKills;
    this.oomSeen = Math.max(this.oomSeen, now.oomKills);
    const short = this.parts.host.short();
    // A cooperative container gives back what it was grown by while the host is short.
    if (this.cooperative) {
      for (const resource of ['memory', 'cpu'] as const) {
        if (!short[resource] || !this.slack(resource)) continue;
        await this.change(resource, cur[resource]!, this.back(resource, cur[resource]!, conf[resource]!), 'host-short');
        return;
      }
    }
    if (this.owned('memory')) this.memHigh = 0;
    if (this.owned('cpu')) this.cpuHigh = 0;
    if (cur.memory && (oom || this.memHigh >= SUSTAINED)) {
      this.memHigh = 0;
      await this.grow('memory', oom ? 'oom' : 'pressure', short);
      return;
    }
    if (cur.cpu && this.cpuHigh >= SUSTAINED) {
      this.cpuHigh = 0;
      await this.grow('cpu', 'throttled', short);
      return;
    }
    // Calm: after the scale-down delay, step back toward the configured limits.
    this.calm = memPressed || cpuPressed ? 0 : this.calm + 1;
    if (this.calm < SUSTAINED || this.now() - this.lastChange < this.personality.decisions.scaleDownDelayMs) return;
    if (cur.memory && conf.memory && !this.owned('memory') && cur.memory > conf.memory && s.memoryBytes < 0.5 * conf.memory) {
      await this.change('memory', cur.memory, this.back('memory', cur.memory, conf.memory), 'scale-down');
    } else if (cur.cpu && conf.cpu && !this.owned('cpu') && cur.cpu > conf.cpu) {
      await this.change('cpu', cur.cpu, this.back('cpu', cur.cpu, conf.cpu), 'scale-down');
    }
  }

  /**
   * The init itself was OOM-killed and has been restarted: the memory limit grows as for an
   * OOM kill inside the container, so the new init does not meet the same limit. `kills`:
   * the cgroup's OOM-kill count at the exit; nothing more happens when a tick saw that kill
   * before the exit did and grew the limit then.
   */
  async initOomKilled(kills: number): Promise<void> {
    if (kills <= this.oomSeen) return;
    this.oomSeen = kills;
    try {
      if (this.current().memory) await this.grow('memory', 'oom', this.parts.host.short());
    } catch (e) {
      this.ctx.log.warn({ err: e }, 'autoscale after an OOM kill of the init failed');
    }
  }

  /** One growth step, unless the host is short and someone else should yield first (or this one is cooperative). */
  private async grow(resource: PressureResource, reason: AutoscaleEvent['reason'], short: Record<PressureResource, boolean>): Promise<void> {
    if (short[resource] && (this.cooperative || this.parts.group.cooperativeSlack(resource))) return;
    const cur = this.current()[resource]!;
    const conf = this.configured()[resource];
    const step = this.personality.decisions.saturationStep;
    const to =
      resource === 'memory'
        ? Math.min(this.opts.maxMemoryBytes ?? 8 * (conf ?? cur), Math.ceil((cur * step) / 4096) * 4096)
        : Math.min(this.opts.maxCpus ?? 8 * (conf ?? cur), Math.round(cur * step * 100) / 100);
    if (to > cur) await this.change(resource, cur, to, reason);
  }

  /**
   * One scale-down step from `cur` toward `conf`, by the personality's fraction: rounded to
   * pages (memory) or hundredths (CPU), and all the way once the rounding would leave it where it is.
   */
  private back(resource: PressureResource, cur: number, conf: number): number {
    const f = this.personality.decisions.scaleDownStep;
    const to = resource === 'memory' ? Math.ceil((cur - (cur - conf) * f) / 4096) * 4096 : Math.round((cur - (cur - conf) * f) * 100) / 100;
    return to >= cur ? conf : Math.max(conf, to);
  }

  private async change(resource: PressureResource, from: number, to: number, reason: AutoscaleEvent['reason']): Promise<void> {
    const cur = this.current();
    const changes: ResourceUpdate = resource === 'memory' ? { memoryLimit: to } : { cpuLimit: to };
    // memory+swap moves with memory, as the configuration keeps them.
    const swap = (this.ctx.rec.resources as { memorySwap?: number } | undefined)?.memorySwap;
    if (resource === 'memory' && swap !== undefined && cur.memory) changes.memorySwap = Math.max(to, swap + (to - cur.memory));
    await this.apply(changes);
    this.lastChange = this.now();
    this.ctx.log.info({ resource, from, to, reason }, 'autoscale');
    this.emit({ id: this.ctx.rec.id, resource, from, to, reason });
  }
}
