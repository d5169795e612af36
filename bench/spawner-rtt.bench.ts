/**
 * A spawner round trip (`status` of an unknown container: no work in the spawner, so what
 * is measured is the way there and back), three ways, in interleaved turns on one spawner:
 *
 * - per request, as the client did before the persistent connection: a `ping` on a new
 *   connection (connect and sendmsg on a worker thread) to make sure a spawner runs, then
 *   the request on another new connection;
 * - on the runtime's one persistent connection, one request at a time;
 * - on that connection with 50 requests in flight (the latency of each, and the rate).
 *
 *   sudo node dist/bench/spawner-rtt.bench.js      # or: sudo npm run bench -- spawner-rtt
 *   BENCH_REQUESTS=5000 node dist/bench/spawner-rtt.bench.js
 */
import * as fs from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultKernel } from '../src/kernel/kernel.js';
import { SpawnerClient } from '../src/spawner/client.js';
import { encodeFrame, FrameDecoder } from '../src/spawner/wire.js';
import { fmt, summarize } from './stats.js';

const REQUESTS = Math.max(100, Number(process.env.BENCH_REQUESTS ?? 2000));
const ROUNDS = 5;
const IN_FLIGHT = 50;

/** One request on a connection of its own, through the addon, as the old client sent each. */
async function onNewConnection(socketPath: string, fields: string[]): Promise<string[]> {
  const fd = await defaultKernel().request(socketPath, encodeFrame(fields));
  const s = new Socket({ fd, readable: true, writable: true });
  const d = new FrameDecoder();
  try {
    return await new Promise<string[]>((resolve, reject) => {
      s.on('data', (c: Buffer) => {
        const f = d.push(c)[0];
        if (f) resolve(f);
      });
      s.on('error', reject);
      s.on('close', () => reject(new Error('closed')));
    });
  } finally {
    s.destroy();
  }
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('spawner round-trip bench skipped: needs root (the spawner runs as root)');
    return;
  }
  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'ssrtt-'));
  const socketPath = join(stateRoot, 'spawner.sock');
  const client = new SpawnerClient({ stateRoot, kernel: defaultKernel(), idleMs: 10_000 });
  const before: number[] = [];
  const after: number[] = [];
  const concurrent: number[] = [];
  let concurrentMs = 0;
  try {
    await client.ensure();
    for (let i = 0; i < 200; i++) {
      await onNewConnection(socketPath, ['ping']);
      await client.request(['status', 'nobody'], 'status');
    }
    const per = Math.ceil(REQUESTS / ROUNDS);
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < per; i++) {
        const t0 = process.hrtime.bigint();
        await onNewConnection(socketPath, ['ping']);
        await onNewConnection(socketPath, ['status', 'nobody']);
        before.push(ms(t0));
      }
      for (let i = 0; i < per; i++) {
        const t0 = process.hrtime.bigint();
        await client.request(['status', 'nobody'], 'status');
        after.push(ms(t0));
      }
      const t0 = process.hrtime.bigint();
      let next = 0;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next++ < per) {
            const t1 = process.hrtime.bigint();
            await client.request(['status', 'nobody'], 'status');
            concurrent.push(ms(t1));
          }
        }),
      );
      concurrentMs += ms(t0);
    }
  } finally {
    await client.shutdown();
    client.close();
    fs.rmSync(stateRoot, { recursive: true, force: true });
  }
  const row = (what: string, samples: number[], rate: number) => {
    const s = summarize(samples);
    return { what, requests: s.n, 'p50 µs': fmt(s.p50 * 1000), 'p99 µs': fmt(s.p99 * 1000), 'requests/s': Math.round(rate) };
  };
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  console.log(`spawner round trip (status), ${ROUNDS} interleaved turns`);
  console.table([
    row('new connection + ping per request (before)', before, (before.length * 1000) / sum(before)),
    row('persistent connection, one at a time', after, (after.length * 1000) / sum(after)),
    row(`persistent connection, ${IN_FLIGHT} in flight`, concurrent, (concurrent.length * 1000) / concurrentMs),
  ]);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
