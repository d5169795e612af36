import { EventEmitter } from 'node:events';
import { RuntimeError } from '../errors.js';
import type { Personality } from '../personality/personality.js';
import { EvolutionConfig } from './config.js';
import { EvolutionEngine, type EvolutionEngineOptions } from './engine.js';
import type { Genome } from './genes.js';
import type { JournalEntry } from './journal.js';
import type { EvolutionMetrics } from './metrics.js';
import type { EngineSnapshot, EngineState, GenerationRecord } from './records.js';
import { defaultTimers, type EvolutionTimers } from './timers.js';

/** What the controller drives: a container, or anything with settings and metrics. */
export interface EvolutionTarget {
  /** Applies settings (a whole genome). Rejects when they cannot be applied. */
  update(settings: Record<string, number>): Promise<void>;
  /** Metrics for the time since the previous sample() call. */
  sample(): Promise<EvolutionMetrics>;
}

export interface EvolutionSnapshot {
  version: 1;
  engine: EngineSnapshot;
  /** The settings in force when the snapshot was taken. */
  applied: Genome | null;
}

export interface EvolutionControllerOptions {
  /** The settings the target runs with now. */
  initial: Genome;
  /** Supplies the initial step size and trial rate the configuration leaves unset. Default: Balanced. */
  personality?: Personality;
  /** Continue from a persisted state (after a host restart) instead of starting over. */
  snapshot?: EvolutionSnapshot;
  /** Called after every generation with the state to store alongside the container. */
  persist?: (snapshot: EvolutionSnapshot) => void | Promise<void>;
  /**
   * Called at the end of every tick that completed a generation, once the next genome is in
   * force: an entry per generation completed (normally one; two when the next update also
   * failed), each with the state after the tick. What a journal appends (journal.ts).
   */
  journal?: (entries: JournalEntry[]) => void;
  /**
   * How many of the newest generation records the persisted snapshots carry. Default 8:
   * the records make up most of a snapshot's size and none of what resuming needs.
   */
  persistedHistory?: number;
  /** Default: the process's one GenerationScheduler (scheduler.ts), unref'd so evolution never keeps a process alive. */
  timers?: EvolutionTimers;
  /** Default: Date.now. */
  now?: () => number;
}

export interface EvolutionState extends EngineState {
  running: boolean;
  /** The settings in force now (null when a revert failed and they are unknown). */
  applied: Genome | null;
  lastError: string | null;
}

/** Whether the settings in force already carry every gene of the genome. */
function inForce(genome: Genome, applied: Genome | null): boolean {
  if (!applied) return false;
  for (const k of Object.keys(genome)) if (applied[k] !== genome[k]) return false;
  return true;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs one generation per interval against a target: samples the interval just ended,
 * reports the measured genome's fitness, then applies the next proposal. Events:
 * 'generation' (GenerationRecord), 'error' (Error; emitted only while someone listens, so
 * a background failure never crashes the host), 'finished' (EvolutionState).
 */
export class EvolutionController extends EventEmitter {
  readonly config: EvolutionConfig;
  private readonly target: EvolutionTarget;
  private readonly engine: EvolutionEngine;
  private readonly persistHook: ((s: EvolutionSnapshot) => void | Promise<void>) | undefined;
  private readonly persistedHistory: number;
  private readonly journalHook: ((entries: JournalEntry[]) => void) | undefined;
  private completedInTick: GenerationRecord[] = [];
  private readonly timers: EvolutionTimers;
  private readonly now: () => number;
  private applied: Genome | null;
  private measuring: Genome | null = null;
  private timer: unknown = undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private active = false;
  private lastError: string | null = null;

  constructor(target: EvolutionTarget, config: EvolutionConfig, options: EvolutionControllerOptions) {
    super();
    if (!(config instanceof EvolutionConfig)) {
      throw new RuntimeError('evolution needs an EvolutionConfig (EvolutionConfig.builder().build())', { code: 'EINVAL' });
    }
    this.target = target;
    this.config = config;
    this.persistHook = options.persist;
    this.persistedHistory = options.persistedHistory ?? 8;
    this.journalHook = options.journal;
    this.timers = options.timers ?? defaultTimers(config.generationIntervalMs);
    this.now = options.now ?? Date.now;
    this.applied = { ...options.initial };
    if (options.snapshot) {
      if (options.snapshot.version !== 1) throw new RuntimeError('unsupported evolution snapshot', { code: 'EINVAL' });
      this.engine = EvolutionEngine.restore(options.snapshot.engine);
    } else {
      const opts: EvolutionEngineOptions = {
        genes: config.genes(options.initial),
        initial: options.initial,
        mutationRate: config.mutationRate,
      };
      if (options.personality) opts.personality = options.personality;
      if (config.initialStepSize !== undefined) opts.initialStepSize = config.initialStepSize;
      if (config.trialRate !== undefined) opts.trialRate = config.trialRate;
      if (config.seed !== undefined) opts.seed = config.seed;
      if (config.maxGenerations !== undefined) opts.maxGenerations = config.maxGenerations;
      if (config.historyLimit !== undefined) opts.historyLimit = config.historyLimit;
      this.engine = new EvolutionEngine(opts);
    }
  }

  get running(): boolean {
    return this.active;
  }

  /** Starts the generation timer; the first tick opens the first measurement window at once. */
  start(): void {
    if (this.active) return;
    this.active = true;
    this.schedule(0);
  }

  /** Stops, waits for a generation in flight, and (unless told not to) applies the best genome. */
  async stop(options: { settle?: boolean } = {}): Promise<void> {
    this.active = false;
    if (this.timer !== undefined) {
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.chain;
    if (options.settle ?? true) await this.enqueue(() => this.settle());
  }

  /**
   * Runs one tick now: the record of the generation it completed (null for the first tick,
   * which only opens a measurement window). For tests and for callers driving their own clock.
   */
  step(): Promise<GenerationRecord | null> {
    return this.enqueue(() => this.tick());
  }

  state(): EvolutionState {
    return { ...this.engine.state(), running: this.active, applied: this.applied && { ...this.applied }, lastError: this.lastError };
  }

  /** The state to persist; `history` as in EvolutionEngine.snapshot() (default: all records kept). */
  snapshot(options: { history?: number } = {}): EvolutionSnapshot {
    return { version: 1, engine: this.engine.snapshot(options), applied: this.applied && { ...this.applied } };
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private schedule(ms: number): void {
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      if (!this.active) return;
      const started = this.now();
      void this.step()
        .catch((err) => this.fail(err))
        .finally(() => {
          if (!this.active) return;
          if (this.engine.finished) {
            void this.finish();
            return;
          }
          this.schedule(Math.max(0, this.config.generationIntervalMs - (this.now() - started)));
        });
    }, ms);
  }

  private async finish(): Promise<void> {
    this.active = false;
    await this.enqueue(() => this.settle()).catch((err) => this.fail(err));
    this.emit('finished', this.state());
  }

  private async tick(): Promise<GenerationRecord | null> {
    this.completedInTick = [];
    try {
      return await this.generation();
    } finally {
      const done = this.completedInTick;
      this.completedInTick = [];
      if (done.length > 0 && this.journalHook) this.writeJournal(done);
    }
  }

  private writeJournal(records: GenerationRecord[]): void {
    const engine = this.engine.snapshot({ history: 0 });
    const applied = this.applied && { ...this.applied };
    try {
      this.journalHook!(records.map((record) => ({ engine, applied, record })));
    } catch (err) {
      this.fail(err);
    }
  }

  private async generation(): Promise<GenerationRecord | null> {
    let metrics: EvolutionMetrics | undefined;
    try {
      metrics = await this.target.sample();
    } catch (err) {
      // Without a sample this interval says nothing; the next window starts clean.
      this.measuring = null;
      this.fail(err);
      return null;
    }
    let record: GenerationRecord | null = null;
    if (this.measuring && !this.engine.finished) {
      const genome = this.measuring;
      this.measuring = null;
      let fitness: number | undefined;
      let failure: string | undefined;
      try {
        fitness = this.config.fitnessFunction(metrics);
      } catch (err) {
        failure = `fitness function threw: ${errorMessage(err)}`;
        this.fail(err);
      }
      record = failure === undefined ? this.engine.report(genome, fitness!) : this.engine.reportFailure(genome, failure);
      await this.completed(record);
    }
    if (this.engine.finished) return record;
    const next = this.engine.propose();
    if (!inForce(next, this.applied)) {
      try {
        await this.target.update(next);
        this.applied = { ...this.applied, ...next };
      } catch (err) {
        const failed = this.engine.reportFailure(next, `update failed: ${errorMessage(err)}`);
        // The update may have applied some settings before failing; re-applying the whole
        // best genome is what guarantees no half-applied genome stays in force.
        await this.revert();
        await this.completed(failed);
        return record ?? failed;
      }
    }
    this.measuring = next;
    return record;
  }

  private async revert(): Promise<void> {
    const best = this.engine.best().genome;
    try {
      await this.target.update(best);
      this.applied = { ...this.applied, ...best };
    } catch (err) {
      this.applied = null;
      this.fail(new RuntimeError(`could not revert to the best genome: ${errorMessage(err)}`, { code: 'EINVAL', cause: err }));
    }
  }

  private async settle(): Promise<void> {
    const best = this.engine.best().genome;
    this.measuring = null;
    if (inForce(best, this.applied)) return;
    try {
      await this.target.update(best);
      this.applied = { ...this.applied, ...best };
    } catch (err) {
      this.fail(err);
    }
  }

  private async completed(record: GenerationRecord): Promise<void> {
    this.completedInTick.push(record);
    this.emit('generation', record);
    if (!this.persistHook) return;
    try {
      await this.persistHook(this.snapshot({ history: this.persistedHistory }));
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.lastError = errorMessage(err);
    if (this.listenerCount('error') > 0) this.emit('error', err instanceof Error ? err : new Error(String(err)));
  }
}
