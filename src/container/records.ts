/** Containers as their state records say, and the prepare context over a runtime's parts. */
import * as fs from 'node:fs';
import { RuntimeError } from '../errors.js';
import type { RuntimeParts } from '../parts.js';
import { signalName } from '../signals.js';
import { isSameProcess, type ContainerRecord } from '../state.js';
import { isLive } from './context.js';
import type { PrepareContext } from './prepare.js';
import type { ContainerStatus } from './types.js';

export function statusOf(r: ContainerRecord): ContainerStatus {
  return {
    id: r.id,
    name: r.name,
    state: r.state,
    pid: isLive(r.state) ? r.pid : undefined,
    exitCode: r.exitCode,
    signal: r.signal === undefined ? undefined : signalName(r.signal),
    oomKilled: !!r.oomKilled,
    createdAt: new Date(r.createdAt),
    startedAt: r.startedAt ? new Date(r.startedAt) : undefined,
    finishedAt: r.finishedAt ? new Date(r.finishedAt) : undefined,
  };
}

/** Every container under the state root; a live state whose init is gone reads as stopped. */
export function listStatuses(parts: RuntimeParts): ContainerStatus[] {
  return parts.state.list().map((r) => {
    const exit = parts.state.exit(r.id);
    let state = r.state;
    if (isLive(state) && (exit || !isSameProcess(parts.kernel, r.pid, r.pidStartTime))) state = 'stopped';
    return statusOf({ ...r, state, exitCode: exit ? (exit.signal ? null : exit.exitCode) : r.exitCode, signal: exit?.signal ?? r.signal });
  });
}

/** The record of a container by id, or by name (through its claim, else a scan). */
export function findRecord(parts: RuntimeParts, idOrName: string): ContainerRecord {
  const { state } = parts;
  if (/^[a-f0-9]{32}$/.test(idOrName)) return state.load(idOrName);
  const owner = state.nameOwner(idOrName);
  const found = owner && /^[a-f0-9]{32}$/.test(owner) ? state.load(owner) : state.list().find((r) => r.name === idOrName);
  if (!found) throw new RuntimeError(`no container named "${idOrName}"`, { code: 'ENOTFOUND', step: 'state' });
  return found;
}

export function prepareContext(parts: RuntimeParts, gpus?: PrepareContext['gpus']): PrepareContext {
  return {
    images: parts.images,
    kernel: parts.kernel,
    stateDir: (id) => parts.state.dir(id),
    storageDir: (id) => parts.storageDir(id),
    volumeSource: (path) => {
      try {
        return fs.statSync(path).isDirectory() ? 'directory' : 'file';
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        throw new RuntimeError(`${err.code ?? err.message}`, { code: err.code === 'ENOENT' ? 'ENOTFOUND' : 'ESYSCALL', step: 'volume', errno: err.code, path, cause: e });
      }
    },
    gpus,
  };
}

/** What the container wrote so far, as text. */
export function readLogs(paths: ContainerRecord['paths']): { stdout: string; stderr: string } {
  const read = (p: string) => {
    try {
      return fs.readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  };
  return { stdout: read(paths.stdoutLog), stderr: read(paths.stderrLog) };
}
