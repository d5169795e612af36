/**
 * Container spawn time against the peers, in one run so the numbers share the machine's
 * state: this runtime (create+start+wait+remove of `/bin/true`, and create+start alone),
 * crun run, runc run, bwrap, unshare with five namespaces, and a bare exec, all over the
 * same busybox root filesystem. Peers are timed by hyperfine (-N, no shell); ours in
 * process, as a host agent uses it. Reports median and p99, and ratios to crun.
 *
 *   BENCH_RUNS=200 node dist/bench/spawn.bench.js
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Container, ContainerConfig, Runtime } from '../src/index.js';
import { runtimeParts } from '../src/runtime.js';
import { fmt, summarize } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 100);

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

// crun 1.8 refuses hybrid cgroup hosts; inside a private mount namespace that shows only the
// v1 hierarchies it runs. The wrapper is set up once, around hyperfine, not per run.
const V1_ONLY = `mount -t tmpfs tmpfs /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
exec "$@"`;

function hyperfine(name: string, command: string, wrapV1 = false): number[] | undefined {
  const out = join(tmpdir(), `hf-${process.pid}-${name.replace(/\W/g, '')}.json`);
  const args = ['-N', '--warmup', '5', '--runs', String(RUNS), '--export-json', out, command];
  const argv = wrapV1 ? ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', V1_ONLY, 'sh', 'hyperfine', ...args] : ['hyperfine', ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`${name}: skipped (${r.stderr.trim().split('\n').pop()})`);
    return undefined;
  }
  const times = (JSON.parse(fs.readFileSync(out, 'utf8')).results[0].times as number[]).map((s) => s * 1000);
  fs.rmSync(out, { force: true });
  return times;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('spawn bench skipped: needs root');
    return;
  }
  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'ssb-'));
  const imageRoot = fs.mkdtempSync('/var/tmp/ssb-img-');
  const runtime = new Runtime({ stateRoot, imageRoot, cgroupParent: `stratoswarm-bench-${process.pid}`, logger: pino({ level: 'silent' }), env: {} });
  runtime.images.buildBaseImage();
  const layer = runtime.images.resolve('stratoswarm/base-agent:latest').layerPaths[0]!;
  const results: Record<string, number[]> = {};

  // This runtime: full run (create, start, wait, remove) and create+start.
  const full: number[] = [];
  const spawnOnly: number[] = [];
  for (let i = 0; i < RUNS + 5; i++) {
    const cfg = ContainerConfig.builder().name(`b${i}`).image('stratoswarm/base-agent:latest').command(['/bin/true']).build();
    const t0 = performance.now();
    const c = await Container.create(cfg, { runtime });
    await c.start();
    const t1 = performance.now();
    await c.wait();
    await c.remove();
    const t2 = performance.now();
    if (i >= 5) {
      full.push(t2 - t0);
      spawnOnly.push(t1 - t0);
    }
  }
  results['stratoswarm create+start+wait+remove'] = full;
  results['stratoswarm create+start'] = spawnOnly;

  // An OCI bundle over the same rootfs for crun and runc.
  const bundle = fs.mkdtempSync('/var/tmp/ssb-bundle-');
  execFileSync('cp', ['-a', layer, join(bundle, 'rootfs')]);
  if (has('crun') || has('runc')) {
    execFileSync(has('crun') ? 'crun' : 'runc', ['spec'], { cwd: bundle });
    const spec = JSON.parse(fs.readFileSync(join(bundle, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['/bin/true'];
    fs.writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  }
  const rootfs = join(bundle, 'rootfs');
  if (has('crun')) {
    const r = hyperfine('crun', `crun run -b ${bundle} ssb-crun-${process.pid}`, true);
    if (r) results['crun run'] = r;
  }
  if (has('runc')) {
    const r = hyperfine('runc', `runc run -b ${bundle} ssb-runc-${process.pid}`);
    if (r) results['runc run'] = r;
  }
  if (has('bwrap')) {
    const r = hyperfine('bwrap', `bwrap --bind ${rootfs} / --unshare-all --proc /proc --dev /dev /bin/true`);
    if (r) results['bwrap'] = r;
  }
  const r1 = hyperfine('unshare', `unshare --pid --fork --mount --uts --ipc --net --root ${rootfs} /bin/true`);
  if (r1) results['unshare (5 namespaces)'] = r1;
  const r2 = hyperfine('bare', `${rootfs}/bin/true`);
  if (r2) results['bare exec'] = r2;

  const base = results['crun run'] ? summarize(results['crun run']).p50 : undefined;
  const rows = Object.entries(results).map(([name, samples]) => {
    const s = summarize(samples);
    return {
      what: name,
      runs: s.n,
      'p50 ms': fmt(s.p50),
      'p99 ms': fmt(s.p99),
      'p50 / crun p50': base ? (s.p50 / base).toFixed(2) : 'n/a',
    };
  });
  console.log(`spawn of /bin/true in a busybox rootfs, ${RUNS} runs each`);
  console.table(rows);
  await runtime.close({ stopSpawner: true, force: true });
  runtimeParts(runtime).cgroups.removeParent();
  for (const d of [stateRoot, imageRoot, bundle]) fs.rmSync(d, { recursive: true, force: true });
}

await main();
