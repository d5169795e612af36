/**
 * Evolution overhead with real containers: N live containers each evolving with 1-second
 * generations (counters sampled in one batched read per tick, update() of cgroups, a journal
 * record per generation), and the whole host agent's CPU time (process.cpuUsage: every
 * thread, user and kernel) per second of wall time, against the same containers idle.
 *
 *   BENCH_EVOLVING=100 BENCH_INTERVAL_MS=1000 BENCH_WARMUP_S=1.5 node --expose-gc dist/bench/evolution-containers.bench.js
 *
 * Autoscale is on by default for evolving containers and part of the figure; BENCH_AUTOSCALE=0
 * turns it off (autoscale(false)) to measure evolution alone.
 *
 * BENCH_CPU_PROFILE=file.cpuprofile writes a V8 CPU profile of the measured window only
 * (not of the containers' creation), for Chrome DevTools or `speedscope`.
 */
import * as fs from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { Container, ContainerConfig, EvolutionConfig, Runtime } from '../src/index.js';
import { runtimeParts } from '../src/runtime.js';

const N = Number(process.env.BENCH_EVOLVING ?? 100);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL_MS ?? 1000);
/** Seconds of evolution before measuring: idle containers are a plateau, which the engine explores boldly for about 64 generations and then rests on. */
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 1.5);
const AUTOSCALE = process.env.BENCH_AUTOSCALE !== '0';

/**
 * CPU time by process.cpuUsage, and the event loop's busy time (the time the runtime's code
 * really ran). This VM bills CPU per scheduler tick, so cpuUsage also charges each timer
 * wake-up for more than it costs; both are reported.
 */
async function cpuPercent(seconds: number): Promise<{ total: number; user: number; system: number; busy: number }> {
  const u0 = process.cpuUsage();
  const e0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const u = process.cpuUsage(u0);
  const e = performance.eventLoopUtilization(e0);
  const ms = performance.now() - t0;
  return { total: ((u.user + u.system) / 1000 / ms) * 100, user: (u.user / 1000 / ms) * 100, system: (u.system / 1000 / ms) * 100, busy: (e.active / ms) * 100 };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('evolution-containers bench skipped: needs root');
    return;
  }
  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'sse-'));
  const imageRoot = fs.mkdtempSync('/var/tmp/sse-img-');
  const runtime = new Runtime({ stateRoot, imageRoot, cgroupParent: `stratoswarm-bench-${process.pid}`, logger: pino({ level: 'silent' }), env: {} });
  await runtime.images.buildBaseImage();
  const containers: Container[] = [];
  for (let i = 0; i < N; i++) {
    const builder = ContainerConfig.builder().name(`e${i}`).image('stratoswarm/base-agent:latest').command(['sleep', '100000']).cpuLimit(1).memoryLimit(256 * 2 ** 20);
    const c = await Container.create(
      (AUTOSCALE ? builder : builder.autoscale(false)).build(),
      { runtime },
    );
    await c.start();
    containers.push(c);
  }
  const idle = await cpuPercent(SECONDS / 2);
  const config = EvolutionConfig.builder().generationInterval(INTERVAL_MS).bounds('cpuLimit', 0.1, 2).bounds('memoryLimit', 64 * 2 ** 20, 1024 * 2 ** 20).build();
  for (const c of containers) await c.enableEvolution(config);
  await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
  const profile = process.env.BENCH_CPU_PROFILE;
  const session = profile ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const evolving = await cpuPercent(SECONDS);
  if (session) {
    const { profile: p } = await session.post('Profiler.stop');
    fs.writeFileSync(profile!, JSON.stringify(p));
    session.disconnect();
  }
  const generations = containers.reduce((n, c) => n + (c.evolutionState()?.generation ?? 0), 0);
  const kinds = { trial: 0, remeasure: 0, baseline: 0 };
  for (const c of containers) for (const h of c.evolutionState()?.history ?? []) kinds[h.kind]++;
  const ratio = evolving.total / 100;
  console.log(
    `evolution-containers: runtime CPU time / wall time = ${ratio.toFixed(5)} (${evolving.total.toFixed(3)} % of one core) for ${N} containers ` +
      `at ${INTERVAL_MS / 1000} s generations${AUTOSCALE ? ' with autoscale' : ', autoscale off'}, measured after ${WARMUP_S} s of evolution (target < 0.005); idle ${(idle.total / 100).toFixed(5)}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ` +
      `recent generations: ${kinds.trial} trials (each an update), ${kinds.remeasure + kinds.baseline} re-measurements`,
  );
  console.log(
    `${N} containers, ${INTERVAL_MS / 1000} s generations, ${SECONDS} s: host agent CPU ${evolving.total.toFixed(2)} % of one core evolving ` +
      `(user ${evolving.user.toFixed(2)} %, kernel ${evolving.system.toFixed(2)} %) vs ${idle.total.toFixed(2)} % idle; ` +
      `evolution costs ${(evolving.total - idle.total).toFixed(2)} %; event-loop busy ${evolving.busy.toFixed(2)} % (idle ${idle.busy.toFixed(2)} %); ${generations} generations in all`,
  );
  for (const c of containers) await c.remove({ force: true });
  await runtime.close({ stopSpawner: true, force: true });
  runtimeParts(runtime).cgroups.removeParent();
  fs.rmSync(stateRoot, { recursive: true, force: true });
  fs.rmSync(imageRoot, { recursive: true, force: true });
}

await main();
