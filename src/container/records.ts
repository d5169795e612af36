/** Containers as their state records say, and the prepare context over a runtime's parts. */
import * as fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { RuntimeError } from '../errors.js';
import { initPath } from '../kernel/native.js';
import type { Logger } from '../logger.js';
import { securityReport, type SecurityReport } from '../secure-runtime/report.js';
import type { ContainerContext } from './context.js';
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
    restartCount: r.restarts?.count ?? 0,
  };
}

/** Every container under the state root; a live state whose init is gone reads as stopped. */
export function listStatuses(parts: RuntimeParts): ContainerStatus[] {
  return parts.state.list().filter((r) => !r.pool).map((r) => {
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
  if (!found || found.pool) throw new RuntimeError(`no container named "${idOrName}"`, { code: 'ENOTFOUND', step: 'state' });
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
    gpu: parts.gpuSetup(),
    initBinary: initPath,
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

/**
 * A loaded live record against the kernel and the spawner: exited while nobody watched (the
 * spawner's exit.json says how; without it, the spawner died too and the code is unknown),
 * or alive — and then adopted by the current spawner if a dead one was its parent (through a
 * pidfd, checked against the recorded start time), so it can be signalled and watched.
 */
export async function reconcileRecord(
  parts: RuntimeParts,
  rec: ContainerRecord,
  log: Logger,
): Promise<{ exited?: { exitCode: number | null; signal: number | null; finishedAt: number } }> {
  const exit = parts.state.exit(rec.id);
  if (exit) return { exited: { exitCode: exit.exitCode >= 0 ? exit.exitCode : null, signal: exit.signal || null, finishedAt: exit.finishedAt } };
  if (!isSameProcess(parts.kernel, rec.pid, rec.pidStartTime)) return { exited: { exitCode: null, signal: null, finishedAt: Date.now() } };
  const known = await parts.spawner.request(['status', rec.id], `status of container ${rec.name}`);
  if (known[1] === 'unknown') {
    await parts.spawner.request(
      ['adopt', rec.id, String(rec.pid), rec.pidStartTime ?? '', rec.paths.stateDir, 'stdout', rec.paths.stdoutLog, 'stderr', rec.paths.stderrLog],
      `adopt container ${rec.name}`,
    );
    log.warn('adopted from a spawner that is gone: its exit code will not be known');
  }
  return {};
}

/** The confinement a live container's init really has, read back from the kernel. */
export function inspectSecurity(ctx: ContainerContext): Promise<SecurityReport> {
  const { rec, parts } = ctx;
  if (!isLive(rec.state) || !isSameProcess(parts.kernel, rec.pid, rec.pidStartTime)) {
    throw new RuntimeError(`security report of container ${rec.name}: it is ${rec.state}, no init to inspect`, { code: 'ESTATE', step: 'state', containerId: rec.id });
  }
  return securityReport(rec.pid!);
}

/**
 * A container that another live process is still creating: waits (up to 30 s) for that
 * create to end, so that what remove() tears down is all there is, rather than racing the
 * creator as it spawns the init into the cgroups being removed. Returns the record as it is
 * on disk once the wait is over, or undefined when there is none (the create failed and took
 * the state back). It is read again when the wait ends for any reason: a creator that
 * finished and exited between two looks has written more (its id range, its init) than the
 * record the caller holds, and one that died left a half-made container, torn down as it is.
 */
export async function settledCreate(parts: RuntimeParts, rec: ContainerRecord): Promise<ContainerRecord | undefined> {
  const c = rec.creator;
  const deadline = Date.now() + 30_000;
  const load = (): ContainerRecord | undefined => {
    try {
      return parts.state.load(rec.id);
    } catch {
      return undefined;
    }
  };
  while (!parts.creating.has(rec.id) && c && isSameProcess(parts.kernel, c.pid, c.startTime) && Date.now() < deadline) {
    const now = load();
    if (!now || now.state !== 'creating') return now;
    await delay(20);
  }
  return load();
}
