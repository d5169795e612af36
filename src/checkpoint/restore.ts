/**
 * Restore: a checkpoint turned back into a running container with a new id, in fresh
 * namespaces and cgroups with the limits it had. Everything but the init goes through the
 * ordinary provisioning steps (name, state, storage, cgroups, watch), so a failure at any
 * step undoes the rest; the spawn step is CRIU's restore, run by the spawner inside the new
 * cgroups so the restored tree becomes its child.
 */
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import type { RuntimeParts } from '../parts.js';
import type { SpawnPlan } from '../plan/types.js';
import type { ContainerRecord } from '../state.js';
import { criuBinary, criuEnv, criuErrors } from './criu.js';
import { detach, IMAGES, mountOverlay, ROOTFS_DIFF, untarUpper, type CheckpointManifest } from './files.js';

export interface RestoreOptions {
  /** The restored container's name (default: the checkpointed container's). */
  name?: string | undefined;
}

export interface MigrateOptions {
  /** The name on the target (default: the same). */
  name?: string | undefined;
  /** Pre-dumps while the container runs, each copying what changed since the last (default 2; none without dirty-page tracking). */
  preDumps?: number | undefined;
  /**
   * The transport: gets the byte stream the source writes and returns the stream the target
   * reads (a TCP connection between two nodes, a pipe through ssh). Default: in-process.
   */
  through?: ((stream: import('node:stream').Readable) => import('node:stream').Readable) | undefined;
}

export interface MigrationResult {
  /** The container, running on the target runtime. */
  container: import('../container/container.js').Container;
  /** Frozen at the source → running on the target, in milliseconds. */
  downtimeMs: number;
  totalMs: number;
  preDumps: number;
  preDumpMs: number[];
  /** Bytes of the final checkpoint (images and writable layer). */
  bytes: number;
}

/** The configuration the restored container is made from: the checkpoint's, with the settings that were in force. */
export function restoredConfig(m: CheckpointManifest, name: string | undefined): Record<string, unknown> {
  const config: Record<string, unknown> = { ...m.container.config, resources: { ...((m.container.config.resources as object) ?? {}), ...m.container.resources } };
  if (name !== undefined) config.name = name;
  return config;
}

/** The spawn step of a restore: writable layer, root mount, CRIU through the spawner. */
export async function criuRestore(parts: RuntimeParts, plan: SpawnPlan, rec: ContainerRecord, dir: string, m: CheckpointManifest): Promise<string[]> {
  const what = `restore container ${plan.name}`;
  if (plan.userNamespace) throw new RuntimeError(`${what}: the checkpoint's configuration has a user namespace`, { code: 'EUNSUPPORTED', step: 'restore' });
  const t0 = performance.now();
  await untarUpper(join(dir, ROOTFS_DIFF), rec.paths.upper);
  await mountOverlay(plan.image.layerPaths, rec.paths.upper, rec.paths.work, rec.paths.rootfs);
  const t1 = performance.now();
  try {
    const pidfile = join(rec.paths.stateDir, 'criu-restore.pid');
    const inherit: string[] = [];
    for (const [key, log] of Object.entries(m.external)) inherit.push('--inherit-fd', `fd[${log === 'stdout' ? 3 : 4}]:${key}`);
    const argv = [
      criuBinary(),
      'restore',
      '-D', join(dir, IMAGES, m.dump),
      '-W', rec.paths.stateDir,
      '-o', 'criu-restore.log',
      '-v2',
      '--restore-detached',
      '--root', rec.paths.rootfs,
      '--external', 'mnt[]',
      '--tcp-established',
      '--file-locks',
      '--manage-cgroups=ignore',
      '--pidfile', pidfile,
      ...inherit,
    ];
    const env = criuEnv();
    const fields = ['restore', plan.id, rec.paths.stateDir, rec.paths.stdoutLog, rec.paths.stderrLog, pidfile, String(rec.cgroupProcs.length), ...rec.cgroupProcs, String(argv.length), ...argv, String(env.length), ...env];
    try {
      const reply = await parts.spawner.request(fields, what);
      parts.logger.debug({ container: plan.id, layerAndMountMs: t1 - t0, criuMs: performance.now() - t1 }, 'restore: tree restored');
      return reply;
    } catch (e) {
      const why = criuErrors(join(rec.paths.stateDir, 'criu-restore.log'));
      if (e instanceof RuntimeError && why.length) {
        throw new RuntimeError(`${what}: ${e.message}: ${why.join('; ')}`, { code: e.code, step: 'restore', cause: e });
      }
      throw e;
    }
  } finally {
    // The restored mount namespace holds its own reference to the root: the host's goes.
    await detach(rec.paths.rootfs);
  }
}
