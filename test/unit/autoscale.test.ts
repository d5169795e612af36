import { describe, expect, it } from 'vitest';
import { ContainerConfig, Personality } from '../../src/index.js';
import { AutoscaleGroup, Autoscaler, type AutoscaleEvent } from '../../src/container/autoscale.js';
import { memInfo, ProcHostPressure, psiSomeAvg10, type PressureResource } from '../../src/container/host-pressure.js';
import type { CgroupCounters } from '../../src/evolution/cgroup-counters.js';
import type { EvolutionTimers } from '../../src/evolution/timers.js';

const MIB = 1024 * 1024;
const noTimers: EvolutionTimers = { setTimeout: () => 0, clearTimeout: () => undefined };
const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** A container's autoscaler with its counters, the host's pressure and the clock in the test's hands. */
function member(name: string, personality: Personality, group: AutoscaleGroup, host: { short: Record<PressureResource, boolean> }, evolved: ReadonlySet<string> = new Set(), oomKillsAtStart?: number) {
  const config = ContainerConfig.builder().name(name).image('stratoswarm/base-agent:latest').personality(personality).memoryLimit(64 * MIB).cpuLimit(1).build();
  const rec = { id: name, resources: { ...config.spec.resources } as Record<string, number> };
  let counters: CgroupCounters = { cpuNs: 0, memoryBytes: 0, oomKills: 0, periods: 0, throttledPeriods: 0 };
  const events: AutoscaleEvent[] = [];
  const a = new Autoscaler(
    { config, rec, log: silent } as never,
    {},
    async (ch) => void Object.assign(rec.resources, ch),
    (e) => events.push(e),
    { group, host: { short: () => host.short }, timers: noTimers, read: async () => counters, now: () => 0, evolved: () => evolved },
  );
  a.start(oomKillsAtStart);
  return {
    a,
    rec,
    events,
    /** One tick after an OOM kill in the container. */
    async oom(): Promise<void> {
      counters = { ...counters, oomKills: counters.oomKills! + 1 };
      await a.tick();
    },
    async calm(): Promise<void> {
      await a.tick();
    },
    /** One tick with every CFS period of the last interval throttled. */
    async throttled(): Promise<void> {
      counters = { ...counters, periods: counters.periods! + 10, throttledPeriods: counters.throttledPeriods! + 10 };
      await a.tick();
    },
  };
}

describe('autoscale: cooperative personalities yield first when the host is short', () => {
  it('the host is fine: cooperative and aggressive containers both grow on an OOM kill', async () => {
    const group = new AutoscaleGroup();
    const host = { short: { memory: false, cpu: false } };
    const coop = member('coop', Personality.Cooperative, group, host);
    const aggr = member('aggr', Personality.Aggressive, group, host);
    for (const m of [coop, aggr]) await m.calm(); // the first read is the baseline
    await coop.oom();
    await aggr.oom();
    expect(coop.events.map((e) => e.reason)).toEqual(['oom']);
    expect(aggr.events.map((e) => e.reason)).toEqual(['oom']);
    expect(coop.rec.resources.memoryLimit).toBe(Math.ceil((64 * MIB * Personality.Cooperative.decisions.saturationStep) / 4096) * 4096);
  });

  it('a kill before the first tick counts when the workload started with autoscale; turned on later, the first read is the baseline', async () => {
    const host = { short: { memory: false, cpu: false } };
    const fresh = member('fresh', Personality.Balanced, new AutoscaleGroup(), host, new Set(), 0);
    await fresh.oom(); // the first tick already sees one kill more than at the start
    expect(fresh.events.map((e) => e.reason)).toEqual(['oom']);
    const later = member('later', Personality.Balanced, new AutoscaleGroup(), host);
    await later.oom();
    expect(later.events).toEqual([]);
    await later.oom();
    expect(later.events.map((e) => e.reason)).toEqual(['oom']);
  });

  it('the host is short of memory: the cooperative one gives its growth back and grows no more; the aggressive one grows only after that', async () => {
    const group = new AutoscaleGroup();
    const host = { short: { memory: false, cpu: false } };
    const coop = member('coop', Personality.Cooperative, group, host);
    const aggr = member('aggr', Personality.Aggressive, group, host);
    for (const m of [coop, aggr]) await m.calm();
    await coop.oom(); // grown while the host was fine: slack it holds
    const grown = coop.rec.resources.memoryLimit!;
    expect(grown).toBeGreaterThan(64 * MIB);
    host.short.memory = true;
    expect(coop.a.cooperative && !aggr.a.cooperative).toBe(true);
    expect(group.cooperativeSlack('memory')).toBe(true);
    // The aggressive container is OOM-killed first: the cooperative one still holds slack, so it waits.
    await aggr.oom();
    expect(aggr.events).toEqual([]);
    expect(aggr.rec.resources.memoryLimit).toBe(64 * MIB);
    // The cooperative one steps back toward its base, one scale-down step a tick, without the scale-down delay.
    for (let i = 0; i < 20 && group.cooperativeSlack('memory'); i++) await coop.calm();
    expect(coop.rec.resources.memoryLimit).toBe(64 * MIB);
    expect(coop.events.slice(1).every((e) => e.reason === 'host-short' && e.to < e.from)).toBe(true);
    // An OOM kill of its own now does not grow it while the host is short.
    await coop.oom();
    expect(coop.rec.resources.memoryLimit).toBe(64 * MIB);
    // No cooperative slack left: the aggressive container grows on its next OOM kill.
    await aggr.oom();
    expect(aggr.events.map((e) => [e.resource, e.reason])).toEqual([['memory', 'oom']]);
    expect(aggr.rec.resources.memoryLimit).toBeGreaterThan(64 * MIB);
    // The CPU is not short: nothing about memory holds CPU growth back.
    expect(group.cooperativeSlack('cpu')).toBe(false);
  });

  it('while evolution evolves a limit, autoscale answers only an OOM kill there: throttling is evolution\'s trade-off', async () => {
    const host = { short: { memory: false, cpu: false } };
    const evolving = member('evolving', Personality.Balanced, new AutoscaleGroup(), host, new Set(['cpuLimit', 'memoryLimit']));
    const plain = member('plain', Personality.Balanced, new AutoscaleGroup(), host);
    for (const m of [evolving, plain]) {
      await m.calm();
      for (let i = 0; i < 4; i++) await m.throttled();
    }
    expect(plain.events.map((e) => [e.resource, e.reason])).toEqual([['cpu', 'throttled']]);
    expect(evolving.events).toEqual([]);
    await evolving.oom();
    expect(evolving.events.map((e) => [e.resource, e.reason])).toEqual([['memory', 'oom']]);
  });

  it('a stopped container leaves the group: its slack holds no one back', async () => {
    const group = new AutoscaleGroup();
    const host = { short: { memory: false, cpu: false } };
    const coop = member('coop', Personality.Cooperative, group, host);
    await coop.calm();
    await coop.oom();
    expect(group.cooperativeSlack('memory')).toBe(true);
    coop.a.stop();
    expect(group.cooperativeSlack('memory')).toBe(false);
  });

  it('reads the host pressure from PSI and MemAvailable, once per interval, with clear errors for bad thresholds', () => {
    const files: Record<string, string> = {
      '/proc/pressure/memory': 'some avg10=2.50 avg60=1.00 avg300=0.50 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
      '/proc/pressure/cpu': 'some avg10=55.00 avg60=20.00 avg300=5.00 total=9\n',
      '/proc/meminfo': 'MemTotal:       1000000 kB\nMemFree:          10000 kB\nMemAvailable:    200000 kB\n',
    };
    expect(psiSomeAvg10(files['/proc/pressure/cpu']!)).toBe(55);
    expect(memInfo(files['/proc/meminfo']!)).toEqual({ totalKb: 1000000, availableKb: 200000 });
    let now = 0;
    let reads = 0;
    const p = new ProcHostPressure((path) => (reads++, files[path]), {}, () => now);
    expect(p.short()).toEqual({ memory: false, cpu: true });
    expect(reads).toBe(3);
    files['/proc/meminfo'] = 'MemTotal: 1000000 kB\nMemAvailable: 50000 kB\n';
    expect(p.short()).toEqual({ memory: false, cpu: true }); // cached
    expect(reads).toBe(3);
    now += 1000;
    expect(p.short()).toEqual({ memory: true, cpu: true });
    // No PSI (an old kernel, psi=0): memory by MemAvailable alone, CPU never short.
    const bare = new ProcHostPressure((path) => (path === '/proc/meminfo' ? 'MemTotal: 100 kB\nMemAvailable: 90 kB\n' : undefined));
    expect(bare.short()).toEqual({ memory: false, cpu: false });
    expect(new ProcHostPressure(() => undefined, { memorySomeAvg10: 5, cpuSomeAvg10: 60 }).short()).toEqual({ memory: false, cpu: false });
    expect(() => new ProcHostPressure(() => undefined, { cpuSomeAvg10: 120 })).toThrow('cpuSomeAvg10: expected a percentage 0..100, got 120');
    expect(() => new ProcHostPressure(() => undefined, { memAvailableFraction: -1 })).toThrow('memAvailableFraction: expected 0..1, got -1');
  });
});
