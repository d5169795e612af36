/**
 * The multiplexed spawner connection against a stand-in spawner (a node:net server on a
 * unix socket; no root): replies matched by id whatever their order, frames that keep
 * coming for one request, order kept when frames with fds meet a full socket, and every
 * pending request failing with ENOSPAWNER when the connection goes.
 */
import { mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RuntimeError } from '../../src/errors.js';
import { defaultKernel, type Kernel } from '../../src/kernel/kernel.js';
import { SpawnerConnection } from '../../src/spawner/connection.js';
import { encodeFrame, FrameDecoder } from '../../src/spawner/wire.js';

let dir: string;
let path: string;
let server: Server;
let peer: Promise<Socket>;
let frames: string[][];

function listen(onFrame: (s: Socket, f: string[]) => void = () => {}): Promise<void> {
  frames = [];
  let got: (s: Socket) => void = () => {};
  peer = new Promise((r) => (got = r));
  server = createServer((s) => {
    const d = new FrameDecoder();
    s.on('data', (c: Buffer) => {
      for (const f of d.push(c)) {
        frames.push(f);
        onFrame(s, f);
      }
    });
    s.on('error', () => {});
    got(s);
  });
  return new Promise((r) => server.listen(path, () => r()));
}

function ask(conn: SpawnerConnection, fields: string[], fds?: number[]): Promise<string[]> {
  return new Promise((resolve, reject) =>
    conn.send(fields, fds, {
      frame: (f) => {
        resolve(f);
        return 'done';
      },
      fail: reject,
    }),
  );
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ssconn-'));
  path = join(dir, 's.sock');
});
afterEach(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('spawner connection', () => {
  it('matches 100 replies sent back in reverse order to their requests by id', async () => {
    const held: { s: Socket; f: string[] }[] = [];
    await listen((s, f) => {
      held.push({ s, f });
      if (held.length === 100) for (const h of held.reverse()) h.s.write(encodeFrame([h.f[0]!, 'ok', h.f[2]!]));
    });
    const conn = await SpawnerConnection.open(defaultKernel(), path);
    const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => ask(conn, ['status', `c${i}`])));
    replies.forEach((r, i) => expect(r).toEqual(['ok', `c${i}`]));
    expect(frames.map((f) => f[0])).toEqual(Array.from({ length: 100 }, (_, i) => `#${i + 1}`));
    expect(conn.pending).toBe(0);
    conn.close();
  });

  it("delivers every frame of a request until it says it is done (an exec's reply, then its exit)", async () => {
    await listen((s, f) => {
      s.write(encodeFrame([f[0]!, 'ok', '42']));
      setTimeout(() => s.write(encodeFrame([f[0]!, 'exit', '3', '0'])), 20);
    });
    const conn = await SpawnerConnection.open(defaultKernel(), path);
    const seen: string[][] = [];
    await new Promise<void>((resolve, reject) =>
      conn.send(['exec', 'x'], undefined, {
        frame: (f) => {
          seen.push(f);
          if (f[0] === 'exit') resolve();
          return f[0] === 'exit' ? 'done' : 'more';
        },
        fail: reject,
      }),
    );
    expect(seen).toEqual([
      ['ok', '42'],
      ['exit', '3', '0'],
    ]);
    expect(conn.pending).toBe(0);
    conn.close();
  });

  it('keeps frame order when frames with fds meet a full socket (worker-thread send)', async () => {
    await listen();
    const k = defaultKernel();
    let viaWorker = 0;
    const kernel: Kernel = Object.assign(Object.create(Object.getPrototypeOf(k) as object) as Kernel, k, {
      sendWhenWritable: (fd: number, frame: Buffer, fds?: number[]) => {
        viaWorker++;
        return k.sendWhenWritable(fd, frame, fds);
      },
    });
    const conn = await SpawnerConnection.open(kernel, path);
    const s = await peer;
    s.pause(); // the "spawner" stops reading: the socket fills
    const file = openSync('/dev/null', 'r');
    const N = 600;
    try {
      const pad = 'x'.repeat(1000);
      const sent: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++) sent.push(ask(conn, ['op', String(i), pad], i % 3 === 2 ? undefined : [file]).catch((e: unknown) => e));
      await new Promise((r) => setTimeout(r, 100));
      expect(viaWorker).toBeGreaterThan(0);
      s.resume();
      while (frames.length < N) await new Promise((r) => setTimeout(r, 20));
      expect(frames.map((f) => `${f[0]} ${f[2]}`)).toEqual(Array.from({ length: N }, (_, i) => `#${i + 1}${i % 3 === 2 ? '' : '/1'} ${i}`));
      expect(frames.every((f) => f[3] === pad)).toBe(true);
      conn.close();
      for (const e of await Promise.all(sent)) expect((e as RuntimeError).code).toBe('ENOSPAWNER');
    } finally {
      closeSync(file);
    }
  }, 20_000);

  it('fails every pending request with ENOSPAWNER when the spawner goes, and refuses new ones', async () => {
    await listen();
    const conn = await SpawnerConnection.open(defaultKernel(), path);
    let closedWith: RuntimeError | undefined;
    conn.onClose = (e) => (closedWith = e);
    const pending = Array.from({ length: 10 }, () => ask(conn, ['create', 'x']).catch((e: unknown) => e));
    while (frames.length < 10) await new Promise((r) => setTimeout(r, 10));
    (await peer).destroy();
    for (const e of await Promise.all(pending)) {
      expect(e).toBeInstanceOf(RuntimeError);
      expect((e as RuntimeError).code).toBe('ENOSPAWNER');
    }
    expect(conn.closed).toBe(true);
    expect(closedWith?.code).toBe('ENOSPAWNER');
    await expect(ask(conn, ['ping'])).rejects.toMatchObject({ code: 'ENOSPAWNER' });
  });

  it('a reply for no request in flight breaks the connection (EPROTO): the two sides disagree', async () => {
    await listen((s, f) => s.write(encodeFrame(['#999', 'ok', f[1]!])));
    const conn = await SpawnerConnection.open(defaultKernel(), path);
    await expect(ask(conn, ['ping'])).rejects.toMatchObject({ code: 'EPROTO' });
    expect(conn.closed).toBe(true);
  });
});
