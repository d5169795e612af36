/**
 * Releasing what a container holds, one resource at a time. Provisioning pushes these as
 * its rollback steps; remove() runs them all. Each is safe to run when its resource is
 * already gone.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { RuntimeError, fromNodeError } from '../errors.js';
import type { RuntimeParts } from '../parts.js';
import { runHooks } from '../gpu/hooks.js';
import { isSameProcess, type ContainerRecord } from '../state.js';
import { releaseNetDevices, releaseRdt } from './device-setup.js';

/**
 * Kills a container's init (if it still runs) and waits until it is gone. A record without
 * a pid (its creator died between the spawner's reply and the save) is killed by id through
 * the spawner that made it; an init the current spawner does not know (its parent spawner
 * died) is adopted first, so the kill goes through a pidfd.
 */
export async function killInit(parts: RuntimeParts, rec: ContainerRecord): Promise<void> {
  const context = `kill container ${rec.name}`;
  const known = async () => (await parts.spawner.request(['status', rec.id], context).catch(() => ['ok', 'unknown']))[1];
  const alive = async () => (rec.pid ? !parts.state.exit(rec.id) && isSameProcess(parts.kernel, rec.pid, rec.pidStartTime) : ['created', 'running'].includes((await known()) ?? ''));
  if (!(await alive())) return;
  const lostRace = (e: unknown) => {
    // Lost the race with its exit; anything else is worth knowing.
    if (!(e instanceof RuntimeError && (e.code === 'ESTATE' || e.code === 'ENOSPAWNER'))) throw e;
  };
  try {
    await parts.spawner.request(['kill', rec.id, '9'], context);
  } catch (e) {
    if (!(e instanceof RuntimeError && e.code === 'ENOTFOUND' && rec.pid)) lostRace(e);
    else {
      await parts.spawner.request(['adopt', rec.id, String(rec.pid), rec.pidStartTime ?? '', rec.paths.stateDir], `adopt container ${rec.name}`);
      await parts.spawner.request(['kill', rec.id, '9'], context).catch(lostRace);
    }
  }
  // SIGKILL is not instant for a process in uninterruptible sleep; a second at most.
  for (let i = 0; i < 100 && (await alive()); i++) await delay(10);
  if (await alive()) throw new RuntimeError(`${context}: its init (pid ${rec.pid ?? 'unknown'}) is still alive after SIGKILL`, { code: 'EBUSY', step: 'cleanup', containerId: rec.id });
}

/**
 * A container sharing the host's pid namespace (an OCI configuration without one) keeps its
 * other processes when its init dies, as runc's do: each process its cgroup holds is killed,
 * frozen first so none forks meanwhile, until the cgroup is empty (two seconds at most).
 */
export async function killCgroupProcesses(parts: RuntimeParts, rec: ContainerRecord): Promise<void> {
  if (rec.namespaces.includes('pid')) return;
  const pids = () => {
    try {
      return parts.cgroups.pids(rec.id);
    } catch {
      return []; // no cgroup left
    }
  };
  for (let i = 0; i < 200; i++) {
    const left = pids();
    if (left.length === 0) return;
    const frozen = await parts.cgroups.freeze(rec.id).then(() => true, () => false);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    if (frozen) await parts.cgroups.thaw(rec.id).catch(() => undefined);
    await delay(10);
  }
  const left = pids();
  if (left.length > 0) throw new RuntimeError(`kill container ${rec.name}: processes ${left.join(', ')} are still alive after SIGKILL`, { code: 'EBUSY', step: 'cleanup', containerId: rec.id });
}

export async function forgetInit(parts: RuntimeParts, rec: ContainerRecord): Promise<void> {
  await parts.spawner.request(['forget', rec.id], `forget container ${rec.name}`).catch((e: unknown) => {
    if (!(e instanceof RuntimeError && e.code === 'ENOSPAWNER')) throw e;
  });
}

export async function detachNetwork(parts: RuntimeParts, rec: ContainerRecord): Promise<void> {
  const n = rec.network;
  if (!n) return;
  const alive = isSameProcess(parts.kernel, rec.pid, rec.pidStartTime);
  await parts.network.del(rec.id, alive ? `/proc/${rec.pid}/ns/net` : '', n.result as never, n.bandwidthMbps);
}

/**
 * Everything of a container, in the reverse order of provisioning. Every step runs even
 * when one fails; the first failure is thrown once all have run.
 */
export async function teardown(parts: RuntimeParts, rec: ContainerRecord, context: string): Promise<void> {
  const errors: unknown[] = [];
  const attempt = async (f: () => unknown) => {
    try {
      await f();
    } catch (e) {
      errors.push(e);
    }
  };
  await attempt(() => releaseNetDevices(parts, rec));
  await attempt(() => killInit(parts, rec));
  await attempt(() => killCgroupProcesses(parts, rec));
  await attempt(() => releaseRdt(rec));
  await attempt(() => detachNetwork(parts, rec));
  await attempt(() => forgetInit(parts, rec));
  await attempt(() => parts.cgroups.destroy(rec.id));
  await attempt(() => parts.storage.remove(rec.paths));
  if (rec.idRange) await attempt(() => parts.idRanges.release(rec.idRange!, rec.id));
  await attempt(() => parts.state.remove(rec.id));
  await attempt(() => parts.state.releaseName(rec.name, rec.id));
  await attempt(() => parts.gpuAssignments.release(rec.id));
  if (rec.hooks?.length) {
    await runHooks(rec.hooks, 'poststop', { id: rec.id, status: 'stopped', bundle: rec.paths.storageDir }).catch((e: unknown) =>
      parts.logger.warn({ container: rec.id, err: e }, `container ${rec.name}: a poststop hook failed`),
    );
  }
  if (errors.length > 0) {
    const first = errors[0];
    throw first instanceof RuntimeError ? first.wrap(context) : fromNodeError(first, 'cleanup', context);
  }
}
