/**
 * The runtime's side of the spawner: starts it on demand (one per state root), sends
 * requests, and turns its error replies into RuntimeErrors. Requests go through the addon
 * (which can attach fds); replies and exit events arrive on ordinary sockets the event loop
 * watches, so nothing here blocks the loop.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { RuntimeError, STEPS, type ErrorCode, type Step } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import { spawnerPath } from '../kernel/native.js';
import { encodeFrame, FrameDecoder, type WireField } from './wire.js';

export interface SpawnerExit {
  id: string;
  pid: number;
  exitCode: number | null;
  signal: number | null;
  finishedAt: number;
}

/**
 * What the runtime needs of a spawner. SpawnerClient is the real one; tests of lifecycle
 * logic use an in-memory fake (test/helpers/fake-spawner.ts) and need no root.
 */
export interface Spawner {
  ensure(): Promise<void>;
  request(fields: readonly WireField[], context: string, fds?: number[]): Promise<string[]>;
  exec(fields: readonly WireField[], fds: number[], context: string): Promise<{ pid: number; exit: Promise<{ exitCode: number | null; signal: number | null }> }>;
  onExit(listener: (e: SpawnerExit) => void): Promise<() => void>;
  hold(delta: 1 | -1): void;
  shutdown(force?: boolean): Promise<void>;
  close(): void;
}

export interface SpawnerOptions {
  stateRoot: string;
  kernel: Kernel;
  /** The spawner exits after this long with no container and no client (0: never). */
  idleMs?: number;
  binary?: string;
}

/** Turns an ["error", code, step, errno, errnoName, syscall, path, message] reply into an error. */
export function replyError(fields: string[], context: string): RuntimeError {
  const [, code, step, errnoNum, errnoName, syscall, path, message] = fields;
  const st = (STEPS as readonly string[]).includes(step ?? '') ? (step as Step) : 'spawner';
  const parts = [context];
  const detail: string[] = [];
  if (st !== 'spawner' && st !== 'none') detail.push(`step ${st}`);
  if (syscall) detail.push(syscall);
  if (path) detail.push(`\`${path}\``);
  let text = `${parts.join('')}: ${detail.join(' ')}`;
  if (errnoName) text += `${detail.length ? ': ' : ''}${errnoName}`;
  if (message) text += ` (${message})`;
  return new RuntimeError(text, {
    code: (code as ErrorCode) || 'EPROTO',
    step: st,
    errno: errnoName || undefined,
    errnoNumber: errnoNum ? Number(errnoNum) : undefined,
    syscall: syscall || undefined,
    path: path || undefined,
  });
}

function socketError(e: unknown, socketPath: string): RuntimeError {
  if (e instanceof RuntimeError) return e;
  const err = e as NodeJS.ErrnoException;
  return new RuntimeError(`spawner at \`${socketPath}\`: ${err.code ?? err.message}`, {
    code: 'ENOSPAWNER',
    step: 'spawner',
    errno: err.code,
    path: socketPath,
    cause: e,
  });
}

/** A request's connection: the first frame is the reply, an exec's second is its exit. */
class Exchange {
  private decoder = new FrameDecoder();
  private frames: string[][] = [];
  private waiters: { resolve: (f: string[]) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;
  readonly socket: Socket;

  constructor(fd: number, socketPath: string) {
    this.socket = new Socket({ fd, readable: true, writable: true });
    this.socket.on('data', (chunk: Buffer) => {
      try {
        for (const f of this.decoder.push(chunk)) this.deliver(f);
      } catch (e) {
        this.fail(socketError(e, socketPath));
      }
    });
    this.socket.on('error', (e) => this.fail(socketError(e, socketPath)));
    this.socket.on('close', () =>
      this.fail(new RuntimeError(`spawner at \`${socketPath}\` closed the connection`, { code: 'ENOSPAWNER', step: 'spawner', path: socketPath })),
    );
  }

  private deliver(f: string[]): void {
    const w = this.waiters.shift();
    if (w) w.resolve(f);
    else this.frames.push(f);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }

  next(): Promise<string[]> {
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  close(): void {
    this.socket.destroy();
  }
}

export class SpawnerClient implements Spawner {
  readonly socketPath: string;
  private readonly opts: SpawnerOptions;
  private starting: Promise<void> | undefined;
  private subscription: Socket | undefined;
  private listeners = new Set<(e: SpawnerExit) => void>();

  constructor(opts: SpawnerOptions) {
    this.opts = opts;
    this.socketPath = join(opts.stateRoot, 'spawner.sock');
  }

  /**
   * Starts the spawner for this state root unless one is running, and renews the exit
   * subscription if the spawner it was on is gone (crashed, killed, shut down): otherwise
   * the exits of containers made from now on would never arrive.
   */
  async ensure(): Promise<void> {
    this.starting ??= this.launch()
      .then(async () => {
        if (this.listeners.size > 0 && !this.subscription) await this.subscribe();
      })
      .finally(() => {
        this.starting = undefined;
      });
    return this.starting;
  }

  private async launch(): Promise<void> {
    try {
      const pong = await this.rawRequest(['ping']);
      if (pong[0] === 'ok') return;
    } catch (e) {
      if (!(e instanceof RuntimeError) || e.code !== 'ENOSPAWNER') throw e;
    }
    mkdirSync(this.opts.stateRoot, { recursive: true, mode: 0o700 });
    const bin = this.opts.binary ?? spawnerPath();
    const args = ['--root', this.opts.stateRoot, '--idle-ms', String(this.opts.idleMs ?? 60_000)];
    await new Promise<void>((resolve, reject) => {
      // The spawner daemonizes: this child exits as soon as the daemon listens (0) or finds
      // another one running (3).
      execFile(bin, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
        const code = err && typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 0;
        if (!err || code === 3) resolve();
        else
          reject(
            new RuntimeError(`start spawner \`${bin}\`: ${stderr.trim() || err.message}`, {
              code: 'ENOSPAWNER',
              step: 'spawner',
              path: bin,
              cause: err,
            }),
          );
      });
    });
  }

  private async rawRequest(fields: readonly WireField[], fds?: number[]): Promise<string[]> {
    const fd = await this.opts.kernel.request(this.socketPath, encodeFrame(fields), fds);
    const ex = new Exchange(fd, this.socketPath);
    try {
      return await ex.next();
    } finally {
      ex.close();
    }
  }

  /** Sends one request; an error reply becomes a RuntimeError with `context` in front. */
  async request(fields: readonly WireField[], context: string, fds?: number[]): Promise<string[]> {
    await this.ensure();
    const reply = await this.rawRequest(fields, fds);
    if (reply[0] === 'error') throw replyError(reply, context);
    if (reply[0] !== 'ok') throw new RuntimeError(`${context}: unexpected reply "${reply[0]}"`, { code: 'EPROTO', step: 'spawner' });
    return reply;
  }

  /**
   * Starts an exec: resolves with the workload's pid and a promise of its exit. The
   * connection stays open until the exit arrives.
   */
  async exec(
    fields: readonly WireField[],
    fds: number[],
    context: string,
  ): Promise<{ pid: number; exit: Promise<{ exitCode: number | null; signal: number | null }> }> {
    await this.ensure();
    const fd = await this.opts.kernel.request(this.socketPath, encodeFrame(fields), fds);
    const ex = new Exchange(fd, this.socketPath);
    let reply: string[];
    try {
      reply = await ex.next();
    } catch (e) {
      ex.close();
      throw e;
    }
    if (reply[0] !== 'ok') {
      ex.close();
      throw reply[0] === 'error' ? replyError(reply, context) : new RuntimeError(`${context}: unexpected reply`, { code: 'EPROTO', step: 'spawner' });
    }
    const exit = ex.next().then(
      (f) => {
        ex.close();
        const code = Number(f[1]);
        const sig = Number(f[2]);
        return { exitCode: code >= 0 ? code : null, signal: sig > 0 ? sig : null };
      },
      (e: unknown) => {
        ex.close();
        throw e;
      },
    );
    return { pid: Number(reply[1]), exit };
  }

  /** Exit events of every container of this spawner, pushed as they happen. */
  async onExit(listener: (e: SpawnerExit) => void): Promise<() => void> {
    this.listeners.add(listener);
    if (!this.subscription) await this.subscribe();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.unsubscribe();
    };
  }

  private subscribing: Promise<void> | undefined;

  /** One subscription at a time, however many callers ask for it at once. */
  private subscribe(): Promise<void> {
    this.subscribing ??= this.openSubscription().finally(() => {
      this.subscribing = undefined;
    });
    return this.subscribing;
  }

  private async openSubscription(): Promise<void> {
    if (!this.starting) await this.launch();
    const socket = new Socket();
    this.subscription = socket;
    const decoder = new FrameDecoder();
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(this.socketPath, () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((e: unknown) => {
      this.subscription = undefined;
      throw socketError(e, this.socketPath);
    });
    let acknowledged: () => void = () => {};
    const ack = new Promise<void>((r) => (acknowledged = r));
    socket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk)) {
        if (f[0] === 'ok') acknowledged();
        if (f[0] !== 'exit') continue;
        const e: SpawnerExit = {
          id: f[1] ?? '',
          pid: Number(f[2]),
          exitCode: Number(f[3]) >= 0 ? Number(f[3]) : null,
          signal: Number(f[4]) > 0 ? Number(f[4]) : null,
          finishedAt: Number(f[5]),
        };
        for (const l of this.listeners) l(e);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.subscription === socket) this.subscription = undefined;
    });
    socket.write(encodeFrame(['subscribe']));
    await ack;
    // The subscription alone does not keep a host agent alive; a pending wait() does.
    if (this.holds === 0) socket.unref();
  }

  private holds = 0;

  /** Keeps the event loop alive while something waits for an exit. */
  hold(delta: 1 | -1): void {
    this.holds += delta;
    if (this.holds > 0) this.subscription?.ref();
    else this.subscription?.unref();
  }

  private unsubscribe(): void {
    this.subscription?.destroy();
    this.subscription = undefined;
  }

  /** Asks the spawner to exit once no container runs; `force` kills what is left. */
  async shutdown(force = false): Promise<void> {
    this.unsubscribe();
    try {
      await this.rawRequest(force ? ['shutdown', 'force'] : ['shutdown']);
    } catch (e) {
      if (!(e instanceof RuntimeError) || e.code !== 'ENOSPAWNER') throw e;
    }
  }

  close(): void {
    this.listeners.clear();
    this.unsubscribe();
  }
}
