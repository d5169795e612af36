/**
 * `io.stratoswarm.evolution`: a pod asks for its settings to evolve. The value is "true"
 * (the defaults), "false", or a JSON object: { "generationIntervalMs", "bounds": { gene:
 * [min, max] }, "maxGenerations", "seed" }, genes among cpuLimit (cores), memoryLimit
 * (bytes) and cpuWeight. The resident server (server.ts) runs the generations of every
 * running container of its root that asks, applies each proposal to its cgroups, keeps the
 * state in the container's state directory after every generation, and resumes from it
 * when it starts again. `state` shows the generation and the settings in force.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { encodeFrame } from '../spawner/wire.js';
import { ConfigError, Problems } from '../errors.js';
import { EvolutionConfig } from '../evolution/config.js';
import type { EvolutionSnapshot } from '../evolution/controller.js';
import type { Genome } from '../evolution/genes.js';
import type { ContainerRecord } from '../state.js';

export const EVOLUTION_ANNOTATION = 'io.stratoswarm.evolution';
/** What `state` adds to the annotations while a container evolves. */
export const GENERATION_ANNOTATION = 'io.stratoswarm.evolution.generation';
export const APPLIED_ANNOTATION = 'io.stratoswarm.evolution.applied';
/** The evolution state of a container, in its state directory. */
export const EVOLUTION_FILE = 'oci-evolution.json';

const GENES = ['cpuLimit', 'memoryLimit', 'cpuWeight'] as const;
const KEYS = ['generationIntervalMs', 'bounds', 'maxGenerations', 'seed'];

/** Whether annotations ask to evolve: the annotation is there and not "false". */
export function asksToEvolve(annotations: Record<string, string>): boolean {
  const v = annotations[EVOLUTION_ANNOTATION];
  return v !== undefined && v !== 'false';
}

/**
 * The annotation as an evolution configuration; undefined for "false" or a problem, each
 * added under `annotations["io.stratoswarm.evolution"]`.
 */
export function evolutionAnnotation(value: string | undefined, problems: Problems): EvolutionConfig | undefined {
  if (value === undefined || value === 'false') return undefined;
  const f = `annotations["${EVOLUTION_ANNOTATION}"]`;
  if (value === 'true') return EvolutionConfig.builder().build();
  let o: unknown;
  try {
    o = JSON.parse(value);
  } catch {
    problems.add(f, `expected "true", "false" or a JSON object, got ${JSON.stringify(value)}`);
    return undefined;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    problems.add(f, `expected "true", "false" or a JSON object, got ${JSON.stringify(value)}`);
    return undefined;
  }
  const v = o as Record<string, unknown>;
  const before = problems.list.length;
  for (const k of Object.keys(v)) if (!KEYS.includes(k)) problems.add(`${f}.${k}`, `unknown field (one of ${KEYS.join(', ')})`);
  const b = EvolutionConfig.builder();
  if (v.generationIntervalMs !== undefined) b.generationInterval(v.generationIntervalMs as number);
  if (v.maxGenerations !== undefined) b.maxGenerations(v.maxGenerations as number);
  if (v.seed !== undefined) b.seed(v.seed as number);
  if (v.bounds !== undefined) {
    if (typeof v.bounds !== 'object' || v.bounds === null || Array.isArray(v.bounds)) problems.add(`${f}.bounds`, 'expected an object of gene: [min, max]');
    else
      for (const [gene, range] of Object.entries(v.bounds)) {
        if (!(GENES as readonly string[]).includes(gene)) problems.add(`${f}.bounds.${gene}`, `unknown gene (one of ${GENES.join(', ')})`);
        else if (!Array.isArray(range) || range.length !== 2 || !range.every((x) => typeof x === 'number')) problems.add(`${f}.bounds.${gene}`, 'expected [min, max]');
        else b.bounds(gene, range[0] as number, range[1] as number);
      }
  }
  try {
    const config = b.build();
    return problems.list.length === before ? config : undefined;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) problems.add(`${f}.${p.field.replace(/^generationInterval$/, 'generationIntervalMs')}`, p.problem);
    return undefined;
  }
}

export interface Persisted {
  snapshot: EvolutionSnapshot;
  generation: number;
  applied: Genome | null;
}

/** The generation and the settings in force of a container that evolves, for `state`. */
export function evolutionStatus(rec: ContainerRecord): Record<string, string> {
  try {
    const p = JSON.parse(fs.readFileSync(join(rec.paths.stateDir, EVOLUTION_FILE), 'utf8')) as Persisted;
    return { [GENERATION_ANNOTATION]: String(p.generation), [APPLIED_ANNOTATION]: JSON.stringify(p.applied) };
  } catch {
    return {};
  }
}


/**
 * Makes sure the resident server of `root` runs, for a container that evolves started by a
 * call that is not the server's own (the Node CLI run directly): one listening on
 * `<root>/oci.sock` is asked to look (a "server-scan" call); else one is started, detached,
 * and picks the container up in its first scan.
 */
export async function ensureResidentServer(root: string, env: NodeJS.ProcessEnv): Promise<void> {
  const sock = join(root, 'oci.sock');
  const alive = await new Promise<boolean>((resolve) => {
    const c = connect(sock);
    c.once('connect', () => {
      c.end(encodeFrame(['run', String(process.pid), '/', '0', 'server-scan']));
      c.resume(); // its answer is read and dropped; the server closes once it has looked
      c.once('close', () => resolve(true));
    });
    // An error, connected or not, is no server to count on: one is started.
    c.once('error', () => resolve(false));
  });
  if (alive) return;
  const child = spawn(process.execPath, [join(import.meta.dirname, 'server.js'), root], { detached: true, stdio: 'ignore', env });
  child.unref();
  // Returns once it listens (Node's start: up to 10 s on a loaded machine), so that the
  // engine's next call finds it rather than starting a second one.
  for (let i = 0; i < 2000; i++) {
    if (await listening(sock)) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

function listening(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(sock);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
