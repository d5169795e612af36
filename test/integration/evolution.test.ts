/**
 * Evolution on a real container: a CPU-bound agent with a deadline (each unit of work must
 * finish within 80 ms or it does not count) needs about half a core; starting from two
 * cores, evolution with fitness = work done / CPU limit brings the limit near that need while
 * the container keeps running.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { EvolutionConfig, MutationRate } from '../../src/evolution/index.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

if (!IS_ROOT) console.warn(`evolution integration tests skipped: ${SKIP_REASON}`);

// A unit of work is about 40 ms of shell arithmetic, then 50 ms asleep: about 0.45 of a core.
// /proc/uptime (read by a builtin, no fork) times each unit; one slowed past 80 ms by
// throttling is not counted. The agent first times 200,000 loop turns and sizes a unit to
// 40 ms from that, so the deadline keeps its 2x margin on a slower or busier machine: with a
// fixed loop count, a host where a unit took 70 ms missed the deadline unthrottled, and the
// best limit for the fitness was then well above the need.
const DEADLINE_AGENT =
  'read a _ < /proc/uptime; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; read b _ < /proc/uptime; ' +
  'a=${a%.*}${a#*.}; b=${b%.*}${b#*.}; n=$((800000 / (b - a + 1))); echo $n > /tmp/unit; ' +
  'while :; do read a _ < /proc/uptime; i=0; while [ $i -lt $n ]; do i=$((i+1)); done; read b _ < /proc/uptime; ' +
  'a=${a%.*}${a#*.}; b=${b%.*}${b#*.}; [ $((b - a)) -le 8 ] && printf x >> /tmp/work; usleep 50000; done';

let t: TestRuntime;
let rt: Runtime;

async function agent(name: string): Promise<Container> {
  const cfg = ContainerConfig.builder().name(`${name}-${process.pid}`).image('stratoswarm/base-agent:latest').command(['/bin/sh', '-c', DEADLINE_AGENT]).cpuLimit(2).build();
  const c = await Container.create(cfg, { runtime: rt });
  await c.start();
  return c;
}

function workCounter(c: Container, runtime = rt): () => number {
  const file = join(runtimeParts(runtime).storageDir(c.id), 'upper/tmp/work');
  return () => (fs.existsSync(file) ? fs.statSync(file).size : 0);
}

describe.skipIf(!IS_ROOT)(`evolution on a real container (root)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  beforeAll(() => {
    t = testRuntime();
    rt = t.runtime;
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  // A real workload on a shared 2-core machine: the deadline agent's throughput, and so the
  // fitness, moves with whatever else the host runs, and now and then a run of 36
  // generations ends outside the band on noise alone. Up to two more tries, each from a new
  // container and a new measurement of the need; a broken engine misses all three.
  it('brings a 2-core limit to within 30 % of what a half-core workload needs, while it keeps running', { timeout: 120_000, retry: 2 }, async () => {
    const c = await agent('evolve');
    try {
      // The need, measured: cores used with no effective limit, once the agent has sized its unit.
      const unitFile = join(runtimeParts(rt).storageDir(c.id), 'upper/tmp/unit');
      while (!fs.existsSync(unitFile) || fs.readFileSync(unitFile, 'utf8').trim() === '') await new Promise((r) => setTimeout(r, 50));
      console.log(`unit of work: ${fs.readFileSync(unitFile, 'utf8').trim()} loop turns`);
      await new Promise((r) => setTimeout(r, 300));
      const a = await c.stats();
      await new Promise((r) => setTimeout(r, 2000));
      const b = await c.stats();
      const need = (b.cpu!.usageNs - a.cpu!.usageNs) / 1e6 / (b.timestamp - a.timestamp);
      console.log(`measured need: ${need.toFixed(3)} cores`);
      expect(need).toBeGreaterThan(0.3);
      expect(need).toBeLessThan(0.7);

      const config = EvolutionConfig.builder()
        .mutationRate(MutationRate.Adaptive)
        .fitnessFunction((m) => m.throughput / m.cpuLimit)
        .generationInterval(1200)
        .bounds('cpuLimit', 0.1, 2)
        .maxGenerations(36)
        .seed(7)
        .build();
      const generations: number[] = [];
      c.on('generation', (rec: { generation: number }) => generations.push(rec.generation));
      const done = new Promise<void>((resolve) => {
        const check = setInterval(() => {
          const s = c.evolutionState();
          if (!s || s.generation >= 36 || s.finished) {
            clearInterval(check);
            resolve();
          }
        }, 200);
      });
      await c.enableEvolution(config, { workDone: workCounter(c) });
      const workAtStart = workCounter(c)();
      await done;
      const state = c.evolutionState()!;
      await c.disableEvolution(); // puts the best genome in force
      const best = c.resources.cpuLimit!;
      console.log(`after ${state.generation} generations: best cpuLimit ${best.toFixed(3)} (need ${need.toFixed(3)}), fitness history ${state.history.length}`);
      expect(generations.length).toBeGreaterThan(20);
      expect(Math.abs(best - need) / need).toBeLessThan(0.3);
      // It kept running and working throughout.
      expect(c.state).toBe('running');
      expect(workCounter(c)()).toBeGreaterThan(workAtStart + 100);
      expect(state.best.cpuLimit).toBeCloseTo(best, 2);
    } finally {
      await c.remove({ force: true });
    }
  });

  it('persists its state with the container and continues after a host restart', async () => {
    const c = await agent('resume');
    try {
      const config = () =>
        EvolutionConfig.builder()
          .fitnessFunction((m) => m.throughput / m.cpuLimit)
          .generationInterval(300)
          .bounds('cpuLimit', 0.1, 2)
          .seed(3)
          .build();
      await c.enableEvolution(config(), { workDone: workCounter(c) });
      while ((c.evolutionState()?.generation ?? 0) < 4) await new Promise((r) => setTimeout(r, 100));
      await c.disableEvolution({ settle: false });
      const genBefore = (c.record().evolution as { snapshot: { engine: { generation: number } } }).snapshot.engine.generation;
      expect(genBefore).toBeGreaterThanOrEqual(4);

      // A new host agent process: load the container, enable evolution again.
      const fresh = new Runtime({ ...rt.options, logger: pino({ level: 'silent' }), env: {} });
      try {
        const again = await Container.load(c.id, { runtime: fresh });
        await again.enableEvolution(config(), { workDone: workCounter(again, fresh) });
        expect(again.evolutionState()!.generation).toBe(genBefore);
        while (again.evolutionState()!.generation < genBefore + 2) await new Promise((r) => setTimeout(r, 100));
        await again.disableEvolution();
        expect(again.state).toBe('running');
      } finally {
        await fresh.close();
      }
    } finally {
      await c.remove({ force: true });
    }
  }, 60_000);
});
