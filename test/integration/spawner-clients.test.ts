/**
 * The spawner never waits on one client (root): a client that sends a request and never
 * reads, one that stops mid-frame, and one that floods requests without reading do not
 * delay another client's create and start; the flooding one is dropped once its queue of
 * unread replies passes the bound, the others keep their connection.
 */
import { execFileSync } from 'node:child_process';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { spawnerPath } from '../../src/kernel/native.js';
import { encodeFrame, FrameDecoder } from '../../src/spawner/wire.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

if (!IS_ROOT) console.warn(`spawner client tests skipped: ${SKIP_REASON}`);

const IMAGE = 'stratoswarm/base-agent:latest';

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    s.once('error', reject);
    s.connect(path, () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

describe.skipIf(!IS_ROOT)(`spawner clients (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  let t: TestRuntime;
  let socketPath: string;

  beforeAll(() => {
    t = testRuntime();
    socketPath = join(t.stateRoot, 'spawner.sock');
    execFileSync(spawnerPath(), ['--root', t.stateRoot, '--idle-ms', '60000']);
  });

  afterAll(async () => {
    await t.cleanup();
  });

  it('stalled clients do not delay another client, and one that never reads is dropped', async () => {
    // A: a request, then never a read.
    const silent = await connect(socketPath);
    silent.pause();
    silent.write(encodeFrame(['status', 'nobody']));
    // B: half a frame, then nothing.
    const half = await connect(socketPath);
    half.pause();
    const frame = encodeFrame(['status', 'nobody-either']);
    half.write(frame.subarray(0, 7));
    // C: pings without end and never a read: its replies pile up in the spawner.
    const flood = await connect(socketPath);
    flood.pause();
    let floodClosed = false;
    const floodDone = new Promise<void>((resolve) => {
      const end = () => {
        floodClosed = true;
        resolve();
      };
      flood.on('error', end);
      flood.on('close', end);
    });
    const pings = Buffer.concat(Array.from({ length: 20_000 }, () => encodeFrame(['ping'])));
    const pump = (async () => {
      const until = Date.now() + 15_000;
      while (!floodClosed && Date.now() < until) {
        if (!flood.write(pings)) await new Promise<void>((r) => (flood.once('drain', () => r()), setTimeout(r, 200)));
      }
    })();
    let silentClosed = false;
    let halfClosed = false;
    silent.on('close', () => (silentClosed = true));
    half.on('close', () => (halfClosed = true));
    await new Promise((r) => setTimeout(r, 300));

    // Meanwhile another client creates and starts a container.
    const began = Date.now();
    const c = await Container.create(ContainerConfig.builder().name(`cl-${process.pid}`).image(IMAGE).command(['/bin/sh', '-c', 'exit 3']).build(), {
      runtime: t.runtime,
    });
    await c.start();
    const took = Date.now() - began;
    expect(took).toBeLessThan(5000);
    expect(silentClosed).toBe(false);
    expect(halfClosed).toBe(false);
    expect((await c.wait()).exitCode).toBe(3);

    // The flooding client is dropped; the others still have their connection, and the
    // silent one's reply was waiting for it all along.
    await Promise.race([floodDone, new Promise((r) => setTimeout(r, 15_000))]);
    await pump;
    expect(floodClosed).toBe(true);
    const reply = await new Promise<string[]>((resolve) => {
      const d = new FrameDecoder();
      silent.on('data', (ch: Buffer) => {
        const f = d.push(ch)[0];
        if (f) resolve(f);
      });
      silent.resume();
    });
    expect(reply).toEqual(['ok', 'unknown']);
    // The half frame completes, and is answered as if it had never paused.
    const rest = new Promise<string[]>((resolve) => {
      const d = new FrameDecoder();
      half.on('data', (ch: Buffer) => {
        const f = d.push(ch)[0];
        if (f) resolve(f);
      });
      half.resume();
    });
    half.write(frame.subarray(7));
    expect(await rest).toEqual(['ok', 'unknown']);
    expect(halfClosed).toBe(false);
    silent.destroy();
    half.destroy();
    flood.destroy();
    await c.remove({ force: true });
  }, 60_000);

  it('a create that would run past its park point (exec without a start) is refused, and leaves no container', async () => {
    // No ready step: such an init would exec at once and close its sync socket without a
    // report; the spawner refuses the plan before cloning anything.
    const plan = ['create', 'early', 'namespaces', 'pid,mnt,uts,ipc,net', 'argv', '1', '/bin/true', 'path', '/bin'];
    const ops = ['op', 'sync', 'go', '0', '0', 'op', 'execve', 'exec', '0', '0'];
    const ask = async (fields: string[]) => {
      const s = await connect(socketPath);
      const d = new FrameDecoder();
      const f = await new Promise<string[]>((resolve) => {
        s.on('data', (ch: Buffer) => {
          const x = d.push(ch)[0];
          if (x) resolve(x);
        });
        s.write(encodeFrame(fields));
      });
      s.destroy();
      return f;
    };
    const reply = await ask([...plan, ...ops]);
    expect(reply[0]).toBe('error');
    expect(reply[7]).toMatch(/must end with its park point/);
    const withReady = [...plan, 'op', 'sync', 'go', '0', '0', 'op', 'execve', 'exec', '0', '0', 'op', 'ready', 'park', '0', '0'];
    expect((await ask(withReady))[7]).toMatch(/cannot exec/);
    expect(await ask(['status', 'early'])).toEqual(['ok', 'unknown']);
  }, 30_000);
});
