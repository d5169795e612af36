/**
 * Provisioning a container from a checkpoint directory (Container.restore and the target
 * side of migrate): the manifest checked, its configuration compiled to a plan, and the
 * plan carried out with CRIU restoring the processes where provisioning would spawn an init.
 * A failure at any step undoes what was done (provision.ts).
 */
import { verifyCheckpoint, type CheckpointManifest } from '../checkpoint/files.js';
import { criuRestore, restoredConfig, type RestoreOptions } from '../checkpoint/restore.js';
import type { RuntimeParts } from '../parts.js';
import type { ContainerRecord } from '../state.js';
import { newContainerId } from '../state.js';
import { ContainerConfig } from './config.js';
import { prepareCreate } from './prepare.js';
import { provision } from './provision.js';
import { prepareContext } from './records.js';

/**
 * `adopt` makes the container object for the provisioned record (and watches its exits); it
 * returns what stops the watching, for provision to call if a later step fails.
 */
export async function provisionFromCheckpoint<C>(
  parts: RuntimeParts,
  path: string,
  opts: RestoreOptions & { signal?: AbortSignal },
  verified: CheckpointManifest | undefined,
  adopt: (rec: ContainerRecord, config: ContainerConfig) => Promise<{ container: C; unwatch: () => void }>,
): Promise<{ container: C; rec: ContainerRecord }> {
  await parts.reconcile();
  const m = verified ?? (await verifyCheckpoint(path));
  const own = ContainerConfig.fromSpec(restoredConfig(m, opts.name) as never, (m.container.config as { hardwareAffinity?: never }).hardwareAffinity);
  const plan = prepareCreate(own, newContainerId(), prepareContext(parts));
  let container: C | undefined;
  const { rec } = await provision(parts, {
    plan,
    config: own.toJSON(),
    resources: { ...own.spec.resources },
    signal: opts.signal,
    restore: (r) => {
      if (m.container.evolution !== undefined) r.evolution = m.container.evolution;
      return criuRestore(parts, plan, r, path, m);
    },
    watch: async (r) => {
      const a = await adopt(r, own);
      container = a.container;
      return a.unwatch;
    },
  });
  rec.startedAt = new Date().toISOString();
  return { container: container!, rec };
}
