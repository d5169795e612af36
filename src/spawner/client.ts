/**
 * The runtime's side of the spawner: starts it on demand (one per state root), sends
 * requests on one persistent connection (connection.ts), and turns its error replies into
 * RuntimeErrors. Replies and exit events arrive on a socket the event loop watches; frames
 * with fds go out in a non-blocking sendmsg, so nothing here blocks the loop.
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { RuntimeError, STEPS, type ErrorCode, type Step } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import { spawnerPath } from '../kernel/native.js';
import { SpawnerConnection, socketError } from './connection.js';
import type { WireField } from './wire.js';

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

/** Sends one request and resolves with its one reply frame. */
function roundTrip(conn: SpawnerConnection, fields: readonly WireField[], fds?: number[]): Promise<string[]> {
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

function checked(reply: string[], context: string): string[] {
  if (reply[0] === 'error') throw replyError(reply, context);
  if (reply[0] !== 'ok') throw new RuntimeError(`${context}: unexpected reply "${reply[0]}"`, { code: 'EPROTO', step: 'spawner' });
  return reply;
}

function exitEvent(f: string[]): SpawnerExit {
  return {
    id: f[1] ?? '',
    pid: Number(f[2]),
    exitCode: Number(f[3]) >= 0 ? Number(f[3]) : null,
    signal: Number(f[4]) > 0 ? Number(f[4]) : null,
    finishedAt: Number(f[5]),
  };
}

/**
 * The runtime's one connection to its spawner: opened on first use (starting the spawner
 * when none listens), shared by every request, and opened again by the next request after
 * it is lost (the spawner was killed, replaced or shut down), when the exit subscription is
 * renewed on it too. Requests in flight when it is lost fail with ENOSPAWNER.
 */
export class SpawnerClient implements Spawner {
  readonly socketPath: string;
  private readonly opts: SpawnerOptions;
  private conn: SpawnerConnection | undefined;
  private opening: Promise<SpawnerConnection> | undefined;
  private subscription: { conn: SpawnerConnection; done: Promise<void> } | undefined;
  private listeners = new Set<(e: SpawnerExit) => void>();
  private holds = 0;

  constructor(opts: SpawnerOptions) {
    this.opts = opts;
    this.socketPath = join(opts.stateRoot, 'spawner.sock');
  }

  /** Connects (starting the spawner if none is running) unless connected already. */
  async ensure(): Promise<void> {
    await this.connection();
  }

  private connection(): Promise<SpawnerConnection> {
    if (this.conn?.usable()) return Promise.resolve(this.conn);
    this.opening ??= this.open().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  /**
   * The one ping of a connection is here: it proves a spawner answers on it. A spawner that
   * accepted and then exited (its idle exit, or a kill) fails it: one is started then.
   */
  private async open(): Promise<SpawnerConnection> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt > 0) await this.launch();
      let conn: SpawnerConnection;
      try {
        conn = await SpawnerConnection.open(this.opts.kernel, this.socketPath);
      } catch (e) {
        if (!(e instanceof RuntimeError) || e.code !== 'ENOSPAWNER') throw e;
        lastError = e;
        continue;
      }
      try {
        checked(await roundTrip(conn, ['ping']), `spawner at \`${this.socketPath}\``);
      } catch (e) {
        conn.close();
        if (!(e instanceof RuntimeError) || e.code !== 'ENOSPAWNER') throw e;
        lastError = e;
        continue;
      }
      this.conn = conn;
      conn.onClose = () => {
        if (this.conn === conn) this.conn = undefined;
      };
      conn.hold(this.holds > 0);
      if (this.listeners.size > 0) await this.subscribe(conn);
      return conn;
    }
    throw socketError(lastError, this.socketPath);
  }

  private async launch(): Promise<void> {
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

  /** Sends one request; an error reply becomes a RuntimeError with `context` in front. */
  async request(fields: readonly WireField[], context: string, fds?: number[]): Promise<string[]> {
    const conn = await this.connection();
    return checked(await roundTrip(conn, fields, fds), context);
  }

  /**
   * Starts an exec: resolves with the workload's pid and a promise of its exit, which comes
   * as a second frame with the exec's id. While it runs it keeps the event loop alive.
   */
  async exec(
    fields: readonly WireField[],
    fds: number[],
    context: string,
  ): Promise<{ pid: number; exit: Promise<{ exitCode: number | null; signal: number | null }> }> {
    const conn = await this.connection();
    return new Promise((resolve, reject) => {
      let started = false;
      let exited: (x: { exitCode: number | null; signal: number | null }) => void = () => {};
      let lost: (e: Error) => void = () => {};
      const exit = new Promise<{ exitCode: number | null; signal: number | null }>((res, rej) => {
        exited = res;
        lost = rej;
      });
      conn.send(fields, fds, {
        frame: (f) => {
          if (!started) {
            try {
              checked(f, context);
            } catch (e) {
              reject(e as Error);
              return 'done';
            }
            started = true;
            resolve({ pid: Number(f[1]), exit });
            return 'more';
          }
          if (f[0] !== 'exit') {
            lost(new RuntimeError(`${context}: unexpected frame "${f[0]}"`, { code: 'EPROTO', step: 'spawner' }));
            return 'done';
          }
          const code = Number(f[1]);
          const sig = Number(f[2]);
          exited({ exitCode: code >= 0 ? code : null, signal: sig > 0 ? sig : null });
          return 'done';
        },
        fail: (e) => (started ? lost(e) : reject(e)),
      });
    });
  }

  /** Exit events of every container of this spawner, pushed as they happen. */
  async onExit(listener: (e: SpawnerExit) => void): Promise<() => void> {
    this.listeners.add(listener);
    try {
      await this.subscribe(await this.connection());
    } catch (e) {
      this.listeners.delete(listener);
      throw e;
    }
    return () => {
      // The subscription stays with the connection; events nobody listens to are dropped.
      this.listeners.delete(listener);
    };
  }

  /** One subscription per connection, however many callers ask for it at once. */
  private subscribe(conn: SpawnerConnection): Promise<void> {
    if (this.subscription?.conn === conn) return this.subscription.done;
    const done = new Promise<void>((resolve, reject) => {
      let acknowledged = false;
      conn.send(['subscribe'], undefined, {
        frame: (f) => {
          if (!acknowledged) {
            acknowledged = true;
            if (f[0] === 'ok') resolve();
            else reject(f[0] === 'error' ? replyError(f, 'subscribe to exits') : new RuntimeError('subscribe to exits: unexpected reply', { code: 'EPROTO', step: 'spawner' }));
            // The subscription alone does not keep a host agent alive; a pending wait() does.
            return f[0] === 'ok' ? 'background' : 'done';
          }
          if (f[0] === 'exit') {
            const e = exitEvent(f);
            for (const l of this.listeners) l(e);
          }
          return 'background';
        },
        fail: (e) => {
          if (!acknowledged) reject(e);
        },
      });
    });
    const sub = { conn, done };
    this.subscription = sub;
    done.catch(() => {
      if (this.subscription === sub) this.subscription = undefined;
    });
    return done;
  }

  /** Keeps the event loop alive while something waits for an exit. */
  hold(delta: 1 | -1): void {
    this.holds += delta;
    this.conn?.hold(this.holds > 0);
  }

  /** Asks the spawner to exit once no container runs; `force` kills what is left. Never starts one. */
  async shutdown(force = false): Promise<void> {
    let conn = this.conn?.usable() ? this.conn : undefined;
    try {
      conn ??= await SpawnerConnection.open(this.opts.kernel, this.socketPath);
      await roundTrip(conn, force ? ['shutdown', 'force'] : ['shutdown']);
    } catch (e) {
      if (!(e instanceof RuntimeError) || e.code !== 'ENOSPAWNER') throw e;
    } finally {
      conn?.close();
    }
  }

  /** Ends this client's use of the connection: it closes once no request is in flight. */
  close(): void {
    this.listeners.clear();
    this.subscription = undefined;
    this.conn?.end();
    this.conn = undefined;
  }
}
