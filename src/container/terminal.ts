/**
 * Terminals: a pseudo-terminal whose slave is a container process's stdin, stdout, stderr
 * and controlling terminal, and whose master is held by a relay process
 * (native/tty/relay.c) for as long as the terminal lives. The relay copies the terminal's
 * output to the container's stdout log (so `logs()` shows it, as docker keeps logging a tty
 * container) and to every attached client; a client's input and window size go to the
 * master through the relay's socket. Detaching closes one client's connection and nothing
 * else, so a container outlives `run -it` detaching and the host agent exiting.
 */
import { createConnection, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';

/** An attached terminal: what the process writes comes out of `stream`, what is written to it is typed in. */
export interface TerminalSession {
  /** Output of the terminal (readable) and input to it (writable); it ends when the terminal closes. */
  stream: Duplex;
  /** Sets the terminal's window size; the process's foreground group gets SIGWINCH. */
  resize(cols: number, rows: number): void;
  /** Detaches: this connection ends, the terminal and its process go on. */
  detach(): void;
}

/** A terminal opened for a process that does not exist yet: its slave goes to the spawner. */
export interface OpenedTerminal {
  /** The slave, to pass as stdin, stdout and stderr. */
  slave: number;
  /** The slave's host path (/dev/pts/N). */
  path: string;
  /** The relay's socket, which `attachTerminal` connects to. */
  socket: string;
  /** Closes this process's copy of the slave; the relay ends once the process's copies close too. */
  release(): void;
}

/**
 * Opens a pty whose slave belongs to host uid:gid (the container user as the host sees it)
 * and hands its master to a relay listening on `socket` (and writing `log` when given).
 */
export async function openTerminal(kernel: Kernel, o: { uid: number; gid: number; socket: string; log?: string | undefined; root?: string | undefined }): Promise<OpenedTerminal> {
  const pty = kernel.openPty(o.uid, o.gid, o.root);
  try {
    await kernel.startTerminalRelay(pty.master, o.socket, o.log);
  } catch (e) {
    kernel.close(pty.slave);
    throw e;
  } finally {
    // The relay has its own copy; ours would keep the terminal open after the process ends.
    kernel.close(pty.master);
  }
  let released = false;
  return {
    slave: pty.slave,
    path: pty.path,
    socket: o.socket,
    release: () => {
      if (!released) kernel.close(pty.slave);
      released = true;
    },
  };
}

function frame(type: 'd' | 'w', payload: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeUInt32BE(payload.length, 1);
  return Buffer.concat([h, payload]);
}

/** Input larger than one relay frame is split. */
const MAX_FRAME = 65536;

/** Connects to a terminal's relay. `context` names the terminal in errors. */
export function attachTerminal(socket: string, context: string): Promise<TerminalSession> {
  return new Promise((resolve, reject) => {
    const conn: Socket = createConnection(socket);
    conn.once('error', (e: NodeJS.ErrnoException) => {
      const gone = e.code === 'ENOENT' || e.code === 'ECONNREFUSED';
      reject(
        new RuntimeError(`${context}: ${gone ? 'its terminal has closed' : e.message}`, {
          code: gone ? 'ESTATE' : 'ESYSCALL',
          step: 'stdio',
          errno: e.code,
          path: socket,
          cause: e,
        }),
      );
    });
    conn.once('connect', () => {
      conn.removeAllListeners('error');
      const stream = new Duplex({
        read() {
          conn.resume();
        },
        write(chunk: Buffer, _enc, done) {
          if (!conn.writable) return done();
          for (let off = 0; off < chunk.length; off += MAX_FRAME) conn.write(frame('d', chunk.subarray(off, off + MAX_FRAME)));
          done();
        },
        final(done) {
          done();
        },
        destroy(err, done) {
          conn.destroy();
          done(err);
        },
      });
      conn.on('data', (d: Buffer) => {
        if (!stream.push(d)) conn.pause();
      });
      conn.on('end', () => stream.push(null));
      // A relay that is gone mid-session ends the stream; nothing else depends on it.
      conn.on('error', () => stream.push(null));
      conn.on('close', () => stream.push(null));
      resolve({
        stream,
        resize(cols: number, rows: number) {
          if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1 || cols > 65535 || rows > 65535) {
            throw new RuntimeError(`${context}: resize: expected columns and rows in [1, 65535], got ${cols}x${rows}`, { code: 'EINVAL', step: 'config' });
          }
          const p = Buffer.alloc(4);
          p.writeUInt16BE(cols, 0);
          p.writeUInt16BE(rows, 2);
          if (conn.writable) conn.write(frame('w', p));
        },
        detach() {
          conn.end();
          conn.destroy();
        },
      });
    });
  });
}

/** Where a container's terminal relay listens. */
export function terminalSocket(stateDir: string): string {
  return `${stateDir}/tty.sock`;
}

/** Host ids of a container user: shifted into the container's id range under a user namespace. */
export function hostIds(user: { uid: number; gid: number }, idRange: { hostId: number; size: number } | undefined): { uid: number; gid: number } {
  const shift = (id: number) => (idRange && id < idRange.size ? idRange.hostId + id : id);
  return { uid: shift(user.uid), gid: shift(user.gid) };
}

/** The terminal of a container being created: its relay writes the stdout log. */
export function openContainerTerminal(
  parts: { kernel: Kernel },
  plan: { process: { user: { uid: number; gid: number } }; paths: { stateDir: string; stdoutLog: string } },
  rec: { idRange?: { hostId: number; size: number } | undefined },
): Promise<OpenedTerminal> {
  const ids = hostIds(plan.process.user, rec.idRange);
  return openTerminal(parts.kernel, { ...ids, socket: terminalSocket(plan.paths.stateDir), log: plan.paths.stdoutLog });
}

/** Attaches to the terminal of the container of `ctx` (made with `terminal(true)`, not yet exited). */
export function attachContainer(ctx: { rec: { name: string; state: string; paths: { stateDir: string } }; config: { spec: { terminal: boolean } } }): Promise<TerminalSession> {
  const { rec } = ctx;
  const context = `attach to container ${rec.name}`;
  if (!ctx.config.spec.terminal) {
    return Promise.reject(new RuntimeError(`${context}: it has no terminal (create it with terminal(true))`, { code: 'EINVAL', step: 'stdio' }));
  }
  if (rec.state !== 'created' && rec.state !== 'running' && rec.state !== 'paused') {
    return Promise.reject(new RuntimeError(`${context}: it is ${rec.state}`, { code: 'ESTATE', step: 'stdio' }));
  }
  return attachTerminal(terminalSocket(rec.paths.stateDir), context);
}
