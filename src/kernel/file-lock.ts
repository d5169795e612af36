/**
 * Short exclusive sections shared by every process on one state root, under flock(2) on a
 * lock file. The kernel drops the lock when its holder closes the file or dies, so there is
 * never a stale lock to judge and take over: taking over a stale lock by removing it lets two
 * takers both remove and both win, which is the race these sections exist to close. The file
 * stays (removing a flocked file is itself racy); it holds the last holder's pid, for errors.
 */
import * as fs from 'node:fs';
import { RuntimeError } from '../errors.js';
import { loadNative } from './native.js';

const WAIT_MS = 10_000;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Runs `f` while holding the lock `path` (made if missing), waiting up to `waitMs` for
 * another holder; `what` names the section in the error a longer wait gets.
 */
export function withFileLock<T>(path: string, what: string, f: () => T, waitMs = WAIT_MS): T {
  const native = loadNative();
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  } catch (e) {
    throw new RuntimeError(`${what}: open lock ${path}: ${(e as Error).message}`, { code: 'ESYSCALL', step: 'state', path });
  }
  try {
    const deadline = Date.now() + waitMs;
    while (!native.tryLock(fd)) {
      if (Date.now() > deadline) {
        let holder = '';
        try {
          holder = fs.readFileSync(path, 'utf8').trim();
        } catch {
          // Only for the message.
        }
        throw new RuntimeError(`${what}: lock ${path} is held${holder ? ` by pid ${holder}` : ''} for more than ${waitMs / 1000} s`, { code: 'EBUSY', step: 'state', path });
      }
      sleep(2);
    }
    fs.ftruncateSync(fd, 0);
    fs.writeSync(fd, String(process.pid), 0);
    return f();
  } finally {
    fs.closeSync(fd);
  }
}
