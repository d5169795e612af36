/**
 * Pull throughput from a registry on loopback: a 100 MiB image (4 gzip layers of 25 MiB of
 * incompressible data) in Debian's docker-registry, pulled by this runtime (download, digest
 * checks, unpacking) and by `skopeo copy docker://… oci:…` (download and digest checks, no
 * unpacking), alternately, each into an empty destination.
 *
 *   sudo node dist/bench/pull.bench.js      (BENCH_RUNS, default 5; BENCH_MIB, default 100)
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageStore } from '../src/image/images.js';
import { REGISTRY_SKIP, startRegistry, writeLayout } from '../test/helpers/registry.js';
import { summarize } from './stats.js';

async function main(): Promise<void> {
  if (REGISTRY_SKIP) {
    console.log(`pull bench skipped: ${REGISTRY_SKIP}`);
    return;
  }
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  const mib = Number(process.env.BENCH_MIB ?? 100);
  const work = fs.mkdtempSync(join('/var/tmp', 'ss-pull-bench-'));
  const reg = await startRegistry();
  try {
    const layers = Array.from({ length: 4 }, (_, i) => ({ entries: [{ name: `data/part${i}.bin`, type: 'file' as const, data: randomBytes((mib << 20) / 4) }] }));
    writeLayout(join(work, 'layout'), [{ tag: 'v1', layers }]);
    reg.push(join(work, 'layout'), 'v1', 'bench/big:v1');
    const bytes = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.direct}/bench/big:v1`], { encoding: 'utf8' })).layers.reduce((n: number, l: { size: number }) => n + l.size, 0) as number;
    const ours: number[] = [];
    const skopeo: number[] = [];
    for (let i = 0; i < runs + 1; i++) {
      const root = fs.mkdtempSync(join(work, 'store-'));
      const store = new ImageStore(root, 'registry.stratoswarm.io', { insecureRegistries: [reg.direct] });
      let t = process.hrtime.bigint();
      await store.pull(`${reg.direct}/bench/big:v1`);
      const a = Number(process.hrtime.bigint() - t) / 1e9;
      const dest = join(work, `skopeo-${i}`);
      t = process.hrtime.bigint();
      execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${reg.direct}/bench/big:v1`, `oci:${dest}:v1`]);
      const b = Number(process.hrtime.bigint() - t) / 1e9;
      fs.rmSync(root, { recursive: true, force: true });
      fs.rmSync(dest, { recursive: true, force: true });
      if (i === 0) continue; // warm-up: page cache and the registry's own caches
      ours.push(a);
      skopeo.push(b);
    }
    const o = summarize(ours);
    const s = summarize(skopeo);
    const rate = (sec: number) => (bytes / 2 ** 20 / sec).toFixed(0);
    console.log(`image: ${(bytes / 2 ** 20).toFixed(1)} MiB compressed in 4 layers, ${runs} runs each after one warm-up, alternating`);
    console.log('| what | p50 s | min s | max s | MiB/s at p50 | p50 / skopeo p50 |');
    console.log('|---|---|---|---|---|---|');
    console.log(`| stratoswarm pull (download, verify, unpack) | ${o.p50.toFixed(2)} | ${o.min.toFixed(2)} | ${o.max.toFixed(2)} | ${rate(o.p50)} | ${(o.p50 / s.p50).toFixed(2)} |`);
    console.log(`| skopeo copy docker:// → oci: (download, verify) | ${s.p50.toFixed(2)} | ${s.min.toFixed(2)} | ${s.max.toFixed(2)} | ${rate(s.p50)} | 1.00 |`);
  } finally {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
