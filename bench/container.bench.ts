/**
 * Per-call cost of the container operations a host agent runs in a loop — stats() and
 * update() on a live container — and create+start time as the number of live containers
 * grows from 1 to 1,000 (it should not grow: allocation is O(1)).
 *
 *   BENCH_CONTAINERS=1000 node dist/bench/container.bench.js
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Bench } from 'tinybench';
import { Container, ContainerConfig, Runtime } from '../src/index.js';
import { runtimeParts } from '../src/runtime.js';
import { fmt, summarize } from './stats.js';

const MAX = Number(process.env.BENCH_CONTAINERS ?? 1000);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('container bench skipped: needs root');
    return;
  }
  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'ssc-'));
  const imageRoot = fs.mkdtempSync('/var/tmp/ssc-img-');
  const runtime = new Runtime({ stateRoot, imageRoot, cgroupParent: `stratoswarm-bench-${process.pid}`, logger: pino({ level: 'silent' }), env: {} });
  await runtime.images.buildBaseImage();
  const make = (name: string) =>
    ContainerConfig.builder().name(name).image('stratoswarm/base-agent:latest').command(['sleep', '100000']).cpuLimit(1).memoryLimit(64 * 1024 * 1024).pidsLimit(32).build();

  const probe = await Container.create(make('probe'), { runtime });
  await probe.start();
  let flip = false;
  const bench = new Bench({ time: 2000, warmupTime: 200 });
  bench
    .add('container.stats()', async () => {
      await probe.stats();
    })
    .add('container.update({ cpuLimit })', async () => {
      flip = !flip;
      await probe.update({ cpuLimit: flip ? 0.5 : 1 });
    })
    .add('container.update({ cpuLimit, memoryLimit, pidsLimit })', async () => {
      flip = !flip;
      await probe.update({ cpuLimit: flip ? 0.5 : 1, memoryLimit: (flip ? 96 : 64) * 1024 * 1024, pidsLimit: flip ? 48 : 32 });
    });
  await bench.run();
  console.log('per-call cost on a running container');
  console.table(
    bench.tasks.map((t) => {
      const r = t.result as { latency?: { p50?: number; p99?: number; samplesCount?: number }; throughput?: { mean?: number } } | undefined;
      return { task: t.name, 'p50 µs': ((r?.latency?.p50 ?? NaN) * 1000).toFixed(1), 'p99 µs': ((r?.latency?.p99 ?? NaN) * 1000).toFixed(1), samples: r?.latency?.samplesCount };
    }),
  );

  // create+start of one more container while N are alive.
  const live: Container[] = [probe];
  const rows: Record<string, string | number>[] = [];
  const checkpoints = [1, 10, 100, 300, 1000].filter((n) => n <= MAX);
  let i = 0;
  for (const target of checkpoints) {
    while (live.length < target) {
      const c = await Container.create(make(`fill-${i++}`), { runtime });
      await c.start();
      live.push(c);
    }
    const samples: number[] = [];
    for (let k = 0; k < 20; k++) {
      const t0 = performance.now();
      const c = await Container.create(make(`m-${target}-${k}`), { runtime });
      await c.start();
      samples.push(performance.now() - t0);
      await c.remove({ force: true });
    }
    const s = summarize(samples);
    rows.push({ 'live containers': target, 'create+start p50 ms': fmt(s.p50), 'p90 ms': fmt(s.p90), 'max ms': fmt(s.max) });
  }
  console.log('create+start of one more container (cgroups, user namespace, overlay, mounts) as containers grow');
  console.table(rows);
  for (const c of live) await c.remove({ force: true });
  await runtime.close({ stopSpawner: true, force: true });
  runtimeParts(runtime).cgroups.removeParent();
  fs.rmSync(stateRoot, { recursive: true, force: true });
  fs.rmSync(imageRoot, { recursive: true, force: true });
}

await main();
