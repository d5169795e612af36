/**
 * One persistent connection to the spawner, multiplexed. Every request starts with an id
 * field, `#<id>` (`#<id>/<n>` when n fds come with it), and every frame that comes back for
 * it starts with the same field, so any number of requests are in flight at once and their
 * replies may come in any order: a create that waits for its init does not hold up a
 * status or a kill sent after it.
 *
 * Frames without fds go through the socket as any stream write. A frame with fds is one
 * sendmsg() from the addon with the fds on its first byte, tried synchronously without
 * waiting; when the socket is full it is retried on a worker thread once there is room.
 * Frames leave in the order they were sent either way.
 */
import { Socket } from 'node:net';
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import { encodeFrame, FrameDecoder, type WireField } from './wire.js';

/**
 * What one request does with the frames that come back for it (the id field taken off).
 * Until its first frame it keeps the event loop alive, as any pending I/O would.
 */
export interface Exchange {
  /**
   * 'done': no more frames will come for it; 'more': more will, and waiting for them keeps
   * the loop alive (an exec's exit); 'background': more may, but need not keep it alive
   * (exit events of a subscription).
   */
  frame(fields: string[]): 'done' | 'more' | 'background';
  fail(e: RuntimeError): void;
}

interface Pending {
  ex: Exchange;
  alive: boolean;
}

interface Outgoing {
  tag: string;
  frame: Buffer;
  fds: number[] | undefined;
}

export function socketError(e: unknown, socketPath: string): RuntimeError {
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

export class SpawnerConnection {
  private readonly socket: Socket;
  private readonly decoder = new FrameDecoder();
  private readonly exchanges = new Map<string, Pending>();
  private nextId = 1;
  private alive = 0;
  private held = false;
  private closeWhenIdle = false;
  private readonly queue: Outgoing[] = [];
  /** The frame a worker thread is sending (its fds must stay open until it is done). */
  private inFlight: Outgoing | undefined;
  /** Stream writes libuv has not handed to the kernel yet, and whether a frame with fds waits for them. */
  private unflushed = 0;
  private waitingFlush = false;
  private failure: RuntimeError | undefined;
  /** Called once, when the connection is gone (closed by either side, or broken). */
  onClose: ((e: RuntimeError) => void) | undefined;

  /** Connects on a worker thread; rejects with ENOSPAWNER when nothing listens. */
  static async open(kernel: Kernel, socketPath: string): Promise<SpawnerConnection> {
    return new SpawnerConnection(kernel, socketPath, await kernel.connect(socketPath));
  }

  private constructor(
    private readonly kernel: Kernel,
    readonly socketPath: string,
    private readonly fd: number,
  ) {
    this.socket = new Socket({ fd, readable: true, writable: true });
    this.socket.on('data', (chunk: Buffer) => {
      let frames: string[][];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        return this.fail(socketError(e, socketPath));
      }
      for (const f of frames) this.deliver(f);
    });
    this.socket.on('error', (e) => this.fail(socketError(e, socketPath)));
    this.socket.on('close', () => this.fail(this.closedError()));
    // Nothing in flight yet: an idle connection never keeps a host agent alive.
    this.socket.unref();
  }

  get closed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Whether a request sent now can reach a spawner: false once the connection failed, or
   * when the spawner is gone but its EOF is not read yet (it was killed a moment ago); the
   * connection is closed then, failing what was in flight.
   */
  usable(): boolean {
    if (this.failure) return false;
    if (!this.kernel.peerGone(this.fd)) return true;
    this.fail(this.closedError('is gone'));
    return false;
  }

  /** Requests in flight (a subscription once acknowledged is not counted). */
  get pending(): number {
    return this.alive;
  }

  /** Sends a request; `ex` gets each frame that comes back for it, or the connection's failure. */
  send(fields: readonly WireField[], fds: number[] | undefined, ex: Exchange): void {
    if (this.failure) return ex.fail(this.failure);
    const id = `#${this.nextId++}`;
    const withFds = fds !== undefined && fds.length > 0;
    this.exchanges.set(id, { ex, alive: true });
    this.alive++;
    this.updateRef();
    this.queue.push({ tag: id, frame: encodeFrame([withFds ? `${id}/${fds.length}` : id, ...fields]), fds: withFds ? fds : undefined });
    this.pump();
  }

  /** Keeps the event loop alive while something waits on this connection (a container's exit). */
  hold(held: boolean): void {
    this.held = held;
    this.updateRef();
  }

  /** Closes now: every request in flight fails with ENOSPAWNER. */
  close(): void {
    this.fail(this.closedError('was closed'));
  }

  /** Closes once no request is in flight (a subscription alone does not keep it open). */
  end(): void {
    this.closeWhenIdle = true;
    if (this.alive === 0) this.close();
  }

  private closedError(how = 'closed the connection'): RuntimeError {
    const who = how === 'was closed' ? `connection to the spawner at \`${this.socketPath}\` was closed` : `spawner at \`${this.socketPath}\` ${how}`;
    return new RuntimeError(who, { code: 'ENOSPAWNER', step: 'spawner', path: this.socketPath });
  }

  private updateRef(): void {
    if (this.failure) return;
    if (this.alive > 0 || this.held) this.socket.ref();
    else this.socket.unref();
  }

  private pump(): void {
    while (!this.inFlight && !this.waitingFlush && !this.failure && this.queue.length > 0) {
      const out = this.queue[0]!;
      if (!out.fds) {
        this.queue.shift();
        this.write(out.frame);
        continue;
      }
      // A sendmsg() must not pass bytes the stream still holds: those go first.
      if (this.unflushed > 0) {
        this.waitingFlush = true;
        return;
      }
      let n: number;
      try {
        n = this.kernel.send(this.fd, out.frame, out.fds);
      } catch (e) {
        return this.fail(socketError(e, this.socketPath));
      }
      if (n > 0) {
        this.queue.shift();
        // The fds went with the first byte; the rest is plain stream data.
        if (n < out.frame.length) this.write(out.frame.subarray(n));
        continue;
      }
      this.inFlight = out;
      this.kernel.sendWhenWritable(this.fd, out.frame, out.fds).then(
        (sent) => {
          this.inFlight = undefined;
          if (this.failure) return this.failExchange(out.tag, this.failure);
          this.queue.shift();
          if (sent < out.frame.length) this.write(out.frame.subarray(sent));
          this.pump();
        },
        (e: unknown) => {
          this.inFlight = undefined;
          this.fail(socketError(e, this.socketPath));
          this.failExchange(out.tag, this.failure!);
        },
      );
      return;
    }
  }

  private write(b: Buffer): void {
    this.unflushed++;
    this.socket.write(b, () => {
      this.unflushed--;
      if (this.unflushed > 0 || !this.waitingFlush) return;
      this.waitingFlush = false;
      this.pump();
    });
  }

  private deliver(f: string[]): void {
    const tag = f[0] ?? '';
    const p = this.exchanges.get(tag);
    if (!p) {
      // A frame for no request in flight: the two sides no longer agree on the stream.
      const what = tag.startsWith('#') ? `a reply for no request in flight (${tag})` : `an untagged "${tag.slice(0, 32)}" frame`;
      return this.fail(new RuntimeError(`spawner at \`${this.socketPath}\` sent ${what}`, { code: 'EPROTO', step: 'spawner', path: this.socketPath }));
    }
    const next = p.ex.frame(f.slice(1));
    if (next === 'more') return;
    if (next === 'done') this.exchanges.delete(tag);
    if (p.alive) this.alive--;
    p.alive = false;
    if (this.closeWhenIdle && this.alive === 0) return this.close();
    this.updateRef();
  }

  private failExchange(tag: string, e: RuntimeError): void {
    const p = this.exchanges.get(tag);
    if (!p) return;
    this.exchanges.delete(tag);
    p.ex.fail(e);
  }

  private fail(e: RuntimeError): void {
    if (this.failure) return;
    this.failure = e;
    this.socket.destroy();
    this.queue.length = 0;
    this.alive = 0;
    // The frame a worker is still sending names fds its caller closes once told: it is told
    // when the worker is done with them.
    const keep = this.inFlight?.tag;
    for (const [tag, p] of [...this.exchanges]) {
      if (tag === keep) continue;
      this.exchanges.delete(tag);
      p.ex.fail(e);
    }
    this.onClose?.(e);
  }
}
