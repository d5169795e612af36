/**
 * Container spawn latency against the peers, in one run so the numbers share the machine's
 * state. Every peer starts the same entrypoint in the same busybox root filesystem: a tiny
 * static program (bench/native/spawn-probe.c) whose first act is to write its
 * CLOCK_MONOTONIC reading to stdout. The latency of one spawn is that reading minus the same
 * clock read just before the start call:
 *
 * - this runtime, in process as a host agent uses it: process.hrtime.bigint() (CLOCK_MONOTONIC)
 *   before start() (and before Container.create, for the create+start row); the reading comes
 *   back through the container's stdout log;
 * - crun run, runc run, bwrap, unshare and a bare posix_spawn of the probe on the host: a
 *   small C loop (bench/native/spawn-driver.c) reads the clock and posix_spawn's the command,
 *   the reading comes back on a pipe.
 *
 * Both helpers are built with cc when the benchmark starts. Then: run-to-completion
 * containers per second for /bin/true, memory per idle pooled container, and our spawn
 * latency with 1, 100 and 1,000 `sleep` containers already running. Everything the run
 * makes (containers, bundles, cgroups, temporary directories) is removed at the end, also
 * on failure or Ctrl-C.
 *
 *   sudo node dist/bench/spawn.bench.js        # or: sudo npm run bench -- spawn
 *   BENCH_RUNS=100 BENCH_ROUNDS=2 BENCH_LIVE=1,100 node dist/bench/spawn.bench.js
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Container, ContainerConfig, Runtime } from '../src/index.js';
import { runtimeParts } from '../src/runtime.js';
import { fmt, summarize } from './stats.js';

const RUNS = positiveInt('BENCH_RUNS', 500);
/**
 * The peers take turns: each runs RUNS/ROUNDS spawns, then the next, ROUNDS times over, so a
 * slow minute on this shared machine lands on all of them rather than on one.
 */
const ROUNDS = Math.min(positiveInt('BENCH_ROUNDS', 5), RUNS);
/** Unmeasured spawns before each peer's turn. */
const WARMUP = 3;
/** How many idle `sleep` containers run while our spawn latency is measured again. */
const LIVE = (process.env.BENCH_LIVE ?? '1,100,1000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0)
  .sort((a, b) => a - b);

const SOURCES = join(dirname(fileURLToPath(import.meta.url)), '../../bench/native');
const PROBE_IMAGE = 'stratoswarm/bench-spawn-probe:latest';

const POOL_N = 50;

function positiveInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer, got "${v}"`);
  return n;
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function version(cmd: string): string {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]!.trim() : 'missing';
}

// crun 1.8 refuses hybrid cgroup hosts; inside a private mount namespace that shows only the
// v1 hierarchies it runs. The wrapper is set up once, around the spawn loop, not per run.
const V1_ONLY = `mount -t tmpfs tmpfs /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
exec "$@"`;

function v1Only(argv: string[]): string[] {
  return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', V1_ONLY, 'sh', ...argv];
}

/** Samples of one spawn loop, in ms. `entry` is empty in mode "done". */
interface Loop {
  entry: number[];
  done: number[];
  totalMs: number;
}

let aborted: string | undefined;
const children = new Set<ReturnType<typeof spawn>>();

function checkAborted(): void {
  if (aborted) throw new Error(`interrupted by ${aborted}`);
}

/** Runs spawn-driver (optionally inside the v1-only wrapper) and parses its lines. */
function runDriver(driver: string, mode: 'entry' | 'done', argv: string[], wrapV1: boolean, runs: number): Promise<Loop> {
  const cmd = [driver, mode, String(runs), String(WARMUP), ...argv];
  const full = wrapV1 ? v1Only(cmd) : cmd;
  return new Promise((resolve, reject) => {
    checkAborted();
    const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
    child.on('error', (e) => {
      children.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      if (code !== 0) {
        reject(new Error(`${argv[0]}: spawn loop exited with ${code ?? signal}: ${err.trim().split('\n').slice(-3).join(' | ')}`));
        return;
      }
      const loop: Loop = { entry: [], done: [], totalMs: NaN };
      for (const line of out.split('\n')) {
        if (line.startsWith('# total ')) loop.totalMs = Number(line.slice(8)) / 1e6;
        else if (line) {
          const [e, d] = line.split(' ').map(Number) as [number, number];
          if (mode === 'entry') loop.entry.push(e / 1e6);
          loop.done.push(d / 1e6);
        }
      }
      if (loop.done.length !== runs) reject(new Error(`${argv[0]}: expected ${runs} samples, got ${loop.done.length}`));
      else resolve(loop);
    });
  });
}

function cc(out: string, src: string, flags: string[]): void {
  const r = spawnSync('cc', [...flags, '-o', out, join(SOURCES, src)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cc ${src} failed (install gcc/libc6-dev): ${(r.stderr || r.error?.message || '').trim()}`);
}

/** Undo actions, run last-registered first; each runs once and its failure does not stop the others. */
class Cleanup {
  private readonly steps: { what: string; run: () => unknown }[] = [];
  add(what: string, run: () => unknown): void {
    this.steps.push({ what, run });
  }
  async runAll(): Promise<void> {
    while (this.steps.length) {
      const s = this.steps.pop()!;
      try {
        await s.run();
      } catch (e) {
        console.error(`cleanup: ${s.what}: ${(e as Error).message}`);
      }
    }
  }
}

/**
 * One way to start a container's entrypoint (or to run a container to completion). A warm
 * pool (a parked, pre-created container handed out on start) is one more entry, with its
 * own `measure`.
 */
interface SpawnPeer {
  /** The table rows this peer fills. */
  rows: string[];
  /** One turn: `runs` measured spawns after WARMUP; ms samples per row and the turn's wall time. Absent: not available. */
  measure?: (runs: number) => Promise<{ samples: Record<string, number[]>; totalMs: number }>;
  /** Why there is no `measure`. */
  unavailable?: string;
}

function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor((total * (i + 1)) / parts) - Math.floor((total * i) / parts));
}

/** Measures the peers in ROUNDS turns each; a peer that fails once is reported as failed. */
async function inRounds(peers: SpawnPeer[]): Promise<{ samples: Map<string, number[]>; totalMs: Map<string, number>; notes: Map<string, string> }> {
  const samples = new Map<string, number[]>();
  const totalMs = new Map<string, number>();
  const notes = new Map<string, string>();
  for (const p of peers) if (!p.measure) for (const r of p.rows) notes.set(r, p.unavailable ?? 'not available');
  for (const runs of split(RUNS, ROUNDS)) {
    for (const p of peers) {
      if (!p.measure || notes.has(p.rows[0]!)) continue;
      try {
        const m = await p.measure(runs);
        for (const r of p.rows) {
          samples.set(r, [...(samples.get(r) ?? []), ...(m.samples[r] ?? [])]);
          totalMs.set(r, (totalMs.get(r) ?? 0) + m.totalMs);
        }
      } catch (e) {
        checkAborted();
        for (const r of p.rows) {
          notes.set(r, `failed: ${(e as Error).message.slice(0, 160)}`);
          samples.delete(r);
        }
      }
      globalThis.gc?.();
    }
  }
  return { samples, totalMs, notes };
}

function driverPeer(driver: string, row: string, mode: 'entry' | 'done', argv: string[], wrapV1: boolean): SpawnPeer {
  const tool = argv[0]!;
  if (!tool.startsWith('/') && !has(tool)) return { rows: [row], unavailable: `skipped: ${tool} not installed` };
  return {
    rows: [row],
    measure: async (runs) => {
      const l = await runDriver(driver, mode, argv, wrapV1, runs);
      return { samples: { [row]: mode === 'entry' ? l.entry : l.done }, totalMs: l.totalMs };
    },
  };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('spawn bench skipped: needs root');
    return;
  }
  const cleanup = new Cleanup();
  const onSignal = (sig: NodeJS.Signals) => {
    if (aborted) return;
    aborted = sig;
    console.error(`\n${sig}: stopping and cleaning up`);
    for (const c of children) c.kill('SIGTERM');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await bench(cleanup);
  } finally {
    await cleanup.runAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function bench(cleanup: Cleanup): Promise<void> {
  const began = performance.now();
  const work = fs.mkdtempSync('/var/tmp/ssb-spawn-');
  cleanup.add(`remove ${work}`, () => fs.rmSync(work, { recursive: true, force: true }));

  // The helpers, built for this machine.
  const probe = join(work, 'spawn-probe');
  const driver = join(work, 'spawn-driver');
  cc(probe, 'spawn-probe.c', ['-static', '-nostdlib', '-O2', '-fno-stack-protector']);
  cc(driver, 'spawn-driver.c', ['-O2']);

  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'ssb-'));
  cleanup.add(`remove ${stateRoot}`, () => fs.rmSync(stateRoot, { recursive: true, force: true }));
  const imageRoot = fs.mkdtempSync('/var/tmp/ssb-img-');
  cleanup.add(`remove ${imageRoot}`, () => fs.rmSync(imageRoot, { recursive: true, force: true }));
  const runtime = new Runtime({ stateRoot, imageRoot, cgroupParent: `stratoswarm-bench-${process.pid}`, logger: pino({ level: 'silent' }), env: {} });
  cleanup.add('remove the cgroup parent', () => runtimeParts(runtime).cgroups.removeParent());
  cleanup.add('close the runtime', () => runtime.close({ stopSpawner: true, force: true }));
  const live = new Set<Container>();
  cleanup.add('remove the containers', async () => {
    for (const c of live) await c.remove({ force: true }).catch((e: Error) => console.error(`cleanup: remove ${c.name}: ${e.message}`));
    live.clear();
  });

  // The image: the base busybox layer with the probe as /probe in a layer above it.
  const base = await runtime.images.buildBaseImage();
  const baseLayer = runtime.images.resolve(base.ref).layerPaths[0]!;
  const probeBytes = fs.readFileSync(probe);
  const probeDigest = `sha256:${createHash('sha256').update('bench spawn-probe layer').update(probeBytes).digest('hex')}`;
  const probeLayer = runtime.images.layerPath(probeDigest);
  fs.mkdirSync(probeLayer, { recursive: true });
  fs.copyFileSync(probe, join(probeLayer, 'probe'));
  fs.chmodSync(join(probeLayer, 'probe'), 0o755);
  runtime.images.save({ ...base, ref: PROBE_IMAGE, layers: [probeDigest, ...base.layers], createdAt: new Date().toISOString() });

  // The same root filesystem, flattened, for the peers; two OCI bundles over it.
  const rootfs = join(work, 'rootfs');
  execFileSync('cp', ['-a', baseLayer, rootfs]);
  fs.copyFileSync(probe, join(rootfs, 'probe'));
  fs.chmodSync(join(rootfs, 'probe'), 0o755);
  const oci = has('crun') ? 'crun' : has('runc') ? 'runc' : undefined;
  const bundles: Record<'probe' | 'true', string> = { probe: join(work, 'bundle-probe'), true: join(work, 'bundle-true') };
  if (oci) {
    fs.mkdirSync(join(work, 'spec'));
    execFileSync(oci, ['spec'], { cwd: join(work, 'spec') });
    const spec = JSON.parse(fs.readFileSync(join(work, 'spec', 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.root = { path: rootfs, readonly: true };
    for (const [what, dir] of Object.entries(bundles)) {
      fs.mkdirSync(dir);
      spec.process.args = what === 'probe' ? ['/probe'] : ['/bin/true'];
      fs.writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
    }
  }
  const crunId = `ssb-crun-${process.pid}`;
  const runcId = `ssb-runc-${process.pid}`;
  if (has('crun')) {
    const del = v1Only(['crun', 'delete', '-f', crunId]);
    cleanup.add('crun delete', () => spawnSync(del[0]!, del.slice(1), { stdio: 'ignore' }));
  }
  if (has('runc')) cleanup.add('runc delete', () => spawnSync('runc', ['delete', '-f', runcId], { stdio: 'ignore' }));

  let seq = 0;
  const probeConfig = () => ContainerConfig.builder().name(`p${seq++}`).image(PROBE_IMAGE).command(['/probe']).build();

  /** One cold spawn of the probe: ms from before create and from before start() to the entrypoint. */
  const ourSpawn = async (): Promise<{ fromCreate: number; fromStart: number }> => {
    checkAborted();
    const tCreate = process.hrtime.bigint();
    const c = await Container.create(probeConfig(), { runtime });
    live.add(c);
    const tStart = process.hrtime.bigint();
    await c.start();
    const exit = await c.wait();
    const out = c.logs().stdout.trim();
    await c.remove();
    live.delete(c);
    if (exit.exitCode !== 0 || !/^\d+$/.test(out)) throw new Error(`probe container: exit ${JSON.stringify(exit)}, stdout "${out.slice(0, 40)}"`);
    const entry = BigInt(out);
    // hrtime and the probe read the same system-wide clock: an entry before the call is a bug.
    if (entry <= tStart) throw new Error(`probe container: entrypoint clock ${entry} is not after start() at ${tStart}`);
    return { fromCreate: Number(entry - tCreate) / 1e6, fromStart: Number(entry - tStart) / 1e6 };
  };
  const ourSpawns = async (runs: number, warmup = WARMUP) => {
    const fromCreate: number[] = [];
    const fromStart: number[] = [];
    for (let i = 0; i < warmup + runs; i++) {
      const s = await ourSpawn();
      if (i < warmup) continue;
      fromCreate.push(s.fromCreate);
      fromStart.push(s.fromStart);
    }
    return { fromCreate, fromStart };
  };
  /** Until the pool's shapes are full again: refills are not part of a measured spawn. */
  const poolFull = async () => {
    for (let i = 0; i < 5000 && runtime.pool.stats().shapes.some((x) => x.ready < x.size); i++) await new Promise((r) => setTimeout(r, 1));
  };
  /** `runs` spawns taken from a warm pool of the probe's shape (emptied afterwards). */
  const warmSpawns = async (runs: number) => {
    const shape = probeConfig();
    await runtime.pool.configure(shape, { size: 4 });
    const hits = runtime.pool.stats().hits;
    try {
      const fromCreate: number[] = [];
      const fromStart: number[] = [];
      for (let i = 0; i < WARMUP + runs; i++) {
        await poolFull();
        const s = await ourSpawn();
        if (i < WARMUP) continue;
        fromCreate.push(s.fromCreate);
        fromStart.push(s.fromStart);
      }
      const took = runtime.pool.stats().hits - hits;
      if (took !== WARMUP + runs) throw new Error(`warm pool: ${took} of ${WARMUP + runs} spawns came from the pool`);
      return { fromCreate, fromStart };
    } finally {
      await runtime.pool.configure(shape, { size: 0 });
    }
  };
  const ratio = (v: number, to: number | undefined) => (to ? (v / to).toFixed(2) : 'n/a');
  const turns = `${ROUNDS} turns of ${split(RUNS, ROUNDS).join('/')} spawns per peer, peers interleaved, ${WARMUP} warm-up spawns before each turn`;

  // ── 1. start call → entrypoint ──────────────────────────────────────────────
  const OURS_START = 'stratoswarm start() (after Container.create)';
  const OURS_CREATE = 'stratoswarm create+start';
  const BARE = 'bare posix_spawn (host)';
  const WARM_START = 'stratoswarm warm pool start()';
  const WARM_CREATE = 'stratoswarm warm pool create+start';
  const peers: SpawnPeer[] = [
    {
      rows: [OURS_START, OURS_CREATE],
      measure: async (runs) => {
        const t = performance.now();
        const s = await ourSpawns(runs);
        return { samples: { [OURS_START]: s.fromStart, [OURS_CREATE]: s.fromCreate }, totalMs: performance.now() - t };
      },
    },
    {
      rows: [WARM_START, WARM_CREATE],
      measure: async (runs) => {
        const t = performance.now();
        const s = await warmSpawns(runs);
        return { samples: { [WARM_START]: s.fromStart, [WARM_CREATE]: s.fromCreate }, totalMs: performance.now() - t };
      },
    },
    driverPeer(driver, 'crun run', 'entry', ['crun', 'run', '-b', bundles.probe, crunId], true),
    driverPeer(driver, 'runc run', 'entry', ['runc', 'run', '-b', bundles.probe, runcId], false),
    driverPeer(driver, 'bwrap --unshare-all', 'entry', ['bwrap', '--bind', rootfs, '/', '--unshare-all', '--proc', '/proc', '--dev', '/dev', '/probe'], false),
    driverPeer(driver, 'unshare (5 namespaces) + chroot', 'entry', ['unshare', '--pid', '--fork', '--mount', '--uts', '--ipc', '--net', '--root', rootfs, '/probe'], false),
    driverPeer(driver, BARE, 'entry', [join(rootfs, 'probe')], false),
  ];
  {
    const { samples, notes } = await inRounds(peers);
    const stats = new Map([...samples].map(([k, v]) => [k, summarize(v)]));
    const bare = stats.get(BARE)?.p50;
    const crun = stats.get('crun run')?.p50;
    console.log(`\nspawn latency: start call → entrypoint running (its first CLOCK_MONOTONIC reading); ${turns}`);
    console.table(
      peers.flatMap((p) => p.rows).map((row) => {
        const s = stats.get(row);
        if (!s) return { what: row, runs: 0, 'p50 ms': notes.get(row)!, 'p90 ms': '', 'p99 ms': '', '× bare p50': '', '× crun p50': '' };
        return { what: row, runs: s.n, 'p50 ms': fmt(s.p50), 'p90 ms': fmt(s.p90), 'p99 ms': fmt(s.p99), '× bare p50': ratio(s.p50, bare), '× crun p50': ratio(s.p50, crun) };
      }),
    );
  }

  // ── 2. run-to-completion containers per second, /bin/true ──────────────────
  const OURS_TRUE = 'stratoswarm create+start+wait+remove (cold)';
  const WARM_TRUE = 'stratoswarm create+start+wait+remove (warm pool, refilled in the background)';
  /** `runs` containers of /bin/true run to completion one after another, as `row`. */
  const trueRuns = async (row: string, runs: number) => {
    const samples: number[] = [];
    let t0 = 0;
    for (let i = 0; i < WARMUP + runs; i++) {
      checkAborted();
      if (i === WARMUP) t0 = performance.now();
      const ta = performance.now();
      const c = await Container.create(ContainerConfig.builder().name(`t${seq++}`).image(base.ref).command(['/bin/true']).build(), { runtime });
      live.add(c);
      await c.start();
      const exit = await c.wait();
      await c.remove();
      live.delete(c);
      if (exit.exitCode !== 0) throw new Error(`/bin/true container: exit ${JSON.stringify(exit)}`);
      if (i >= WARMUP) samples.push(performance.now() - ta);
    }
    return { samples: { [row]: samples }, totalMs: performance.now() - t0 };
  };
  const truePeers: SpawnPeer[] = [
    { rows: [OURS_TRUE], measure: (runs) => trueRuns(OURS_TRUE, runs) },
    {
      rows: [WARM_TRUE],
      measure: async (runs) => {
        const shape = ContainerConfig.builder().name('pool').image(base.ref).command(['/bin/true']).build();
        await runtime.pool.configure(shape, { size: 4 });
        try {
          // Refills run beside the spawns (as they would in use) and count in the rate.
          return await trueRuns(WARM_TRUE, runs);
        } finally {
          await runtime.pool.configure(shape, { size: 0 });
        }
      },
    },
    driverPeer(driver, 'crun run', 'done', ['crun', 'run', '-b', bundles.true, crunId], true),
    driverPeer(driver, 'runc run', 'done', ['runc', 'run', '-b', bundles.true, runcId], false),
    driverPeer(driver, 'bare posix_spawn (host, busybox true)', 'done', [join(rootfs, 'bin/true')], false),
  ];
  {
    const { samples, totalMs, notes } = await inRounds(truePeers);
    const crunRate = samples.has('crun run') ? samples.get('crun run')!.length / (totalMs.get('crun run')! / 1000) : undefined;
    console.log(`\nrun to completion, /bin/true, one after another; ${turns}`);
    console.table(
      truePeers.flatMap((p) => p.rows).map((row) => {
        const v = samples.get(row);
        if (!v) return { what: row, runs: 0, 'containers/s': notes.get(row)!, '× crun rate': '', 'p50 ms': '', 'p99 ms': '' };
        const s = summarize(v);
        const rate = s.n / (totalMs.get(row)! / 1000);
        return { what: row, runs: s.n, 'containers/s': rate.toFixed(1), '× crun rate': ratio(rate, crunRate), 'p50 ms': fmt(s.p50), 'p99 ms': fmt(s.p99) };
      }),
    );
  }

  // ── 3. memory per idle pooled container ─────────────────────────────────────
  // With a pool: start it with N parked containers, read its cgroups' memory.current (and
  // the host's MemAvailable) before and after, divide by N.
  {
    const N = POOL_N;
    const avail = () => Number(/MemAvailable:\s+(\d+)/.exec(fs.readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
    const shape = ContainerConfig.builder().name('pool').image(base.ref).command(['sleep', '1']).build();
    globalThis.gc?.();
    const before = avail();
    const t = performance.now();
    const st = await runtime.pool.configure(shape, { size: N });
    const fillMs = performance.now() - t;
    await new Promise((r) => setTimeout(r, 500));
    const after = avail();
    const charged = runtime.pool.stats().shapes.find((x) => x.shape === st.shape)!.idleMemoryBytes;
    await runtime.pool.configure(shape, { size: 0 });
    const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
    console.log(`\nmemory per idle pooled container (${N} parked): ${kib(charged / N)} charged to its cgroups (memory.current), ` +
      `${kib((before - after) / N)} of the host's MemAvailable; filling the pool took ${fmt(fillMs / N)} ms per container (refill p50 ${fmt(st.refillMsP50 ?? NaN)} ms)`);
  }

  // ── 4. our spawn latency with N containers already running ──────────────────
  const loadRows: Record<string, string | number>[] = [];
  const sleepers: Container[] = [];
  try {
    for (const target of LIVE) {
      const fillStart = performance.now();
      const before = sleepers.length;
      while (sleepers.length < target) {
        checkAborted();
        const c = await Container.create(ContainerConfig.builder().name(`s${seq++}`).image(base.ref).command(['sleep', '100000']).build(), { runtime });
        live.add(c);
        sleepers.push(c);
        await c.start();
      }
      const fillMs = performance.now() - fillStart;
      const { fromStart, fromCreate } = await ourSpawns(RUNS, 10);
      const s = summarize(fromStart);
      const sc = summarize(fromCreate);
      loadRows.push({
        'running containers': target,
        runs: s.n,
        'start() p50 ms': fmt(s.p50),
        'p90 ms': fmt(s.p90),
        'p99 ms': fmt(s.p99),
        'create+start p50 ms': fmt(sc.p50),
        'create+start p99 ms': fmt(sc.p99),
        'fill: create+start of the sleepers, each ms': sleepers.length > before ? fmt(fillMs / (sleepers.length - before)) : '',
      });
      globalThis.gc?.();
    }
  } finally {
    const t = performance.now();
    const n = sleepers.length;
    for (const c of sleepers) {
      await c.remove({ force: true }).catch((e: Error) => console.error(`remove ${c.name}: ${e.message}`));
      live.delete(c);
    }
    if (n) console.log(`removed ${n} sleep containers in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  console.log(`\nour spawn (start call → entrypoint) with N idle \`sleep\` containers already running, ${RUNS} runs each after 10 warm-up`);
  console.table(loadRows);

  console.log(
    `\n${new Date().toISOString().slice(0, 10)}, Linux ${release()}, ${version('crun')}, ${version('runc')}, ${version('bwrap')}; ` +
      `BENCH_RUNS=${RUNS} BENCH_ROUNDS=${ROUNDS} BENCH_LIVE=${LIVE.join(',')}; took ${((performance.now() - began) / 1000).toFixed(0)} s`,
  );
}

await main();
