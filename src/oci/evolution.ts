/**
 * The evolution of the OCI containers that ask for it (evolution-annotation.ts), run by the
 * resident server of their root: one controller per running container, its proposals
 * applied to the container's cgroups, its state written after every generation and
 * resumed from when a server starts again.
 */
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Problems } from '../errors.js';
import { EvolutionController, type EvolutionSnapshot } from '../evolution/controller.js';
import { metricsBetween, type StatsReading } from '../evolution/metrics.js';
import type { Resources } from '../isolation/resources.js';
import { Personality } from '../personality/personality.js';
import { asSetting, startingGenome } from '../container/evolve.js';
import type { ContainerRecord } from '../state.js';
import { asksToEvolve, EVOLUTION_ANNOTATION, EVOLUTION_FILE, evolutionAnnotation, type Persisted } from './evolution-annotation.js';
import { OciRuntime } from './runtime.js';

/** What metricsBetween measures against where the container has no limit. */
const NO_LIMIT = { cpuLimit: availableParallelism(), memoryLimit: 1024 ** 3 };
const GENES = new Set(['cpuLimit', 'memoryLimit', 'cpuWeight']);

interface Evolving {
  controller: EvolutionController;
  runtime: OciRuntime;
}

/** The evolving containers of one root, run by its resident server. */
export class OciEvolution {
  private readonly evolving = new Map<string, Evolving>();
  /** Containers whose evolution ran its maxGenerations: not started again while they run. */
  private readonly finished = new Set<string>();
  private readonly runtimes = new Map<string, OciRuntime>();
  private scanning: Promise<void> | undefined;
  /** The last generation failures, by container (the server's stdio goes nowhere). */
  readonly errors = new Map<string, string>();

  constructor(
    private readonly root: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  get active(): number {
    return this.evolving.size;
  }

  private runtimeFor(cgroupParent: string | undefined): OciRuntime {
    const key = cgroupParent ?? '';
    let rt = this.runtimes.get(key);
    if (!rt) {
      rt = new OciRuntime(this.root, cgroupParent ? { ...this.env, STRATOSWARM_CGROUP_PARENT: cgroupParent } : this.env);
      this.runtimes.set(key, rt);
    }
    return rt;
  }

  /** Starts evolving each running container that asks and is not evolving yet; stops those no longer running. */
  scan(): Promise<void> {
    this.scanning ??= this.scanOnce().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const base = this.runtimeFor(undefined);
    const seen = new Set<string>();
    for (const id of base.parts.state.ids()) {
      let rec: ContainerRecord;
      try {
        rec = base.parts.state.load(id);
      } catch {
        continue; // removed meanwhile
      }
      const d = (rec.config as { oci?: ReturnType<typeof OciRuntime.data> } | undefined)?.oci;
      if (!d || !asksToEvolve(d.annotations)) continue;
      const value = d.annotations[EVOLUTION_ANNOTATION]!;
      const rt = this.runtimeFor(d.cgroupParent);
      if (rt.status(rec) !== 'running') continue;
      seen.add(id);
      if (this.evolving.has(id) || this.finished.has(id)) continue;
      try {
        this.start(rt, rec, value, d.personality);
      } catch (e) {
        this.errors.set(id, (e as Error).message);
      }
    }
    for (const id of this.finished) if (!seen.has(id)) this.finished.delete(id);
    await this.stopUnless((id) => seen.has(id));
  }

  /** Stops evolving the containers that no longer run (their init exited, or they were paused or deleted). */
  async prune(): Promise<void> {
    await this.stopUnless((id, ev) => {
      try {
        return ev.runtime.status(ev.runtime.parts.state.load(id)) === 'running';
      } catch {
        return false; // deleted
      }
    });
  }

  private async stopUnless(running: (id: string, ev: Evolving) => boolean): Promise<void> {
    for (const [id, ev] of this.evolving) {
      if (running(id, ev)) continue;
      this.evolving.delete(id);
      await ev.controller.stop({ settle: false }).catch(() => undefined);
    }
  }

  private start(rt: OciRuntime, rec: ContainerRecord, value: string, personality: string | undefined): void {
    const problems = new Problems();
    const config = evolutionAnnotation(value, problems);
    if (!config) throw new Error(problems.list.map((p) => `${p.field}: ${p.problem}`).join('; '));
    const id = rec.id;
    const file = join(rec.paths.stateDir, EVOLUTION_FILE);
    const resources = (): Resources => (rt.parts.state.load(id).resources ?? {}) as Resources;
    // UNLIMITED (Infinity) is no setting to start from: the default stands in, as for a library container.
    const now = Object.fromEntries(Object.entries(resources()).filter(([, v]) => typeof v !== 'number' || Number.isFinite(v)));
    const initial = startingGenome(now, config);
    let snapshot: EvolutionSnapshot | undefined;
    try {
      snapshot = (JSON.parse(fs.readFileSync(file, 'utf8')) as Persisted).snapshot;
    } catch {
      // a first start
    }
    let prev: StatsReading | undefined;
    const read = (): StatsReading => {
      const u = rt.parts.cgroups.usage(id);
      const r: StatsReading = { timestampMs: Date.now(), cpuUsageUsec: u.cpuNs / 1000, memoryBytes: u.memoryBytes };
      try {
        r.oomKills = rt.parts.cgroups.oomKills(id);
      } catch {
        // not counted on this host
      }
      return r;
    };
    const controller = new EvolutionController(
      {
        update: async (settings) => {
          const had = resources();
          const change: Resources = {};
          for (const [k, v] of Object.entries(settings)) if (GENES.has(k)) (change as Record<string, number>)[k] = asSetting(k, v);
          // The bundle's CFS period stays; memory+swap moves with memory, as the engine set them apart.
          if (change.cpuLimit !== undefined && had.cpuPeriod !== undefined) change.cpuPeriod = had.cpuPeriod;
          if (change.memoryLimit !== undefined && had.memorySwap !== undefined && had.memoryLimit !== undefined) {
            change.memorySwap = Math.max(change.memoryLimit, had.memorySwap + (change.memoryLimit - had.memoryLimit));
          }
          rt.parts.cgroups.update(id, change);
          const cur = rt.parts.state.load(id);
          cur.resources = { ...(cur.resources as Resources | undefined), ...change };
          rt.parts.state.save(cur);
        },
        sample: async () => {
          const cur = read();
          const last = prev ?? cur;
          prev = cur;
          const r = resources();
          return metricsBetween(last, cur, { cpuLimit: r.cpuLimit ?? NO_LIMIT.cpuLimit, memoryLimit: r.memoryLimit ?? NO_LIMIT.memoryLimit });
        },
      },
      config,
      {
        initial,
        ...(personality ? { personality: Personality.byName(personality) } : {}),
        ...(snapshot ? { snapshot } : {}),
        persist: (s) => {
          const state = controller.state();
          const out: Persisted = { snapshot: s, generation: state.generation, applied: state.applied };
          fs.writeFileSync(`${file}.tmp`, JSON.stringify(out));
          fs.renameSync(`${file}.tmp`, file);
        },
      },
    );
    controller.on('error', (e: Error) => this.errors.set(id, e.message));
    controller.on('finished', () => {
      if (this.evolving.get(id)?.controller !== controller) return;
      this.evolving.delete(id);
      this.finished.add(id);
    });
    this.evolving.set(id, { controller, runtime: rt });
    controller.start();
  }

  /** Stops every controller (their state is kept: a later server resumes them). */
  async close(): Promise<void> {
    const all = [...this.evolving.values()];
    this.evolving.clear();
    await Promise.all(all.map((e) => e.controller.stop({ settle: false }).catch(() => undefined)));
  }
}
