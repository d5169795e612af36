/**
 * Live migration and checkpoint/restore of a memory-writing agent (test/fixtures/memwriter:
 * touches N MiB, then keeps rewriting one page after another and appending to a file),
 * between two runtimes on this host with their own state and image roots and cgroup parents,
 * standing in for two nodes. The container goes back and forth, so each run is one migration.
 *
 *   sudo node dist/bench/migrate.bench.js    (BENCH_RUNS, default 5; BENCH_SIZES, default "64,512")
 *
 * Downtime: the freeze for the final dump → the container running on the target.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { Container, ContainerConfig, Runtime } from '../src/index.js';
import { memoryTracking } from '../src/checkpoint/criu.js';
import { seedBaseImage } from '../test/helpers/shared-store.js';
import { fmt, summarize } from './stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function runtime(tag: string): Runtime {
  const stateRoot = fs.mkdtempSync(join('/tmp', `ss-mig-${tag}-`));
  const imageRoot = fs.mkdtempSync(join('/var/tmp', `ss-mig-img-${tag}-`));
  seedBaseImage(imageRoot);
  return new Runtime({ stateRoot, imageRoot, cgroupParent: `stratoswarm-bench-${tag}-${process.pid}`, logger: pino({ level: 'silent' }), env: {} });
}

async function main(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  const sizes = (process.env.BENCH_SIZES ?? '64,512').split(',').map(Number);
  const fixtures = join(process.cwd(), 'build/fixtures');
  if (!fs.existsSync(join(fixtures, 'memwriter'))) throw new Error('build/fixtures/memwriter is missing: run node scripts/setup.mjs');
  const a = runtime('a');
  const b = runtime('b');
  console.log(`dirty-page tracking: ${(await memoryTracking()) ? 'yes (pre-dumps made)' : 'no (the kernel lacks CONFIG_MEM_SOFT_DIRTY: no pre-dumps, the final dump copies all memory)'}`);
  console.log('\n| touched memory | what | runs | downtime p50 ms | min | max | total p50 ms | min | max | checkpoint size MiB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  try {
    for (const mib of sizes) {
      const cfg = ContainerConfig.builder()
        .name(`mig-${mib}`)
        .image('stratoswarm/base-agent:latest')
        .security({ userNamespace: false })
        .memoryLimit((mib + 256) * 1024 * 1024)
        .volume({ source: fixtures, target: '/fixtures', readOnly: true })
        .command(['/fixtures/memwriter', String(mib), '/seq'])
        .build();
      let c = await Container.create(cfg, { runtime: a });
      await c.start();
      while (!(await c.logs()).stdout.includes('ready')) await sleep(50);
      const down: number[] = [];
      const total: number[] = [];
      let bytes = 0;
      for (let i = 0; i < runs; i++) {
        const r = await c.migrate(c.runtime === a ? b : a);
        down.push(r.downtimeMs);
        total.push(r.totalMs);
        bytes = r.bytes;
        c = r.container;
        await sleep(300);
      }
      const seq = (await c.exec(['cat', '/seq'])).stdout.trim().split('\n').map(Number);
      const gaps = seq.filter((n, i) => i > 0 && n !== seq[i - 1]! + 1).length;
      const corrupt = (await c.logs()).stderr.includes('CORRUPT');
      const d = summarize(down);
      const t = summarize(total);
      console.log(`| ${mib} MiB | live migration | ${runs} | ${fmt(d.p50)} | ${fmt(d.min)} | ${fmt(d.max)} | ${fmt(t.p50)} | ${fmt(t.min)} | ${fmt(t.max)} | ${(bytes / 2 ** 20).toFixed(1)} |`);
      // Checkpoint to disk and restore on the same runtime, for comparison.
      const cd: number[] = [];
      const ct: number[] = [];
      for (let i = 0; i < Math.min(runs, 3); i++) {
        const path = join(c.runtime.options.imageRoot, 'checkpoints', `bench-${mib}-${i}`);
        const t0 = performance.now();
        const ck = await c.checkpoint({ path });
        const rt = c.runtime;
        await c.remove();
        c = await Container.restore(path, { runtime: rt });
        const t1 = performance.now();
        void ck;
        cd.push(t1 - t0); // the container does not run from its freeze until the restore ends
        ct.push(t1 - t0);
        fs.rmSync(path, { recursive: true, force: true });
        await sleep(300);
      }
      const s = summarize(ct);
      console.log(`| ${mib} MiB | checkpoint to disk + restore | ${cd.length} | ${fmt(s.p50)} | ${fmt(s.min)} | ${fmt(s.max)} | ${fmt(s.p50)} | ${fmt(s.min)} | ${fmt(s.max)} | |`);
      console.log(`<!-- ${mib} MiB: ${seq.length} sequence numbers, ${gaps} gaps, memory check ${corrupt ? 'FAILED' : 'passed'} -->`);
      await c.remove({ force: true });
    }
  } finally {
    for (const r of [a, b]) {
      for (const s of await Container.list({ runtime: r })) await (await Container.load(s.id, { runtime: r })).remove({ force: true }).catch(() => undefined);
      await r.close({ stopSpawner: true, force: true });
    }
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
