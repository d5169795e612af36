/**
 * Load against the real kernel (root): 1,000 containers churned through create, start,
 * stop and remove, four at a time, then 200 running at once. Afterwards nothing has leaked:
 * no fd of the host agent or the spawner, mount, cgroup, id range, state, zombie, exit
 * listener; the spawner's memory stays flat (±10 %) through the churn and from one round of
 * 200 to the next. The latencies are printed (a
 * benchmark, bench/soak.bench.ts, tracks them; a test asserts no timing).
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { runtimeParts, type Runtime } from '../../src/runtime.js';
import { CLEAN, leftovers } from '../helpers/leftovers.js';
import { IS_ROOT, SKIP_REASON, useTestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

let rt: Runtime;
/** LOAD_CHURN sets a smaller run for a quick look; CI runs the full 1,000. */
const CHURN = Number(process.env.LOAD_CHURN ?? 1000);
let n = 0;
const config = () =>
  ContainerConfig.builder()
    .name(`load-${++n}-${process.pid}`)
    .image('stratoswarm/base-agent:latest')
    .command(['sleep', '100000'])
    // The init passes stop's SIGTERM on to sleep, which ends at once.
    .init(true)
    .build();

const fds = (pid: number | 'self') => fs.readdirSync(`/proc/${pid}/fd`).length;
const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

/** The spawner's children that have exited and not been reaped. */
function zombiesOf(pid: number): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' && Number(fields[1]) === pid) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function spawnerPid(): Promise<number> {
  return Number((await runtimeParts(rt).spawner.request(['ping'], 'ping'))[1]);
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function cycle(): Promise<number> {
  const t0 = performance.now();
  const c = await Container.create(config(), { runtime: rt });
  await c.start();
  await c.stop({ timeoutMs: 5000 });
  await c.remove();
  return performance.now() - t0;
}

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'load tests'))('load (real kernel)', () => {
  useTestRuntime((t) => (rt = t.runtime));

  it('1,000 containers churned four at a time, then 200 at once (twice): nothing leaks, the spawner memory stays flat', { timeout: 600_000 }, async () => {
    // Warm up: the spawner, the image's layers and the runtime's modules are in place.
    for (let i = 0; i < 8; i++) await cycle();
    const spawner = await spawnerPid();
    const before = { agentFds: fds('self'), spawnerFds: fds(spawner), spawnerRss: rssKiB(spawner), listeners: runtimeParts(rt).exitListenerCount() };

    const latencies: number[] = [];
    let next = 0;
    const worker = async () => {
      while (next < CHURN) {
        next++;
        latencies.push(await cycle());
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(latencies).toHaveLength(CHURN);
    const first = latencies.slice(0, 200);
    const last = latencies.slice(-200);
    console.log(
      `1,000-container churn (4 at a time), create+start+stop+remove: first 200 p50 ${pct(first, 50).toFixed(1)} ms p99 ${pct(first, 99).toFixed(1)} ms; ` +
        `last 200 p50 ${pct(last, 50).toFixed(1)} ms p99 ${pct(last, 99).toFixed(1)} ms`,
    );

    const churned = rssKiB(spawner);
    // 200 at once, twice: the first round sets the spawner's high-water mark (freed memory
    // stays with its allocator); a leak would grow it again in the second.
    const rounds: number[] = [];
    for (let round = 0; round < 2; round++) {
      const many: Container[] = [];
      for (let i = 0; i < 200; i++) {
        const c = await Container.create(config(), { runtime: rt });
        await c.start();
        many.push(c);
      }
      expect((await Container.list({ runtime: rt })).filter((s) => s.state === 'running')).toHaveLength(200);
      for (const c of many) await c.remove({ force: true });
      rounds.push(rssKiB(spawner));
    }
    expect(await spawnerPid()).toBe(spawner);
    const after = { agentFds: fds('self'), spawnerFds: fds(spawner), spawnerRss: rssKiB(spawner), listeners: runtimeParts(rt).exitListenerCount() };
    console.log(
      `spawner RSS: ${before.spawnerRss} KiB before, ${churned} KiB after the churn, ${rounds.join(' and ')} KiB after each round of 200; ` +
        `fds agent ${before.agentFds}→${after.agentFds}, spawner ${before.spawnerFds}→${after.spawnerFds}`,
    );
    expect(leftovers(rt)).toEqual(CLEAN);
    expect(zombiesOf(spawner)).toEqual([]);
    expect(after.listeners).toBe(before.listeners);
    expect(after.spawnerFds).toBe(before.spawnerFds);
    // The host agent's own fds: the same, give or take a socket the test runner opened.
    expect(Math.abs(after.agentFds - before.agentFds)).toBeLessThanOrEqual(2);
    expect(Math.abs(churned - before.spawnerRss) / before.spawnerRss).toBeLessThanOrEqual(0.1);
    expect(Math.abs(rounds[1]! - rounds[0]!) / rounds[0]!).toBeLessThanOrEqual(0.1);
  });
});
