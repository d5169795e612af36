import { Problems } from '../errors.js';
import { boundsProblem, defaultBounds, type GeneBounds, type Genome } from './genes.js';
import { defaultFitness, type FitnessFunction } from './metrics.js';
import { validSeed } from './random.js';
import { MAX_STEP, MutationRate } from './rate.js';

/** The runtime options evolution takes its defaults from (STRATOSWARM_EVOLUTION_*). */
export interface EvolutionDefaults {
  evolutionEnabled: boolean;
  /** The fixed mutation step size used when a configuration names no mutation rate. */
  evolutionRate: number;
}

export const DEFAULT_GENERATION_INTERVAL_MS = 30_000;
const MIN_GENERATION_INTERVAL_MS = 10;

export class EvolutionConfig {
  readonly enabled: boolean;
  readonly mutationRate: MutationRate;
  readonly fitnessFunction: FitnessFunction;
  readonly generationIntervalMs: number;
  /** Bounds per gene; genes without bounds get defaultBounds() of the starting genome. */
  readonly bounds: Readonly<Record<string, Readonly<GeneBounds>>>;
  readonly maxGenerations: number | undefined;
  readonly seed: number | undefined;
  readonly initialStepSize: number | undefined;
  readonly trialRate: number | undefined;
  readonly historyLimit: number | undefined;

  /** @internal Use EvolutionConfig.builder(). */
  constructor(fields: Omit<EvolutionConfig, 'genes'>) {
    this.enabled = fields.enabled;
    this.mutationRate = fields.mutationRate;
    this.fitnessFunction = fields.fitnessFunction;
    this.generationIntervalMs = fields.generationIntervalMs;
    this.bounds = Object.freeze({ ...fields.bounds });
    this.maxGenerations = fields.maxGenerations;
    this.seed = fields.seed;
    this.initialStepSize = fields.initialStepSize;
    this.trialRate = fields.trialRate;
    this.historyLimit = fields.historyLimit;
    Object.freeze(this);
  }

  /**
   * A builder. `defaults` are the resolved runtime options: `evolutionEnabled` sets whether
   * the configuration is enabled and `evolutionRate` the mutation rate, unless set here.
   */
  static builder(defaults?: EvolutionDefaults): EvolutionConfigBuilder {
    return new EvolutionConfigBuilder(defaults);
  }

  /** The configuration the runtime options alone give. */
  static fromDefaults(defaults?: EvolutionDefaults): EvolutionConfig {
    return new EvolutionConfigBuilder(defaults).build();
  }

  /** The genes to evolve from a starting genome: configured bounds first, then defaults. */
  genes(initial: Genome): Record<string, GeneBounds> {
    const out: Record<string, GeneBounds> = {};
    const configured = Object.keys(this.bounds);
    if (configured.length > 0) {
      for (const name of configured) out[name] = { ...this.bounds[name]! };
      return out;
    }
    return defaultBounds(initial);
  }
}

export class EvolutionConfigBuilder {
  private _enabled: boolean | undefined;
  private _mutationRate: MutationRate | undefined;
  private _fitness: FitnessFunction | undefined;
  private _interval: number | undefined;
  private readonly _bounds: Record<string, GeneBounds> = {};
  private _maxGenerations: number | undefined;
  private _seed: number | undefined;
  private _initialStepSize: number | undefined;
  private _trialRate: number | undefined;
  private _historyLimit: number | undefined;

  constructor(private readonly defaults?: EvolutionDefaults) {}

  enabled(on = true): this {
    this._enabled = on;
    return this;
  }

  mutationRate(rate: MutationRate): this {
    this._mutationRate = rate;
    return this;
  }

  /** Higher is better. Default: throughput / resourceUsage. */
  fitnessFunction(fn: FitnessFunction): this {
    this._fitness = fn;
    return this;
  }

  generationInterval(ms: number): this {
    this._interval = ms;
    return this;
  }

  bounds(gene: string, min: number, max: number, options: Pick<GeneBounds, 'scale' | 'integer'> = {}): this {
    this._bounds[gene] = { min, max, ...options };
    return this;
  }

  maxGenerations(n: number): this {
    this._maxGenerations = n;
    return this;
  }

  seed(n: number): this {
    this._seed = n;
    return this;
  }

  /** Overrides the personality's initial step size (Adaptive only). */
  initialStepSize(s: number): this {
    this._initialStepSize = s;
    return this;
  }

  /** Overrides the personality's trial rate. */
  trialRate(r: number): this {
    this._trialRate = r;
    return this;
  }

  historyLimit(n: number): this {
    this._historyLimit = n;
    return this;
  }

  /** Throws a ConfigError (from Problems) naming every invalid field. */
  build(): EvolutionConfig {
    const problems = new Problems();
    const d = this.defaults;
    if (d !== undefined) {
      if (typeof d.evolutionEnabled !== 'boolean') problems.add('evolutionEnabled', `expected a boolean, got ${JSON.stringify(d.evolutionEnabled)}`);
      if (this._mutationRate === undefined && !(d.evolutionRate > 0 && d.evolutionRate <= 1)) {
        problems.add('evolutionRate', `expected a number in (0, 1], got ${JSON.stringify(d.evolutionRate)}`);
      }
    }
    const mutationRate = this._mutationRate ?? (d && d.evolutionRate > 0 && d.evolutionRate <= 1 ? MutationRate.fixed(d.evolutionRate) : MutationRate.Adaptive);
    const mp = mutationRate instanceof MutationRate ? mutationRate.problem() : 'expected MutationRate.Adaptive or MutationRate.fixed(r)';
    if (mp) problems.add('mutationRate', mp);
    if (this._fitness !== undefined && typeof this._fitness !== 'function') problems.add('fitnessFunction', 'expected a function (metrics) => number');
    const interval = this._interval ?? DEFAULT_GENERATION_INTERVAL_MS;
    if (typeof interval !== 'number' || !Number.isFinite(interval) || interval < MIN_GENERATION_INTERVAL_MS) {
      problems.add('generationInterval', `expected at least ${MIN_GENERATION_INTERVAL_MS} ms, got ${JSON.stringify(interval)}`);
    }
    for (const [gene, b] of Object.entries(this._bounds)) {
      const p = boundsProblem(gene, b);
      if (p) problems.add(`bounds.${gene}`, p);
    }
    const maxG = this._maxGenerations;
    if (maxG !== undefined && !(Number.isInteger(maxG) && maxG > 0)) problems.add('maxGenerations', `expected a positive integer, got ${JSON.stringify(maxG)}`);
    if (this._seed !== undefined && !validSeed(this._seed)) problems.add('seed', `expected an integer in [0, 2^32), got ${JSON.stringify(this._seed)}`);
    const step = this._initialStepSize;
    if (step !== undefined && !(step > 0 && step <= MAX_STEP)) problems.add('initialStepSize', `expected a number in (0, 1], got ${JSON.stringify(step)}`);
    const tr = this._trialRate;
    if (tr !== undefined && !(tr > 0 && tr <= 1)) problems.add('trialRate', `expected a number in (0, 1], got ${JSON.stringify(tr)}`);
    const hl = this._historyLimit;
    if (hl !== undefined && !(Number.isInteger(hl) && hl >= 0)) problems.add('historyLimit', `expected a non-negative integer, got ${JSON.stringify(hl)}`);
    problems.throwIfAny('invalid evolution configuration');
    return new EvolutionConfig({
      enabled: this._enabled ?? d?.evolutionEnabled ?? true,
      mutationRate,
      fitnessFunction: this._fitness ?? defaultFitness,
      generationIntervalMs: interval,
      bounds: this._bounds,
      maxGenerations: maxG,
      seed: this._seed,
      initialStepSize: step,
      trialRate: tr,
      historyLimit: hl,
    });
  }
}
