/**
 * The caller's side of a container terminal (`run -it`, `exec -it`, `attach`): our terminal
 * in raw mode, bytes both ways, our window size passed on (and again on every SIGWINCH), and
 * docker's detach sequence, ctrl-p ctrl-q, which ends the session and leaves the process
 * running.
 */
import type { TerminalSession } from '../index.js';

/** ctrl-p ctrl-q, as docker's default --detach-keys. */
export const DETACH_KEYS = Buffer.from([0x10, 0x11]);

/**
 * Finds the detach sequence in typed input. A prefix of it at the end of a chunk is held
 * back until the next chunk shows whether the sequence follows (then both are dropped) or not
 * (then the held bytes are passed on).
 */
export class DetachFilter {
  private held = 0;
  constructor(private readonly keys: Buffer = DETACH_KEYS) {}

  /** The bytes to pass on, and whether the sequence was typed (what follows it is dropped). */
  push(chunk: Buffer): { pass: Buffer; detach: boolean } {
    const out: number[] = [];
    for (const byte of chunk) {
      if (byte === this.keys[this.held]) {
        this.held++;
        if (this.held === this.keys.length) return { pass: Buffer.from(out), detach: true };
        continue;
      }
      // Not the sequence after all: what was held goes through, then this byte is looked at afresh.
      for (let i = 0; i < this.held; i++) out.push(this.keys[i]!);
      this.held = 0;
      if (byte === this.keys[0]) this.held = 1;
      else out.push(byte);
    }
    return { pass: Buffer.from(out), detach: false };
  }
}

export interface TerminalStreams {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
}

/** Our window size, when stdout is a terminal. */
export function windowSize(out: NodeJS.WriteStream): { cols: number; rows: number } | undefined {
  return out.isTTY && out.columns > 0 && out.rows > 0 ? { cols: out.columns, rows: out.rows } : undefined;
}

/**
 * Runs a session until its terminal closes ('ended') or the detach keys are typed
 * ('detached'). With `interactive`, our stdin is typed into it (raw mode when stdin is a
 * terminal, so ^C, ^D and the arrows reach the container as bytes).
 */
export function runTerminal(session: TerminalSession, opts: { interactive: boolean }, io: TerminalStreams = { stdin: process.stdin, stdout: process.stdout }): Promise<'ended' | 'detached'> {
  const { stdin, stdout } = io;
  const size = windowSize(stdout);
  if (size) session.resize(size.cols, size.rows);
  const onResize = () => {
    const s = windowSize(stdout);
    if (s) session.resize(s.cols, s.rows);
  };
  stdout.on('resize', onResize);
  const raw = opts.interactive && stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  const filter = new DetachFilter();
  return new Promise((resolve) => {
    let done = false;
    const finish = (how: 'ended' | 'detached') => {
      if (done) return;
      done = true;
      stdout.off('resize', onResize);
      if (opts.interactive) {
        stdin.off('data', onInput);
        stdin.pause();
        if (raw) stdin.setRawMode(false);
      }
      session.stream.unpipe(stdout);
      if (how === 'detached') session.detach();
      resolve(how);
    };
    const onInput = (chunk: Buffer) => {
      const { pass, detach } = filter.push(chunk);
      if (pass.length > 0) session.stream.write(pass);
      if (detach) finish('detached');
    };
    session.stream.pipe(stdout, { end: false });
    session.stream.on('end', () => finish('ended'));
    session.stream.on('close', () => finish('ended'));
    if (opts.interactive) {
      stdin.on('data', onInput);
      stdin.resume();
    }
  });
}
