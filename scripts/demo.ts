/**
 * The quick-start demo: one agent container per personality from the base image, each
 * given the resources its personality allocates for the same workload, each running a small
 * CPU-bound task; then a table of state, spawn time, resources and exit.
 *
 *   sudo npm run demo
 */
import { Container, ContainerConfig, Personality, Runtime } from '../src/index.js';
import { allocateResources } from '../src/personality.js';

const MIB = 1024 * 1024;
const WORKLOAD = { cpu: 1, memory: 256 * MIB, pids: 128 };
// About a second of shell arithmetic on one core: long enough to see limits at work.
const TASK = 'i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; echo "counted to $i as $(hostname)"';

async function main(): Promise<void> {
  Runtime.assertPrivileged();
  // The table is the output; the library's JSON log stays for warnings unless asked for.
  const runtime = new Runtime({ logLevel: process.env.STRATOSWARM_LOG_LEVEL ? undefined : 'warn' });
  if (!runtime.images.has('stratoswarm/base-agent:latest')) runtime.images.buildBaseImage();
  const rows: Record<string, string>[] = [];
  const running: { c: Container; personality: Personality; spawnMs: number; t0: number }[] = [];
  for (const personality of Personality.presets) {
    const plan = allocateResources(personality, WORKLOAD, undefined, undefined, 0);
    const name = `demo-${personality.name.toLowerCase()}-${process.pid}`;
    const config = ContainerConfig.builder()
      .name(name)
      .image('stratoswarm/base-agent:latest')
      .personality(personality)
      .hostname(personality.name.toLowerCase())
      .cpuLimit(Math.round(plan.cpuLimit * 100) / 100)
      .cpuWeight(plan.cpuWeight)
      .memoryLimit(Math.max(4 * MIB, Math.round(plan.memoryLimit / 4096) * 4096))
      .pidsLimit(plan.pidsLimit)
      .command(['/bin/sh', '-c', TASK])
      .build();
    const t0 = performance.now();
    const c = await Container.create(config, { runtime });
    await c.start();
    running.push({ c, personality, spawnMs: performance.now() - t0, t0 });
  }
  for (const { c, personality, spawnMs, t0 } of running) {
    const exit = await c.wait();
    const wallMs = performance.now() - t0;
    const r = c.config.spec.resources;
    rows.push({
      personality: personality.name,
      state: (await c.status()).state,
      'spawn ms': spawnMs.toFixed(1),
      'cpu limit': `${r.cpuLimit} cores`,
      'cpu weight': String(r.cpuWeight),
      memory: `${Math.round((r.memoryLimit ?? 0) / MIB)} MiB`,
      pids: String(r.pidsLimit),
      exit: exit.signal ?? String(exit.exitCode),
      'run ms': wallMs.toFixed(0),
      output: c.logs().stdout.trim(),
    });
    await c.remove();
  }
  console.log(`one agent per personality, workload ${JSON.stringify({ ...WORKLOAD, memory: '256 MiB' })}`);
  console.table(rows);
  await runtime.close();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? `demo failed: ${e.message}` : e);
  process.exit(1);
});
