/**
 * start(): the process a parked init becomes. The init parked after everything the
 * container's shape fixes (namespaces, mounts, the pivot, cgroups); the start request
 * carries the rest (argv, env, cwd, user and groups, capabilities, no_new_privs, the
 * seccomp program, rlimits, placement), so a container created long before, or taken from
 * the warm pool, runs exactly what the caller chose.
 */
import type { RuntimeParts } from '../parts.js';
import { encodeStart } from '../plan/encode.js';
import type { ProcessPlan } from '../plan/types.js';
import type { WireField } from '../spawner/wire.js';
import type { ContainerConfig } from './config.js';
import { prepareCreate, wantsGpus } from './prepare.js';
import { prepareContext } from './records.js';

export interface StartInput {
  process: ProcessPlan;
  lastCap: number;
  /** Set from outside at start: the container was created with another (a pooled one). */
  hostname?: string | undefined;
  /** Fds to replace the process's stdin, stdout, stderr (a terminal, pipes). */
  stdio?: { fds: number[]; which: (0 | 1 | 2)[] } | undefined;
  /** The init loaded the process's seccomp program at its park point (a pooled container). */
  seccompLoaded?: boolean | undefined;
  /** The request, encoded at create (which so refuses one too large for the spawner). */
  fields?: WireField[] | undefined;
}

/** Encodes the start request; throws, naming the field, when it cannot be sent. */
export function encodeStartInput(id: string, name: string, input: StartInput): StartInput {
  const fields = encodeStart(id, input.process, input.lastCap, `create container ${name}`, { hostname: input.hostname, stdio: input.stdio?.which, seccompLoaded: input.seccompLoaded });
  return { ...input, fields };
}

/**
 * The process of a container created by another process (loaded from its record): compiled
 * again from its configuration, as create compiled it.
 */
export async function startInputOf(parts: RuntimeParts, config: ContainerConfig, id: string): Promise<StartInput> {
  const gpus = wantsGpus(config) ? await parts.gpus() : undefined;
  const plan = prepareCreate(config, id, prepareContext(parts, gpus));
  return { process: plan.process, lastCap: plan.lastCap };
}

export async function sendStart(parts: RuntimeParts, id: string, name: string, input: StartInput): Promise<void> {
  const context = `start container ${name}`;
  const fields = input.fields ?? encodeStart(id, input.process, input.lastCap, context, { hostname: input.hostname, stdio: input.stdio?.which, seccompLoaded: input.seccompLoaded });
  await parts.spawner.request(fields, context, input.stdio?.fds);
}
