/**
 * One persistent connection per runtime, multiplexed by request ids (root, real kernel):
 * many requests in flight on it each get their own reply; a create that waits for its init
 * does not hold up a status or a kill sent after it; fds go to the request they were sent
 * with, and a frame whose fds do not match its count is refused with them closed; a killed
 * spawner fails what was in flight, and the next request reconnects with exits still coming.
 */
import { openSync, closeSync, readdirSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, RuntimeError } from '../../src/index.js';
import { defaultKernel } from '../../src/kernel/kernel.js';
import { loadNative } from '../../src/kernel/native.js';
import { runtimeParts } from '../../src/runtime.js';
import { SpawnerClient } from '../../src/spawner/client.js';
import { encodeFrame, FrameDecoder } from '../../src/spawner/wire.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

if (!IS_ROOT) console.warn(`spawner multiplexing tests skipped: ${SKIP_REASON}`);

const IMAGE = 'stratoswarm/base-agent:latest';
let n = 0;

function config(script: string) {
  return ContainerConfig.builder().name(`mx${++n}-${process.pid}`).image(IMAGE).command(['/bin/sh', '-c', script]).build();
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

async function settle(pid: number, want: number): Promise<number> {
  let got = fdCount(pid);
  for (let i = 0; i < 50 && got !== want; i++) {
    await new Promise((r) => setTimeout(r, 50));
    got = fdCount(pid);
  }
  return got;
}

/** A raw connection through the addon, so frames can carry fds; replies are collected in order. */
async function rawConnection(path: string) {
  const addon = loadNative();
  const fd = await addon.connect(path);
  const s = new Socket({ fd, readable: true, writable: true });
  const d = new FrameDecoder();
  const frames: string[][] = [];
  const waiters: (() => void)[] = [];
  s.on('data', (c: Buffer) => {
    frames.push(...d.push(c));
    for (const w of waiters.splice(0)) w();
  });
  return {
    send(fields: string[], fds?: number[]) {
      const frame = encodeFrame(fields);
      expect(addon.send(fd, frame, fds)).toBe(frame.length);
    },
    async replies(count: number): Promise<string[][]> {
      while (frames.length < count) await new Promise<void>((r) => waiters.push(r));
      return frames.splice(0, count);
    },
    close: () => s.destroy(),
  };
}

describe.skipIf(!IS_ROOT)(`spawner multiplexing (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  let t: TestRuntime;

  beforeAll(() => {
    t = testRuntime();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('200 requests in flight on one connection each get their own reply, and open no other connection', async () => {
    const client = new SpawnerClient({ stateRoot: t.stateRoot, kernel: defaultKernel(), idleMs: 30_000 });
    try {
      const pid = Number((await client.request(['ping'], 'ping'))[1]);
      const before = fdCount(pid);
      // Each error reply names its own request's container id: a reply given to another
      // request would show.
      const asks = Array.from({ length: 200 }, (_, i) =>
        i % 4 === 3
          ? client.request(['status', `nobody-${i}`], 'status').then((r) => ({ i, text: r.join(' ') }))
          : client.request(['kill', `nobody-${i}`, '9'], `kill ${i}`).then(
              () => ({ i, text: 'ok' }),
              (e: RuntimeError) => ({ i, text: e.message }),
            ),
      );
      const during = fdCount(pid);
      const got = await Promise.all(asks);
      for (const { i, text } of got) {
        if (i % 4 === 3) expect(text).toBe('ok unknown');
        else expect(text).toContain(`(no container nobody-${i})`);
      }
      expect(during).toBe(before);
      expect(fdCount(pid)).toBe(before);
    } finally {
      client.close();
    }
  });

  it('a create waiting for its init does not delay a status or a kill sent after it on the same runtime', async () => {
    const rt = t.runtime;
    const other = await Container.create(config('sleep 1000'), { runtime: rt });
    await other.start();
    const sp = runtimeParts(rt).spawner;
    const original = sp.request.bind(sp);
    const order: string[] = [];
    let quick: Promise<unknown> | undefined;
    sp.request = (fields, context, fds) => {
      const p = original(fields, context, fds);
      if (fields[0] !== 'create' || quick) return p;
      // Sent right behind the create, on the same connection.
      quick = Promise.all([
        ...Array.from({ length: 5 }, () => original(['status', other.id], 'status').then(() => order.push('status'))),
        original(['kill', other.id, '0'], 'kill 0').then(() => order.push('kill')),
      ]);
      return p.then((r) => {
        order.push('create');
        return r;
      });
    };
    try {
      const c = await Container.create(config('exit 0'), { runtime: rt });
      await quick;
      expect(order.indexOf('create')).toBe(order.length - 1);
      expect(order.filter((x) => x === 'status')).toHaveLength(5);
      await c.remove({ force: true });
    } finally {
      sp.request = original;
      await other.remove({ force: true });
    }
  });

  it('fds go to the request they came with; a frame whose fds do not match its count is refused and they are closed', async () => {
    const c = await Container.create(config('sleep 1000'), { runtime: t.runtime });
    await c.start();
    try {
      // 12 execs at once on one connection, each with its own three pipes.
      const outs = await Promise.all(Array.from({ length: 12 }, (_, i) => c.exec(['/bin/sh', '-c', `echo exec-${i}; echo err-${i} >&2`])));
      outs.forEach((r, i) => expect([r.stdout, r.stderr, r.exitCode]).toEqual([`exec-${i}\n`, `err-${i}\n`, 0]));

      const raw = await rawConnection(join(t.stateRoot, 'spawner.sock'));
      raw.send(['#1', 'ping']);
      const pid = Number((await raw.replies(1))[0]![2]);
      const baseline = fdCount(pid);
      const files = Array.from({ length: 3 }, () => openSync('/dev/null', 'r'));
      try {
        raw.send(['#7/2', 'status', 'x'], files.slice(0, 1)); // says 2, brings 1
        raw.send(['#8', 'status', 'y'], files.slice(0, 3)); // says none, brings 3
        raw.send(['#9/1', 'status', 'z']); // says 1, brings none
        raw.send(['#10/17', 'ping']); // more than any request may take
        raw.send(['#x1', 'ping']);
        raw.send(['#11', 'ping']);
        const r = await raw.replies(6);
        expect(r[0]!.slice(0, 2)).toEqual(['#7', 'error']);
        expect(r[0]![8]).toBe('malformed request: request takes 2 fds, 1 came with it');
        expect(r[1]).toEqual(['#8', 'ok', 'unknown']);
        expect(r[2]![8]).toBe('malformed request: request takes 1 fds, none came with it');
        expect(r[3]![0]).toBe('error'); // a bad id: its reply cannot carry it
        expect(r[3]![7]).toContain('bad request id "#10/17"');
        expect(r[4]![7]).toContain('bad request id "#x1"');
        expect(r[5]).toEqual(['#11', 'ok', String(pid)]);
        expect(await settle(pid, baseline)).toBe(baseline);
      } finally {
        files.forEach((f) => closeSync(f));
        raw.close();
      }
    } finally {
      await c.remove({ force: true });
    }
  });

  it('a killed spawner fails what was in flight; the next request reconnects and exits still arrive', async () => {
    const rt = t.runtime;
    const sp = runtimeParts(rt).spawner;
    const c = await Container.create(config('sleep 1000'), { runtime: rt });
    await c.start();
    const exec = await c.execStream(['sleep', '100']);
    const old = Number((await sp.request(['ping'], 'ping'))[1]);
    process.kill(old, 'SIGKILL');
    const lost = await exec.exit.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(lost).toBeInstanceOf(RuntimeError);
    expect((lost as RuntimeError).code).toBe('ENOSPAWNER');
    // The next request starts a new spawner on a new connection.
    const now = Number((await sp.request(['ping'], 'ping'))[1]);
    expect(now).not.toBe(old);
    // The subscription was renewed with it: a new container's exit arrives.
    const next = await Container.create(config('exit 5'), { runtime: rt });
    await next.start();
    expect((await next.wait()).exitCode).toBe(5);
    await next.remove();
    await (await Container.load(c.id, { runtime: rt })).remove({ force: true });
  });
});
