/**
 * GPU assignments on disk: `<stateRoot>/gpus/assignments.json`, written atomically (temp file
 * and rename), so they survive the host agent that made them. Every read-choose-write runs
 * under a flock(2) on `<stateRoot>/gpus/lock` (kernel/file-lock.ts): two processes on one
 * state root never both get the same GPU, and a holder that dies releases the lock with its
 * last file descriptor, so no lock is ever left to take over.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import { withFileLock } from '../kernel/file-lock.js';
import { chooseMig } from './mig.js';
import { chooseGpus, defaultDistance, type GpuAssignmentRecord, type GpuRequest, type NumaDistance, type SchedulableGpu } from './scheduler.js';

export interface GpuStoreHost {
  /** Start time of `pid` (/proc/<pid>/stat field 22); undefined when it does not exist. */
  processStartTime(pid: number): string | undefined;
  /** Whether container `id` still has a record (an assignment without one is stale). */
  containerExists(id: string): boolean;
}

export class GpuAssignmentStore {
  readonly dir: string;
  private readonly file: string;
  private readonly lockFile: string;

  constructor(stateRoot: string, private readonly host: GpuStoreHost) {
    this.dir = join(stateRoot, 'gpus');
    this.file = join(this.dir, 'assignments.json');
    this.lockFile = join(this.dir, 'lock');
  }

  private read(): GpuAssignmentRecord[] {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const doc = JSON.parse(text) as { version?: number; assignments?: GpuAssignmentRecord[] };
    if (doc.version !== 1 || !Array.isArray(doc.assignments)) throw new RuntimeError(`GPU assignments: ${this.file} is not a version 1 assignment file`, { code: 'EPROTO', step: 'state', path: this.file });
    return doc.assignments;
  }

  private write(list: GpuAssignmentRecord[]): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify({ version: 1, assignments: list }, null, 1)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, this.file);
  }

  private locked<T>(f: (list: GpuAssignmentRecord[]) => { list?: GpuAssignmentRecord[]; result: T }): T {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return withFileLock(this.lockFile, 'GPU assignments', () => {
      const current = this.read();
      // A reservation whose container has no record yet is kept while the process making it lives.
      const live = current.filter((a) => this.host.containerExists(a.containerId) || (a.owner?.startTime !== undefined && this.host.processStartTime(a.owner.pid) === a.owner.startTime));
      const r = f(live);
      if (r.list || live.length !== current.length) this.write(r.list ?? live);
      return r.result;
    });
  }

  /** Every assignment in force (those of containers whose records are gone are dropped). */
  list(): GpuAssignmentRecord[] {
    // Nothing was ever assigned: no lock to take (a reader without write access gets an answer).
    if (!fs.existsSync(this.file)) return [];
    return this.locked((list) => ({ result: list.map((a) => ({ ...a, gpus: [...a.gpus], ...(a.mig ? { mig: [...a.mig] } : {}) })) }));
  }

  /** The GPUs container `id` holds; undefined when none. */
  held(id: string): GpuAssignmentRecord | undefined {
    return this.list().find((a) => a.containerId === id);
  }

  /**
   * Chooses and records GPUs and MIG instances for container `id` in one locked step; a
   * container that holds some already keeps them (a restart or a second prepare of it).
   */
  reserve(id: string, name: string, req: GpuRequest, gpus: readonly SchedulableGpu[], distance?: NumaDistance): GpuAssignmentRecord {
    return this.locked((list) => {
      const mine = list.find((a) => a.containerId === id);
      if (mine) return { result: mine };
      const chosen = chooseGpus(req, gpus, list, distance);
      const mig = req.mig ? chooseMig({ ...req.mig, shared: req.shared, numaNode: req.numaNode, strategy: req.strategy }, gpus, list, distance ?? defaultDistance) : [];
      const owner = { pid: process.pid, startTime: this.host.processStartTime(process.pid) };
      const rec: GpuAssignmentRecord = { containerId: id, name, gpus: chosen, ...(mig.length ? { mig } : {}), shared: !!req.shared, assignedAt: new Date().toISOString(), owner };
      return { list: [...list, rec], result: rec };
    });
  }

  /** The container's record exists now: from here on its record, not its creator, keeps the assignment. */
  confirm(id: string): void {
    if (!fs.existsSync(this.file)) return;
    this.locked((list) => {
      const mine = list.find((a) => a.containerId === id);
      if (!mine?.owner) return { result: undefined };
      return { list: list.map((a) => (a === mine ? { ...a, owner: undefined } : a)), result: undefined };
    });
  }

  /** Releases container `id`'s GPUs; true when it held any. */
  release(id: string): boolean {
    if (!fs.existsSync(this.file)) return false;
    return this.locked((list) => {
      const next = list.filter((a) => a.containerId !== id);
      return next.length === list.length ? { result: false } : { list: next, result: true };
    });
  }
}
