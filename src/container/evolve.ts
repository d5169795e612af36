/**
 * Evolution on a container: the controller measures the settings in force from the
 * container's cgroups and applies each proposal as a live resource update.
 */
import { availableParallelism } from 'node:os';
import { RuntimeError } from '../errors.js';
import type { EvolutionConfig } from '../evolution/config.js';
import { EvolutionController, type EvolutionSnapshot, type EvolutionState } from '../evolution/controller.js';
import type { Genome } from '../evolution/genes.js';
import { metricsBetween, type StatsReading } from '../evolution/metrics.js';
import type { GenerationRecord } from '../evolution/records.js';
import { isLive, resourcesOf, type ContainerContext } from './context.js';
import type { EvolutionOptions, ResourceUpdate } from './types.js';

/** How often an evolving container's state file is rewritten at most. */
export const PERSIST_EVERY_MS = 60_000;

export interface EvolutionHooks {
  /** Applies a proposal (serialized with the container's other operations). */
  update(change: ResourceUpdate): Promise<void>;
}

/** The genes to evolve and where they start: the bounds' genes, or the live-updatable settings in force. */
function initialGenome(ctx: ContainerContext, config: EvolutionConfig): Genome {
  const current = resourcesOf(ctx);
  const wanted = Object.keys(config.bounds).length > 0 ? Object.keys(config.bounds) : ['cpuLimit', 'cpuWeight', ...(current.memoryLimit ? ['memoryLimit'] : [])];
  const defaults: Genome = { cpuLimit: availableParallelism(), cpuWeight: 100, memoryLimit: current.memoryLimit ?? 1024 ** 3 };
  const initial: Genome = {};
  for (const g of wanted) {
    const v = (current as Record<string, unknown>)[g];
    initial[g] = typeof v === 'number' ? v : (defaults[g] ?? 0);
  }
  return initial;
}

export function evolutionController(ctx: ContainerContext, config: EvolutionConfig, opts: EvolutionOptions, hooks: EvolutionHooks): EvolutionController {
  const { rec, parts } = ctx;
  const persisted = rec.evolution as { snapshot?: EvolutionSnapshot } | undefined;
  const initial = initialGenome(ctx, config);
  let lastSave = 0;
  let prev: StatsReading | undefined;
  const read = async (): Promise<StatsReading> => {
    const u = parts.cgroups.usage(rec.id);
    const reading: StatsReading = { timestampMs: Date.now(), cpuUsageUsec: u.cpuNs / 1000, memoryBytes: u.memoryBytes };
    if (opts.workDone) reading.workDone = await opts.workDone();
    return reading;
  };
  const controller = new EvolutionController(
    {
      update: async (settings) => {
        const change: ResourceUpdate = {};
        for (const [k, v] of Object.entries(settings as Record<string, number>)) {
          (change as Record<string, number>)[k] = k === 'cpuLimit' ? Math.max(0.01, Math.round(v * 1000) / 1000) : Math.round(v);
        }
        await hooks.update(change);
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
      snapshot: opts.restart ? undefined : persisted?.snapshot,
      persist: (snapshot) => {
        // Every generation updates the record; the file is written at most once a minute
        // (and when evolution stops): a host restart loses at most that much progress,
        // and a hundred containers on 1-second generations do not write 100 files a second.
        rec.evolution = { snapshot, enabled: true };
        const now = Date.now();
        if (rec.state !== 'removed' && now - lastSave >= PERSIST_EVERY_MS) {
          lastSave = now;
          parts.state.save(rec);
        }
      },
    },
  );
  ctx.log.info({ initial, resumed: !!persisted?.snapshot && !opts.restart }, 'evolution enabled');
  return controller;
}

export interface EvolutionEvents {
  generation(record: GenerationRecord): void;
  error(err: Error): void;
}

/** One container's evolution: at most one controller, started, stopped and persisted here. */
export class ContainerEvolution {
  private controller: EvolutionController | undefined;

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
    const controller = evolutionController(this.ctx, config, opts, this.hooks);
    controller.on('generation', (record) => this.hooks.generation(record));
    controller.on('error', (err: Error) => {
      this.ctx.log.warn({ err }, 'evolution generation failed');
      this.hooks.error(err);
    });
    this.controller = controller;
    controller.start();
  }

  /** Stops evolving; `settle` puts the best settings found in force. */
  async disable(opts: { settle?: boolean } = {}): Promise<void> {
    const c = this.controller;
    if (!c) return;
    this.controller = undefined;
    const { rec, parts } = this.ctx;
    await c.stop({ settle: (opts.settle ?? true) && isLive(rec.state) });
    if (rec.state !== 'removed') {
      rec.evolution = { ...(rec.evolution as object), snapshot: c.snapshot(), enabled: false };
      parts.state.save(rec);
    }
  }

  /** The container exited: nothing left to evolve or settle. */
  abandon(): void {
    const c = this.controller;
    this.controller = undefined;
    void c?.stop({ settle: false });
  }

  state(): EvolutionState | undefined {
    return this.controller?.state();
  }
}
