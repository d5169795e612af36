/**
 * Soak: for SOAK_MINUTES (10 by default), a host agent (bench/soak-agent.ts) does mixed
 * create, start, exec, update, stats, stop and remove on a few containers and is SIGKILLed
 * at a random moment every 5–20 s; a fresh runtime then reconciles, removes what the dead
 * agent left (as its successor would) and a new agent carries on. Once a minute it prints
 * the latency percentiles of each operation and the leak counters: state, name claims, id
 * ranges, storage, mounts and cgroups left after the cleanup, zombies, and the spawner's fds
 * and memory.
 *
 *   sudo node dist/bench/soak.bench.js                  # or: sudo npm run bench -- soak
 *   SOAK_MINUTES=2 node dist/bench/soak.bench.js
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Container, Runtime } from '../src/index.js';
import { runtimeParts } from '../src/runtime.js';
import { fmt, summarize } from './stats.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const OPS = ['create+start', 'exec', 'update', 'stats', 'stop+remove'];

function mountsUnder(...roots: string[]): number {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => roots.some((r) => l.includes(r))).length;
}

function zombiesOf(pid: number): number {
  let n = 0;
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z' && Number(f[1]) === pid) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('soak bench skipped: needs root');
    return;
  }
  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'sss-'));
  const imageRoot = fs.mkdtempSync('/var/tmp/sss-img-');
  const cgroupParent = `stratoswarm-soak-${process.pid}`;
  const options = { stateRoot, imageRoot, cgroupParent, logger: pino({ level: 'silent' }), spawnerIdleMs: 60_000, env: {} };
  const setup = new Runtime(options);
  await setup.images.buildBaseImage();

  const agentJs = join(import.meta.dirname, 'soak-agent.js');
  const end = Date.now() + MINUTES * 60_000;
  let minute = 0;
  let samples = new Map<string, number[]>();
  let errors = 0;
  let kills = 0;
  const rows: Record<string, string | number>[] = [];
  let seed = 1;
  while (Date.now() < end) {
    const child = spawn(process.execPath, [agentJs, stateRoot, imageRoot, cgroupParent, String(seed++)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        const [op, ms] = l.split(' ', 2) as [string, string];
        if (ms === 'error') errors++;
        else (samples.get(op) ?? samples.set(op, []).get(op)!).push(Number(ms));
      }
    });
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, Math.min(5_000 + Math.random() * 15_000, Math.max(0, end - Date.now()))));
    child.kill('SIGKILL');
    await exited;
    kills++;

    // The successor: reconcile, then remove whatever the dead agent left.
    const fresh = new Runtime(options);
    await fresh.reconcile();
    for (const s of await Container.list({ runtime: fresh })) {
      try {
        await (await Container.load(s.id, { runtime: fresh })).remove({ force: true });
      } catch {
        errors++;
      }
    }
    const now = Math.floor((MINUTES * 60_000 - (end - Date.now())) / 60_000);
    if (now > minute || Date.now() >= end) {
      minute = now;
      const parts = runtimeParts(fresh);
      const spawner = Number((await parts.spawner.request(['ping'], 'ping'))[1]);
      const dir = (p: string) => (fs.existsSync(p) ? fs.readdirSync(p).length : 0);
      const row: Record<string, string | number> = { minute: Math.max(1, minute), kills };
      for (const op of OPS) {
        const s = summarize(samples.get(op) ?? []);
        row[`${op} p50/p99 ms`] = s.n ? `${fmt(s.p50)}/${fmt(s.p99)}` : '-';
      }
      Object.assign(row, {
        errors,
        'left: state/names/ids/storage/mounts/cgroups': [
          parts.state.ids().length,
          dir(join(stateRoot, 'names')),
          parts.idRanges.claims().length,
          dir(join(imageRoot, 'containers')),
          mountsUnder(stateRoot, imageRoot),
          parts.cgroups.list().length,
        ].join('/'),
        zombies: zombiesOf(spawner),
        'spawner fds': fs.readdirSync(`/proc/${spawner}/fd`).length,
        'spawner RSS KiB': rssKiB(spawner),
      });
      rows.push(row);
      console.log(JSON.stringify(row));
      samples = new Map();
      errors = 0;
      kills = 0;
    }
    await fresh.close();
  }
  console.log(`\nsoak: ${MINUTES} min of mixed operations, the host agent SIGKILLed every 5–20 s`);
  console.table(rows);
  await setup.close({ stopSpawner: true, force: true });
  try {
    runtimeParts(setup).cgroups.removeParent();
  } catch {
    // a cgroup left is in the table
  }
  fs.rmSync(stateRoot, { recursive: true, force: true });
  fs.rmSync(imageRoot, { recursive: true, force: true });
}

await main();
