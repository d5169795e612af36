/**
 * Evolution on a container: the controller measures the settings in force from the
 * container's cgroups and applies each proposal as a live resource update.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import type { EvolutionConfig } from '../evolution/config.js';
import { EvolutionController, type EvolutionSnapshot, type EvolutionState } from '../evolution/controller.js';
import type { Genome } from '../evolution/genes.js';
import { COMPACT_AFTER, EvolutionJournal, JOURNAL_FILE, replayJournal } from '../evolution/journal.js';
import { metricsBetween, type StatsReading } from '../evolution/metrics.js';
import type { GenerationRecord } from '../evolution/records.js';
import { isLive, resourcesOf, type ContainerContext } from './context.js';
import { leaseCounters, type CounterLease } from './counters.js';
import { validSettingsBox } from './resources.js';
import type { EvolutionOptions, ResourceUpdate } from './types.js';

/** Generation records the state file carries (the journal carries every generation since). */
const PERSISTED_HISTORY = 8;

export interface EvolutionHooks {
  /** Applies a proposal (serialized with the container's other operations); `validated`: known valid. */
  update(change: ResourceUpdate, validated: boolean): Promise<void>;
  /** Settings no proposal goes below (what autoscale grew a limit to), by gene; live, read each generation. */
  floors?: Record<string, number>;
}

const NOT_VALIDATED = Symbol('not validated');
const NO_GENES: ReadonlySet<string> = new Set();

/** A gene's value as the setting written: whole bytes and weights, cores to 1/1000. */
export const asSetting = (gene: string, v: number): number => (gene === 'cpuLimit' ? Math.max(0.01, Math.round(v * 1000) / 1000) : Math.round(v));

/** The genes to evolve and where they start: the bounds' genes, or the live-updatable settings in force. */
function initialGenome(ctx: ContainerContext, config: EvolutionConfig): Genome {
  return startingGenome(resourcesOf(ctx), config);
}

/** initialGenome from the settings in force `current` (a library container's, or an OCI one's cgroup settings). */
export function startingGenome(current: { memoryLimit?: number | undefined }, config: EvolutionConfig): Genome {
  const wanted = Object.keys(config.bounds).length > 0 ? Object.keys(config.bounds) : ['cpuLimit', 'cpuWeight', ...(current.memoryLimit ? ['memoryLimit'] : [])];
  const defaults: Genome = { cpuLimit: availableParallelism(), cpuWeight: 100, memoryLimit: current.memoryLimit ?? 1024 ** 3 };
  const initial: Genome = {};
  for (const g of wanted) {
    const v = (current as Record<string, unknown>)[g];
    initial[g] = typeof v === 'number' ? v : (defaults[g] ?? 0);
  }
  return initial;
}

/** A container's controller and what it holds open: its counter files and its journal. */
export interface ContainerEvolutionParts {
  controller: EvolutionController;
  /** Writes the whole state to the container's state file and empties the journal. */
  compact(): void;
  close(): void;
}

export function evolutionController(ctx: ContainerContext, config: EvolutionConfig, opts: EvolutionOptions, hooks: EvolutionHooks): ContainerEvolutionParts {
  const { rec, parts } = ctx;
  const persisted = rec.evolution as { snapshot?: EvolutionSnapshot } | undefined;
  const initial = initialGenome(ctx, config);
  const journalPath = join(rec.paths.stateDir, JOURNAL_FILE);
  // The state file holds the state at the last compaction; the journal every generation since.
  let snapshot = opts.restart ? undefined : persisted?.snapshot;
  const replayed = snapshot && replayJournal(journalPath, snapshot.engine);
  if (replayed) snapshot = { version: 1, engine: replayed.engine, applied: replayed.applied };
  let counters: CounterLease | undefined;
  let prev: StatsReading | undefined;
  const read = async (): Promise<StatsReading> => {
    counters ??= leaseCounters(ctx);
    const c = await counters.read();
    const reading: StatsReading = { timestampMs: Date.now(), cpuUsageUsec: c.cpuNs / 1000, memoryBytes: c.memoryBytes };
    if (c.oomKills !== undefined) reading.oomKills = c.oomKills;
    if (c.periods !== undefined && c.throttledPeriods !== undefined) {
      reading.periods = c.periods;
      reading.throttledPeriods = c.throttledPeriods;
    }
    if (opts.workDone) reading.workDone = await opts.workDone();
    return reading;
  };
  const box = Object.entries(config.genes(initial)).map(([name, b]) => ({ name, min: asSetting(name, b.min), max: asSetting(name, b.max) }));
  const boxGenes = new Set(box.map((b) => b.name));
  let boxValidFor: unknown = validSettingsBox(ctx, box) ? rec.resources : NOT_VALIDATED;
  let journal: EvolutionJournal | undefined;
  const floors = hooks.floors ?? {};
  const controller = new EvolutionController(
    {
      update: async (settings) => {
        const change: ResourceUpdate = {};
        let aboveBox = false;
        for (const [k, v] of Object.entries(settings as Record<string, number>)) {
          const floor = floors[k];
          const value = floor !== undefined && floor > v ? floor : asSetting(k, v);
          if (floor !== undefined && floor > v && !(floor <= (box.find((b) => b.name === k)?.max ?? -Infinity))) aboveBox = true;
          (change as Record<string, number>)[k] = value;
        }
        // Validating the whole configuration on every generation was a tenth of evolution's
        // cost: the bounds are checked once instead, and again whenever something other than
        // evolution changed the container's settings (a new rec.resources object).
        if (rec.resources !== boxValidFor) boxValidFor = validSettingsBox(ctx, box) ? rec.resources : NOT_VALIDATED;
        const validated = !aboveBox && rec.resources === boxValidFor && Object.keys(change).every((k) => boxGenes.has(k));
        await hooks.update(change, validated);
        if (validated) boxValidFor = rec.resources;
      },
      sample: async () => {
        const cur = await read();
        const last = prev ?? cur;
        prev = cur;
        const res = resourcesOf(ctx);
        return metricsBetween(last, cur, { cpuLimit: res.cpuLimit ?? availableParallelism(), memoryLimit: res.memoryLimit ?? 1024 ** 3 });
      },
    },
    config,
    {
      initial,
      personality: ctx.config.spec.personality,
      snapshot,
      // A record per generation, no state file: a hundred containers on 1-second generations
      // append a hundred small records a second and rewrite no JSON.
      journal: (entries) => {
        journal!.append(entries);
        if (journal!.records >= COMPACT_AFTER) compact();
      },
    },
  );
  const compact = () => {
    if (rec.state === 'removed') return;
    rec.evolution = { snapshot: controller.snapshot({ history: PERSISTED_HISTORY }), enabled: true };
    parts.state.save(rec);
    journal?.reset();
  };
  journal = EvolutionJournal.create(journalPath, controller.snapshot({ history: 0 }).engine.genes.map((g) => g.name));
  try {
    compact();
  } catch (e) {
    journal.close();
    throw e;
  }
  ctx.log.info({ initial, resumed: !!snapshot, journaled: replayed?.records ?? 0 }, 'evolution enabled');
  return {
    controller,
    compact,
    close: () => {
      counters?.release();
      journal?.close();
    },
  };
}

export interface EvolutionEvents {
  generation(record: GenerationRecord): void;
  error(err: Error): void;
  /** Evolution started on the container, or stopped (not called when the container exits). */
  enabled?(): void;
  disabled?(): void;
}

/** One container's evolution: at most one controller, started, stopped and persisted here. */
export class ContainerEvolution {
  private controller: EvolutionController | undefined;
  private held: ContainerEvolutionParts | undefined;
  private readonly floors: Record<string, number> = {};
  private geneNames: ReadonlySet<string> = NO_GENES;

  constructor(
    private readonly ctx: ContainerContext,
    private readonly hooks: EvolutionHooks & EvolutionEvents,
  ) {}

  get active(): boolean {
    return this.controller !== undefined;
  }

  async enable(config: EvolutionConfig, opts: EvolutionOptions = {}): Promise<void> {
    const { rec } = this.ctx;
    if (rec.state !== 'running' && rec.state !== 'created') {
      throw new RuntimeError(`enable evolution of container ${rec.name}: it is ${rec.state}`, { code: 'ESTATE', step: 'state', containerId: rec.id });
    }
    if (this.controller) await this.disable({ settle: false });
    const held = evolutionController(this.ctx, config, opts, { ...this.hooks, floors: this.floors });
    const controller = held.controller;
    this.held = held;
    controller.on('generation', (record) => this.hooks.generation(record));
    controller.on('error', (err: Error) => {
      this.ctx.log.warn({ err }, 'evolution generation failed');
      this.hooks.error(err);
    });
    this.controller = controller;
    this.geneNames = new Set(controller.snapshot({ history: 0 }).engine.genes.map((g) => g.name));
    controller.start();
    this.hooks.enabled?.();
  }

  /** No proposal for `gene` goes below `value` from now on (undefined: no floor). */
  floor(gene: string, value: number | undefined): void {
    if (value === undefined) delete this.floors[gene];
    else this.floors[gene] = value;
  }

  /** Stops evolving; `settle` puts the best settings found in force. */
  async disable(opts: { settle?: boolean } = {}): Promise<void> {
    const c = this.controller;
    const held = this.held;
    if (!c) return;
    this.controller = undefined;
    this.held = undefined;
    this.hooks.disabled?.();
    for (const k of Object.keys(this.floors)) delete this.floors[k];
    const { rec, parts } = this.ctx;
    try {
      await c.stop({ settle: (opts.settle ?? true) && isLive(rec.state) });
      if (rec.state !== 'removed') {
        rec.evolution = { ...(rec.evolution as object), snapshot: c.snapshot(), enabled: false };
        parts.state.save(rec);
      }
    } finally {
      held?.close();
    }
  }

  /** The container exited: nothing left to evolve or settle. */
  abandon(): void {
    const c = this.controller;
    const held = this.held;
    this.controller = undefined;
    this.held = undefined;
    void c?.stop({ settle: false }).finally(() => held?.close());
  }

  /** The settings the running controller evolves (none when it is off). */
  genes(): ReadonlySet<string> {
    return this.controller ? this.geneNames : NO_GENES;
  }

  state(): EvolutionState | undefined {
    return this.controller?.state();
  }
}
