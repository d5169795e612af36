/**
 * Reconciliation: what crashed processes left under a state root is brought back to a state
 * someone can act on, or removed completely. A state file that is not a record is moved
 * aside; a container from an earlier boot, or one whose creating process died before it was
 * made, is torn down; a cgroup with no state (an init a dead creator never recorded) has its
 * processes killed through the spawner that knows them, or frozen and killed, then goes.
 */
import { teardown } from './container/teardown.js';
import { RuntimeError } from './errors.js';
import type { ReconcileReport, RuntimeParts } from './parts.js';
import { isSameProcess, type ContainerRecord } from './state.js';
import { setTimeout as delay } from 'node:timers/promises';

/** Whether this record is left over: another boot, or a create whose creator is gone. */
function leftOver(parts: RuntimeParts, rec: ContainerRecord, bootId: string): string | undefined {
  if (rec.bootId && rec.bootId !== bootId) return `created in an earlier boot (${rec.bootId})`;
  const c = rec.creator;
  if (rec.pool && rec.state !== 'creating') {
    // A pooled container belongs to the runtime that made it, and to nobody once it is gone.
    if (!c) return 'pooled, owner unknown';
    if (c.pid === process.pid && c.startTime === parts.kernel.processStartTime(process.pid)) return parts.pool.owns(rec.id) ? undefined : 'pooled by this process, which no longer holds it';
    return isSameProcess(parts.kernel, c.pid, c.startTime) ? undefined : `pooled by process ${c.pid}, which died`;
  }
  if (rec.state !== 'creating' || parts.creating.has(rec.id)) return undefined;
  // A record from before creators were written: nobody can be finishing it this long after.
  if (!c) return Date.now() - Date.parse(rec.createdAt) > 60_000 ? 'half-made, creator unknown' : undefined;
  if (c.pid === process.pid && c.startTime === parts.kernel.processStartTime(process.pid)) return 'half-made by this process, which no longer makes it';
  return isSameProcess(parts.kernel, c.pid, c.startTime) ? undefined : `half-made by process ${c.pid}, which died`;
}

/**
 * Kills what is left in a cgroup that has no state. The spawner kills a container it knows
 * through its pidfd; anything else is frozen first, so that no pid in it can exit and be
 * reused between reading cgroup.procs and the kill.
 */
async function emptyCgroup(parts: RuntimeParts, id: string): Promise<void> {
  const known = await parts.spawner.request(['status', id], `status of container ${id}`).catch(() => ['ok', 'unknown']);
  if (known[1] === 'created' || known[1] === 'running') {
    await parts.spawner.request(['kill', id, '9'], `kill container ${id}`).catch((e: unknown) => {
      if (!(e instanceof RuntimeError && e.code === 'ESTATE')) throw e;
    });
    for (let i = 0; i < 100; i++) {
      const s = await parts.spawner.request(['status', id], `status of container ${id}`);
      if (s[1] !== 'created' && s[1] !== 'running') break;
      await delay(10);
    }
  }
  if (known[1] !== 'unknown') await parts.spawner.request(['forget', id], `forget container ${id}`).catch(() => undefined);
  let pids = parts.cgroups.pids(id);
  if (pids.length === 0) return;
  const frozen = parts.cgroups.layout.controllers.freezer !== undefined;
  if (frozen) await parts.cgroups.freeze(id);
  for (const pid of pids) parts.kernel.signalProcess(pid, 9);
  if (frozen) await parts.cgroups.thaw(id);
  for (let i = 0; i < 100 && (pids = parts.cgroups.pids(id)).length > 0; i++) await delay(10);
}

export async function reconcileStateRoot(parts: RuntimeParts): Promise<ReconcileReport> {
  const report: ReconcileReport = { removed: [], quarantined: [] };
  const log = parts.logger;
  const { records, bad } = parts.state.scan();
  for (const b of bad) {
    try {
      const where = parts.state.quarantine(b.id, b.why);
      report.quarantined.push(b.id);
      log.warn({ container: b.id, why: b.why, where }, 'quarantined a state file that is not a record');
    } catch (e) {
      log.error({ err: e, container: b.id }, 'could not quarantine a bad state file');
    }
  }
  const bootId = parts.kernel.bootId();
  for (const rec of records) {
    const why = leftOver(parts, rec, bootId);
    if (!why) continue;
    try {
      await teardown(parts, rec, `reconcile container ${rec.name}`);
      report.removed.push(rec.id);
      log.warn({ container: rec.id, name: rec.name, why }, 'removed a container left behind');
    } catch (e) {
      log.error({ err: e, container: rec.id, why }, 'could not remove a container left behind');
    }
  }
  // Cgroups first, then the states: a create writes its state before it makes its cgroups,
  // so a cgroup listed here whose state is not listed after it belongs to no live create.
  const cgroupIds = parts.cgroups.list();
  const known = new Set(parts.state.ids());
  // A name claimed by a creator that died before it wrote any state.
  for (const name of parts.state.names()) {
    const claim = parts.state.nameClaim(name);
    if (!claim || known.has(claim.id) || parts.creating.has(claim.id) || !claim.creator) continue;
    const c = claim.creator;
    const mine = c.pid === process.pid && c.startTime === parts.kernel.processStartTime(process.pid);
    if (mine || !isSameProcess(parts.kernel, c.pid, c.startTime)) {
      parts.state.releaseName(name, claim.id);
      log.warn({ name, container: claim.id }, 'released the name claim of a create whose creator died');
    }
  }
  for (const id of cgroupIds) {
    if (known.has(id) || parts.creating.has(id)) continue;
    try {
      await emptyCgroup(parts, id);
      await parts.cgroups.destroy(id);
      report.removed.push(id);
      log.warn({ container: id }, 'removed the cgroups (and processes) of a container with no state');
    } catch (e) {
      log.warn({ err: e, container: id }, 'could not remove the cgroups of a container that no longer exists');
    }
  }
  return report;
}
