/**
 * Drives a command through a real pseudo-terminal (test/helpers/pty_run.py, Python's pty
 * module): what a user at a terminal types and sees, window resizes included.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Writable } from 'node:stream';

const HELPER = join(import.meta.dirname, 'pty_run.py');

/** Why terminal tests cannot run here, or undefined. */
export function ptyUnavailable(): string | undefined {
  const r = spawnSync('python3', ['-c', 'import pty, termios, fcntl'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'needs python3 with the pty module (Debian: python3) to drive a terminal';
}

export interface PtySession {
  /** Types text (e.g. "ls\r", or "\x10\x11" for ctrl-p ctrl-q). */
  type(text: string): void;
  resize(rows: number, cols: number): void;
  /** Everything the terminal showed so far. */
  readonly output: string;
  /** Resolves with the output once `re` matches it. */
  until(re: RegExp, ms?: number): Promise<string>;
  /** The command's exit code. */
  exit: Promise<number | null>;
  kill(): void;
}

export function runInPty(argv: string[], opts: { rows?: number; cols?: number; env?: NodeJS.ProcessEnv } = {}): PtySession {
  const p = spawn('python3', [HELPER, String(opts.rows ?? 24), String(opts.cols ?? 80), ...argv], { env: opts.env, stdio: ['pipe', 'pipe', 'inherit', 'pipe'] });
  let output = '';
  const waiters: { re: RegExp; resolve: (s: string) => void }[] = [];
  p.stdout!.on('data', (d: Buffer) => {
    output += d.toString('utf8');
    for (const w of waiters.splice(0)) {
      if (w.re.test(output)) w.resolve(output);
      else waiters.push(w);
    }
  });
  const control = p.stdio[3] as Writable;
  const exit = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  return {
    type: (text) => void p.stdin!.write(text),
    resize: (rows, cols) => void control.write(`resize ${rows} ${cols}\n`),
    get output() {
      return output;
    },
    until(re, ms = 15_000) {
      if (re.test(output)) return Promise.resolve(output);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`terminal never showed ${re}; it showed ${JSON.stringify(output)}`)), ms);
        waiters.push({ re, resolve: (s) => (clearTimeout(timer), resolve(s)) });
      });
    },
    exit,
    kill: () => void p.kill('SIGKILL'),
  };
}
