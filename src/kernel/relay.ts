/**
 * Starting a terminal's relay (native/tty/relay.c): the small process that holds the pty
 * master for as long as the terminal lives, copies its output to the container's log and
 * to attached clients, and takes their input and window sizes on a unix socket.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { RuntimeError } from '../errors.js';
import { candidatePaths } from './native.js';

/** The relay executable, first existing candidate. */
export function relayPath(): string {
  const paths = candidatePaths('stratoswarm-tty');
  const found = paths.find((p) => existsSync(p));
  if (!found) {
    throw new RuntimeError(`terminal relay not found; tried:\n  ${paths.join('\n  ')}\nbuild it with \`npm run build:native\``, {
      code: 'ELOAD',
      step: 'stdio',
      path: paths[0],
    });
  }
  return found;
}

export function startRelay(master: number, socketPath: string, logPath?: string): Promise<void> {
  const file = relayPath();
  const args = ['--socket', socketPath, ...(logPath ? ['--log', logPath] : [])];
  return new Promise((resolve, reject) => {
    // Detached (its own session) and holding nothing of this process but the master: it
    // outlives a host agent that exits or detaches.
    const child = spawn(file, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe', master] });
    let out = '';
    let err = '';
    const fail = (why: string) =>
      reject(new RuntimeError(`start the terminal relay: ${why}`, { code: 'ESPAWN', step: 'stdio', path: socketPath }));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) {
        child.stdout!.destroy();
        child.stderr!.destroy();
        child.unref();
        resolve();
      }
    });
    child.on('error', (e) => fail(e.message));
    child.on('exit', (code, signal) => {
      if (!out.includes('ready\n')) fail(err.trim() || `it exited (${signal ?? code}) before it was ready`);
    });
  });
}
