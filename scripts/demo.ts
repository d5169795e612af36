/**
 * The quick-start demo: one agent container per personality from the base image. Each asks
 * its personality for resources for the same workload (container.allocateResources, put in
 * force with update()), runs a small CPU-bound task, and the table shows what each got.
 *
 *   sudo npm run demo
 */
import { Container, ContainerConfig, Personality, Runtime, type ResourcePlan } from '../src/index.js';

const MIB = 1024 * 1024;
const WORKLOAD = { cpu: 1, memory: 256 * MIB, pids: 128 };
// About a third of a second of shell arithmetic on one core.
const TASK = 'i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; echo "counted to $i as $(hostname)"';

async function main(): Promise<void> {
  Runtime.assertPrivileged();
  // The table is the output; the library's JSON log stays for warnings unless asked for.
  const runtime = new Runtime({ logLevel: process.env.STRATOSWARM_LOG_LEVEL ? undefined : 'warn' });
  if (!runtime.images.has('stratoswarm/base-agent:latest')) await runtime.images.buildBaseImage();
  const started: { c: Container; personality: Personality; spawnMs: number; t0: number; plan: ResourcePlan }[] = [];
  for (const personality of Personality.presets) {
    const config = ContainerConfig.builder()
      .name(`demo-${personality.name.toLowerCase()}-${process.pid}`)
      .image('stratoswarm/base-agent:latest')
      .personality(personality)
      .hostname(personality.name.toLowerCase())
      .command(['/bin/sh', '-c', TASK])
      .build();
    const t0 = performance.now();
    const c = await Container.create(config, { runtime });
    const plan = await c.allocateResources(WORKLOAD, { apply: true });
    await c.start();
    started.push({ c, personality, spawnMs: performance.now() - t0, t0, plan });
  }
  const rows: Record<string, string>[] = [];
  for (const { c, personality, spawnMs, t0, plan } of started) {
    const exit = await c.wait();
    const r = c.resources;
    rows.push({
      personality: personality.name,
      state: (await c.status()).state,
      'spawn ms': spawnMs.toFixed(1),
      'cpu limit': r.cpuLimit !== undefined ? `${r.cpuLimit} cores` : 'none (shares)',
      'cpu weight': String(r.cpuWeight),
      memory: r.memoryLimit !== undefined ? `${Math.round(r.memoryLimit / MIB)} MiB` : `no cap (plans ${Math.round(plan.memoryLimit / MIB)} MiB)`,
      reserved: `${Math.round((r.memoryReservation ?? 0) / MIB)} MiB`,
      pids: String(r.pidsLimit),
      exit: exit.signal ?? String(exit.exitCode),
      'run ms': (performance.now() - t0).toFixed(0),
      output: c.logs().stdout.trim(),
    });
    await c.remove();
  }
  console.log(`one agent per personality, same workload: ${WORKLOAD.cpu} core, ${WORKLOAD.memory / MIB} MiB, ${WORKLOAD.pids} pids`);
  console.table(rows);
  // Where GPU containers would go: the host's NUMA nodes and GPUs, and who holds each GPU.
  const topo = await runtime.topology();
  const gpus = await runtime.gpus();
  console.log(`\nhost topology: ${topo.nodes.length} NUMA node(s)`);
  for (const n of topo.nodes) {
    const distances = n.distances ? `, distances ${Object.entries(n.distances).map(([k, v]) => `${k}:${v}`).join(' ')}` : '';
    console.log(`  node ${n.id}: ${n.cpus.length} CPUs${n.memoryBytes ? `, ${(n.memoryBytes / 2 ** 30).toFixed(1)} GiB` : ''}${distances}`);
  }
  if (gpus.devices.length === 0) console.log(`GPUs: none (${gpus.nvmlError ?? 'from /dev'})`);
  for (const d of gpus.devices) {
    const t = topo.gpus.find((g) => g.index === d.index);
    console.log(`  GPU ${d.index}: ${d.name ?? '?'} PCI ${d.pciBusId ?? '?'} NUMA ${t?.numaNode ?? '?'} held by ${d.assignedTo?.join(', ') || 'nobody'}`);
  }
  await runtime.close();
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? `demo failed: ${e.message}` : e);
  process.exit(1);
});
