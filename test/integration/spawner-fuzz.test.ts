/**
 * The spawner against hostile input (root): a real spawner on a private state root gets
 * well over 100,000 random and mutated frames (broken field lengths, huge and negative
 * counts, ops of the wrong arity, bad numbers, unknown verbs, known verbs with garbage,
 * frames cut short, lengths past the frame limit, stray fds with SCM_RIGHTS, request ids
 * well formed and not, fd counts that lie). Afterwards it
 * must be alive, hold exactly the fds it held before, and still run a real container.
 *
 * No generated create frame can describe a runnable plan: argv only ever comes with a count
 * the spawner must refuse, so nothing here reaches clone().
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { loadNative, spawnerPath } from '../../src/kernel/native.js';
import { STEPS } from '../../src/errors.js';
import { encodeFrame, FrameDecoder } from '../../src/spawner/wire.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

if (!IS_ROOT) console.warn(`spawner fuzz tests skipped: ${SKIP_REASON}`);

const IMAGE = 'stratoswarm/base-agent:latest';

/** xorshift32: the same frames on every run, so a failure can be replayed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return {
    int: (n: number) => next() % n,
    pick: <T>(a: readonly T[]): T => a[next() % a.length]!,
    chance: (p: number) => next() / 0x100000000 < p,
    bytes: (n: number) => {
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = next() & 0xff;
      return b;
    },
  };
}
type Rng = ReturnType<typeof rng>;

const BAD_NUMBERS = ['-1', '', ' 1', '1 ', '+1', '1x', '0x10', '18446744073709551616', '99999999999999999999999', '4294967295', '4294967296', '65', '-0', '007', '9'.repeat(40)];
const GOOD_NUMBERS = ['0', '1', '2', '3', '4', '9', '15', '64', '1000'];
/** argv counts the spawner must refuse whatever follows: above its bound, or not a number. */
const ARGV_COUNTS = ['65537', '100000', '4294967296', '18446744073709551616', '-1', '1x', '', ' 2', '+1', '0x1'];
const KEYS = ['state-dir', 'stdin', 'stdout', 'stderr', 'uid-map', 'gid-map', 'cgroup-procs', 'path', 'namespaces', 'join-namespaces', 'userns-net', 'env', 'seccomp', 'op'];
const KINDS = ['go', 'new', 'dup', 'join', 'net', 'user', 'idmap', 'rootfs', 'proc', 'bounding', 'sets', 'set', 'close', 'exec', 'park', ''];
const IDS = ['fz', 'fz-1', '', '.', '..', 'a/b', '../../etc', 'x'.repeat(129), 'nul\0id', 'ünï'];
const VERBS = ['ping', 'create', 'start', 'kill', 'exec-kill', 'forget', 'exec', 'status', 'adopt', 'subscribe', 'shutdown'];

function garbageField(r: Rng): string | Buffer {
  switch (r.int(6)) {
    case 0:
      return r.bytes(r.int(40));
    case 1:
      return r.pick(BAD_NUMBERS);
    case 2:
      return r.pick(GOOD_NUMBERS);
    case 3:
      return r.pick(KEYS);
    case 4:
      return r.pick(STEPS);
    default:
      return r.pick(KINDS);
  }
}

function garbage(r: Rng, max: number): (string | Buffer)[] {
  return Array.from({ length: r.int(max + 1) }, () => garbageField(r));
}

/** An op with a plausible or a broken shape: counts that lie, arities that do not fit. */
function fuzzOp(r: Rng): (string | Buffer)[] {
  const out: (string | Buffer)[] = ['op', r.chance(0.9) ? r.pick(STEPS) : r.pick(['nope', '', 'execve\0', 'count_'])];
  if (r.chance(0.1)) return out; // truncated after the step
  out.push(r.pick(KINDS));
  const ns = r.int(6);
  const nn = r.int(6);
  const lieS = r.chance(0.3);
  out.push(lieS ? r.pick([...BAD_NUMBERS, String(ns + 1 + r.int(1000))]) : String(ns));
  for (let i = 0; i < ns; i++) out.push(r.chance(0.8) ? `/s${i}` : garbageField(r));
  const lieN = r.chance(0.3);
  out.push(lieN ? r.pick([...BAD_NUMBERS, String(nn + 1 + r.int(70000))]) : String(nn));
  for (let i = 0; i < nn; i++) out.push(r.chance(0.7) ? r.pick(GOOD_NUMBERS) : r.pick(BAD_NUMBERS));
  return out;
}

function fuzzPlan(r: Rng): (string | Buffer)[] {
  const out: (string | Buffer)[] = [];
  const segments = r.int(12);
  for (let i = 0; i < segments; i++) {
    switch (r.int(7)) {
      case 0:
      case 1:
        out.push(...fuzzOp(r));
        break;
      case 2:
        out.push('argv', r.pick(ARGV_COUNTS), ...garbage(r, 4).filter((f) => f !== 'argv'));
        break;
      case 3:
        out.push('env', r.chance(0.5) ? r.pick(BAD_NUMBERS) : String(r.int(5)), ...garbage(r, 4));
        break;
      case 4:
        out.push(r.pick(KEYS), garbageField(r));
        break;
      case 5:
        out.push('seccomp', r.bytes(r.pick([0, 1, 7, 8, 16, 13])));
        break;
      default:
        out.push(...garbage(r, 3));
    }
  }
  return out;
}

function fuzzFields(r: Rng): (string | Buffer)[] {
  const kind = r.int(10);
  if (kind === 0) return garbage(r, 8); // no verb or a random one
  if (kind === 1) return [r.pick(['pong', 'CREATE', 'create ', 'exec-kil', '', 'ok', 'error', 'exit']), ...garbage(r, 4)];
  const verb = r.pick(VERBS);
  if (verb === 'shutdown') return ['shutdown', ...garbage(r, 3), 'x', 'y']; // never a real shutdown
  if (verb === 'create' || verb === 'exec') return [verb, r.pick(IDS), ...fuzzPlan(r)];
  // Real pids, but start times no process has: nothing is ever adopted.
  if (verb === 'adopt') return ['adopt', r.pick(IDS), r.pick([...BAD_NUMBERS, '1', String(process.pid)]), r.pick(['', 'x', '-1']), ...garbage(r, 5)];
  if (verb === 'kill' || verb === 'exec-kill') return [verb, r.pick(IDS), ...Array.from({ length: r.int(4) }, () => r.pick([...BAD_NUMBERS, ...GOOD_NUMBERS]))];
  return [verb, ...(r.chance(0.5) ? [r.pick(IDS)] : []), ...garbage(r, 3)];
}

/** Request ids: well formed (with or without an fd count), and ones the spawner must refuse. */
const BAD_TAGS = ['#', '#x', '#-1', '#1/', '#1/17', '#1/-1', '#1/1/1', `#${'9'.repeat(17)}`, '# 1', '#1 ', '#0x1', '#1/+1', '#1\0', '#１'];
function tagField(r: Rng): string {
  if (r.chance(0.2)) return r.pick(BAD_TAGS);
  const id = String(1 + r.int(1_000_000_000));
  return r.chance(0.3) ? `#${id}/${r.int(4)}` : `#${id}`;
}

/**
 * One frame whose outer length is sound, so the spawner must answer it with exactly one
 * reply and stay in step; its body may still be broken inside.
 */
function fuzzFrame(r: Rng): Buffer {
  const fields = fuzzFields(r);
  // Plain and tagged requests on the same connections: the id goes first, the verb after it.
  const frame = encodeFrame(r.chance(0.4) ? [tagField(r), ...fields] : fields);
  const body = frame.subarray(4);
  // Bit flips could turn a refused argv count into a valid one: plans are only ever cut.
  // A shutdown cut down to its verb would be a real one: it is never cut or flipped.
  const planned = fields[0] === 'create' || fields[0] === 'exec' || fields[0] === 'adopt';
  const mutation = fields[0] === 'shutdown' ? r.pick([0, 2, 7]) : r.int(planned ? 3 : 8);
  switch (mutation) {
    case 0: {
      // A field length that runs past the end of the frame.
      if (body.length >= 4) body.writeUInt32LE(r.pick([body.length, 0xffffffff, 0x7fffffff, body.length + 1]), 0);
      return frame;
    }
    case 1: {
      // The body cut inside a field (the frame length follows the cut).
      const cut = r.int(body.length + 1);
      const f = Buffer.alloc(4 + cut);
      f.writeUInt32LE(cut, 0);
      body.copy(f, 4, 0, cut);
      return f;
    }
    case 2:
      return Buffer.from([0, 0, 0, 0]); // an empty frame: no verb
    case 3: {
      // A flipped byte anywhere in the body.
      if (body.length > 0) body[r.int(body.length)] ^= 1 << r.int(8);
      return frame;
    }
    default:
      return frame;
  }
}

/** Error replies seen, by code, step and the start of the message. */
const seen = new Set<string>();

/** A connection that sends `frames` and reads until each got its reply (or the spawner closed it). */
function exchange(socketPath: string, frames: Buffer[], tail?: Buffer): Promise<{ replies: number; closedByPeer: boolean }> {
  return new Promise((resolve, reject) => {
    const s = new Socket();
    const d = new FrameDecoder();
    let replies = 0;
    let done = false;
    const finish = (closedByPeer: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ replies, closedByPeer });
    };
    s.on('data', (chunk: Buffer) => {
      for (const tagged of d.push(chunk)) {
        replies++;
        const f = tagged[0]?.startsWith('#') ? tagged.slice(1) : tagged;
        if (f[0] === 'error') seen.add(`${f[1]} ${f[2]} ${(f[7] ?? '').replace(/"[^"]*"/g, '"…"').slice(0, 64)}`);
      }
      if (!tail && replies >= frames.length) finish(false);
    });
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? finish(true) : reject(e)));
    s.on('close', () => finish(true));
    s.connect(socketPath, () => {
      s.write(Buffer.concat(frames));
      // A frame cut short or a length past the limit ends this connection's stream.
      if (tail) s.end(tail);
    });
  });
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function settleFds(pid: number, want: number): Promise<number> {
  let n = fdCount(pid);
  for (let i = 0; i < 50 && n !== want; i++) {
    await new Promise((r) => setTimeout(r, 100));
    n = fdCount(pid);
  }
  return n;
}

describe.skipIf(!IS_ROOT)(`spawner fuzz (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  let t: TestRuntime;
  let socketPath: string;
  let pid = 0;

  beforeAll(async () => {
    t = testRuntime();
    socketPath = join(t.stateRoot, 'spawner.sock');
    // Started here, as the runtime would start it; the runtime then finds it running.
    execFileSync(spawnerPath(), ['--root', t.stateRoot, '--idle-ms', '60000']);
    const s = new Socket();
    const d = new FrameDecoder();
    const pong = await new Promise<string[]>((resolve, reject) => {
      s.on('data', (c: Buffer) => {
        const f = d.push(c)[0];
        if (f) resolve(f);
      });
      s.on('error', reject);
      s.connect(socketPath, () => s.write(encodeFrame(['ping'])));
    });
    s.destroy();
    pid = Number(pong[1]);
  });

  afterAll(async () => {
    await t.cleanup();
  });

  it('survives 100,000+ hostile frames with no fd leak and still runs a container', async () => {
    const r = rng(0x5eed);
    const baseline = await settleFds(pid, -1);
    const started = Date.now();
    let sent = 0;
    let desync = 0;

    // Plain connections: many frames each, every one answered in order.
    const CONNECTIONS = 120;
    const PER = 850;
    for (let round = 0; round < CONNECTIONS / 8; round++) {
      const batch = Array.from({ length: 8 }, () => {
        const frames = Array.from({ length: PER }, () => fuzzFrame(r));
        sent += frames.length;
        return exchange(socketPath, frames).then((x) => {
          if (x.replies !== frames.length) desync++;
        });
      });
      await Promise.all(batch);
    }

    // Connections whose stream ends broken: cut mid-frame, or a length past the limit. The
    // frames before the break are still answered.
    let brokenAnswered = 0;
    for (let i = 0; i < 200; i++) {
      const frames = Array.from({ length: 5 }, () => fuzzFrame(r));
      const whole = fuzzFrame(r);
      const tail =
        i % 2 === 0
          ? whole.subarray(0, Math.max(1, r.int(whole.length)))
          : Buffer.from(Uint32Array.of(r.pick([(4 << 20) + 1, 0xffffffff, 0x80000000])).buffer);
      sent += frames.length + 1;
      const x = await exchange(socketPath, frames, tail);
      if (x.replies === frames.length) brokenAnswered++;
    }

    // Stray fds with SCM_RIGHTS through the addon, attached to frames that do not use them.
    const addon = loadNative();
    const strays = Array.from({ length: 16 }, () => openSync('/dev/null', 'r'));
    try {
      for (let i = 0; i < 300; i++) {
        const frames = Array.from({ length: 10 }, () => fuzzFrame(r));
        const count = 1 + (i % 16);
        if (i % 3 === 0) frames.unshift(encodeFrame(['exec', 'fz', 'argv', '65537'])); // a verb that takes fds
        // Tagged, naming the fds that come with it (or not their number).
        if (i % 3 === 1) frames.unshift(encodeFrame([`#${i}/${i % 2 ? count : count - 1}`, 'exec', 'fz', 'argv', '65537']));
        sent += frames.length;
        const fd = await addon.request(socketPath, Buffer.concat(frames), strays.slice(0, count));
        const x = await new Promise<number>((resolve) => {
          const s = new Socket({ fd, readable: true, writable: true });
          const d = new FrameDecoder();
          let n = 0;
          s.on('data', (c: Buffer) => {
            for (const tagged of d.push(c)) {
              n++;
              const f = tagged[0]?.startsWith('#') ? tagged.slice(1) : tagged;
              if (f[0] === 'error') seen.add(`${f[1]} ${f[2]} ${f[7]}`);
            }
            if (n >= frames.length) s.destroy();
          });
          s.on('error', () => {});
          s.on('close', () => resolve(n));
        });
        if (x !== frames.length) desync++;
      }
    } finally {
      for (const fd of strays) closeSync(fd);
    }
    // Tagged frames left whole: each reply carries its own request's id, in order (nothing
    // here is deferred).
    let misTagged = 0;
    for (let c = 0; c < 20; c++) {
      const tags = Array.from({ length: 500 }, (_, k) => `#${c * 1000 + k + 1}`);
      const frames = tags.map((tag) => encodeFrame([tag, ...fuzzFields(r)]));
      sent += frames.length;
      const got = await new Promise<string[][]>((resolve, reject) => {
        const s = new Socket();
        const d = new FrameDecoder();
        const all: string[][] = [];
        s.on('data', (chunk: Buffer) => {
          all.push(...d.push(chunk));
          if (all.length >= frames.length) {
            s.destroy();
            resolve(all);
          }
        });
        s.on('error', reject);
        s.connect(socketPath, () => s.write(Buffer.concat(frames)));
      });
      misTagged += got.filter((f, k) => f[0] !== tags[k]).length;
    }
    const seconds = (Date.now() - started) / 1000;

    expect(() => process.kill(pid, 0)).not.toThrow();
    const after = await settleFds(pid, baseline);
    console.log(`spawner fuzz: ${sent} frames in ${seconds.toFixed(1)} s; spawner fds before ${baseline}, after ${after}`);
    expect(sent).toBeGreaterThanOrEqual(100_000);
    expect(desync).toBe(0);
    expect(misTagged).toBe(0);
    expect(brokenAnswered).toBe(200);
    expect(after).toBe(baseline);
    // The refusals came from every layer: framing, request shape, and plan parsing.
    const all = [...seen].join('\n');
    for (const m of ['malformed request', 'unknown request', 'bad container id', 'takes', 'bad argv count', 'unknown step', 'ENOTFOUND', 'bad request id', 'fds, none came with it', 'fds, 15 came with it'])
      expect(all, `no error reply mentioning "${m}" among:\n${all}`).toContain(m);
    expect([...seen].every((x) => !x.startsWith('ESPAWN'))).toBe(true); // nothing was ever cloned

    // The same spawner still serves real requests.
    const c = await Container.create(ContainerConfig.builder().name(`fz-${process.pid}`).image(IMAGE).command(['/bin/sh', '-c', 'exit 7']).build(), {
      runtime: t.runtime,
    });
    await c.start();
    const exit = await c.wait();
    expect(exit.exitCode).toBe(7);
    const pong = await exchange(socketPath, [encodeFrame(['ping'])]);
    expect(pong.replies).toBe(1);
    const again = (
      await new Promise<string[]>((resolve) => {
        const s = new Socket();
        const d = new FrameDecoder();
        s.on('data', (ch: Buffer) => {
          const f = d.push(ch)[0];
          if (f) {
            s.destroy();
            resolve(f);
          }
        });
        s.connect(socketPath, () => s.write(encodeFrame(['ping'])));
      })
    )[1];
    expect(Number(again)).toBe(pid);
    await c.remove({ force: true });
  }, 120_000);
});
