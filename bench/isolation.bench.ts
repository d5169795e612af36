/**
 * Cost of the cgroup driver's hot paths on the real kernel: stats() and update() per call, and
 * create()+destroy() as the number of containers under the parent grows 1 → 1,000 (it should
 * stay flat: nothing the driver does scans its siblings). Needs root; runs in about a minute.
 *
 *   tsc … && node dist/bench/isolation.bench.js
 */
import { randomBytes } from 'node:crypto';
import { Bench } from 'tinybench';
import { NativeKernel } from '../src/kernel/kernel.js';
import { CgroupDriver, readCgroupLayout } from '../src/isolation/index.js';

const MiB = 1024 * 1024;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('isolation bench skipped: needs root to create cgroups');
    return;
  }
  let kernel: NativeKernel;
  try {
    kernel = new NativeKernel();
  } catch (e) {
    console.log(`isolation bench skipped: ${(e as Error).message.split('\n')[0]}`);
    return;
  }
  const layout = readCgroupLayout(kernel);
  const parent = `stratoswarm-bench-${randomBytes(4).toString('hex')}`;
  const driver = new CgroupDriver(kernel, layout, parent);
  const versions = [...new Set(Object.values(layout.controllers).map((b) => `v${b.version}`))].join('+');
  console.log(`cgroup layout ${versions}; ${driver.dirs('x').length} hierarchies; parent ${parent}`);

  let fillers = 0;
  const grow = (n: number) => {
    // The container being measured is one of the n.
    for (; fillers < n - 1; fillers++) driver.create(`filler-${fillers}`, { cpuLimit: 1, memoryLimit: 256 * MiB, pidsLimit: 128 });
  };
  try {
    driver.create('probe', { cpuLimit: 1, memoryLimit: 256 * MiB, pidsLimit: 128 });
    fillers = 0;
    let flip = false;
    let seq = 0;
    const bench = new Bench({ time: 1500, warmupTime: 200, iterations: 20 });
    bench
      .add('stats() — one container, every file once', () => {
        driver.stats('probe');
      })
      .add('update({ pidsLimit }) — 1 read + 1 write', () => {
        flip = !flip;
        driver.update('probe', { pidsLimit: flip ? 100 : 128 });
      })
      .add('update({ cpuLimit, memoryLimit, pidsLimit }) — 4 reads + 4 writes', () => {
        flip = !flip;
        driver.update('probe', { cpuLimit: flip ? 0.5 : 1, memoryLimit: (flip ? 200 : 256) * MiB, pidsLimit: flip ? 100 : 128 });
      });
    for (const n of [1, 10, 100, 1000]) {
      bench.add(
        `create()+destroy() with ${n} container${n === 1 ? '' : 's'} under the parent`,
        async () => {
          const id = `bench-${seq++}`;
          driver.create(id, { cpuLimit: 1, memoryLimit: 256 * MiB, pidsLimit: 128 });
          await driver.destroy(id);
        },
        { beforeAll: () => grow(n) },
      );
    }
    const t0 = performance.now();
    await bench.run();
    console.table(bench.table());
    console.log(`(${driver.list().length} containers existed at the end; bench took ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  } finally {
    for (const id of driver.list()) await driver.destroy(id);
    driver.removeParent();
  }
}

await main();
