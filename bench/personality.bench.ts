/**
 * Personality decisions: the latency of one allocation decision (p50/p99; the spec asks
 * for < 10 µs) and whether its cost stays flat as the number of containers grows.
 */
import { Bench } from 'tinybench';
import { Personality, UsageHistory, allocateResources, evolutionParameters, restartPolicy, type ResourcePlan } from '../src/personality/index.js';

const MiB = 2 ** 20;

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** A container's state: an hour of 10-second samples and the plan in force. */
interface Container {
  personality: Personality;
  usage: UsageHistory;
  plan: ResourcePlan;
}

function makeContainers(n: number): Container[] {
  const r = rng(n);
  const out: Container[] = [];
  for (let i = 0; i < n; i++) {
    const personality = Personality.presets[i % Personality.presets.length]!;
    const usage = new UsageHistory();
    const cores = 0.2 + 3 * r();
    const mem = (100 + 2000 * r()) * MiB;
    for (let t = 0; t < 360; t++) {
      usage.add({ timestampMs: t * 10_000, cpuCores: cores * Math.exp(0.5 * (r() - 0.5)), memoryBytes: mem * Math.exp(0.2 * (r() - 0.5)) });
    }
    out.push({ personality, usage, plan: allocateResources(personality, { cpu: cores, memory: mem }, usage, undefined, 3_600_000) });
  }
  return out;
}

const quantile = (sorted: Float64Array, q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/**
 * Times single calls with hrtime, minus the cost of reading the clock, since one decision
 * is shorter than tinybench's timer can resolve.
 */
function perCallLatency(fn: (i: number) => unknown, calls: number): { p50: number; p99: number; mean: number } {
  const clock = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const a = process.hrtime.bigint();
    const b = process.hrtime.bigint();
    clock[i] = Number(b - a);
  }
  clock.sort();
  const overhead = quantile(clock, 0.5);
  const t = new Float64Array(calls);
  let sink = 0;
  for (let i = 0; i < calls; i++) {
    const a = process.hrtime.bigint();
    const out = fn(i);
    const b = process.hrtime.bigint();
    t[i] = Math.max(0, Number(b - a) - overhead);
    if (out) sink++;
  }
  if (sink < 0) console.log(sink);
  t.sort();
  const mean = t.reduce((x, y) => x + y, 0) / calls;
  return { p50: quantile(t, 0.5) / 1000, p99: quantile(t, 0.99) / 1000, mean: mean / 1000 };
}

async function main(): Promise<void> {
  const populations = new Map<number, Container[]>();
  for (const n of [1, 100, 1_000, 10_000]) populations.set(n, makeContainers(n));
  const one = populations.get(1_000)!;
  const workload = { cpu: 1.5, memory: 512 * MiB, gpus: 0 };

  const bench = new Bench({ time: 400, warmupTime: 100 });
  bench.add('allocateResources (one decision, with history and current plan)', () => {
    const c = one[0]!;
    allocateResources(c.personality, workload, c.usage, c.plan, 3_700_000);
  });
  bench.add('allocateResources (request only)', () => {
    allocateResources(Personality.Balanced, workload, undefined, undefined, 0);
  });
  bench.add('restartPolicy', () => {
    restartPolicy(Personality.Explorer);
  });
  bench.add('evolutionParameters', () => {
    evolutionParameters(Personality.Explorer);
  });
  const h = new UsageHistory();
  let t = 0;
  bench.add('UsageHistory.add', () => {
    h.add({ timestampMs: (t += 1000), cpuCores: 1 + (t % 7) / 7, memoryBytes: 256 * MiB + (t % 13) * MiB });
  });
  for (const [n, containers] of populations) {
    let i = 0;
    bench.add(`allocateResources round-robin over ${n} containers`, () => {
      const c = containers[i]!;
      i = i + 1 === n ? 0 : i + 1;
      allocateResources(c.personality, workload, c.usage, c.plan, 3_700_000);
    });
  }
  await bench.run();
  console.table(bench.table());

  // One decision, timed call by call, on a mix of containers and personalities.
  for (let i = 0; i < 50_000; i++) allocateResources(one[i % 1000]!.personality, workload, one[i % 1000]!.usage, one[i % 1000]!.plan, 3_700_000);
  const lat = perCallLatency((i) => {
    const c = one[i % 1000]!;
    return allocateResources(c.personality, workload, c.usage, c.plan, 3_700_000);
  }, 200_000);
  console.log(`one decision (allocateResources): p50 ${lat.p50.toFixed(3)} µs, p99 ${lat.p99.toFixed(3)} µs, mean ${lat.mean.toFixed(3)} µs (spec: < 10 µs)`);

  // Allocation cost per container as the population grows: every container gets a decision.
  const perN: string[] = [];
  let base = 0;
  for (const [n, containers] of populations) {
    const rounds = Math.max(1, Math.floor(200_000 / n));
    for (const c of containers) allocateResources(c.personality, workload, c.usage, c.plan, 3_700_000);
    const start = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) {
      for (const c of containers) allocateResources(c.personality, workload, c.usage, c.plan, 3_700_000);
    }
    const ns = Number(process.hrtime.bigint() - start) / (rounds * n);
    if (n === 1) base = ns;
    perN.push(`${n}: ${(ns / 1000).toFixed(3)} µs/container (${(ns / base).toFixed(2)}× the 1-container cost)`);
  }
  console.log(`allocation cost per container, every container decided once per round: ${perN.join('; ')}`);
}

await main();
