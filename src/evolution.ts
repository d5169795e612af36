/**
 * Evolution: a container tunes its own live-updatable resource settings (the genome) by
 * trying a mutation per generation, measuring it, and keeping what scores better.
 *
 * The search is a (1+1) evolution strategy in log space with per-gene step sizes, mirrored
 * retries and the 1/5 success rule, made robust to noisy measurements by comparing against
 * running means over a small archive of incumbents. See EvolutionEngine for why.
 */
import { EventEmitter } from 'node:events';
import { Problems, RuntimeError } from './errors.js';
import { Personality, evolutionParameters } from './personality/index.js';

/** Gene name → value. Known genes: cpuLimit (cores), memoryLimit (bytes), cpuWeight (1..10000). */
export type Genome = Record<string, number>;

// ---------------------------------------------------------------------------------------
// Mutation rate

/**
 * The mutation step size: the standard deviation of one gene's change per generation, in
 * log units for log-scale genes (0.1 ≈ ±10 %) and as a fraction of the bounds' width for
 * linear ones. `fixed(r)` keeps it at r; `Adaptive` starts from the personality's initial
 * step size and follows the 1/5 success rule.
 */
export class MutationRate {
  static readonly Adaptive: MutationRate = new MutationRate('adaptive', undefined);

  static fixed(rate: number): MutationRate {
    return new MutationRate('fixed', rate);
  }

  private constructor(
    readonly kind: 'adaptive' | 'fixed',
    readonly rate: number | undefined,
  ) {}

  /** Why the rate is unusable, or undefined when it is fine. */
  problem(): string | undefined {
    if (this.kind === 'adaptive') return undefined;
    const r = this.rate;
    if (typeof r !== 'number' || !Number.isFinite(r) || r <= 0 || r > 1) {
      return `expected a fixed rate in (0, 1], got ${JSON.stringify(r)}`;
    }
    return undefined;
  }

  toJSON(): { kind: 'adaptive' | 'fixed'; rate?: number } {
    return this.kind === 'adaptive' ? { kind: 'adaptive' } : { kind: 'fixed', rate: this.rate! };
  }

  static fromJSON(json: { kind: string; rate?: number }): MutationRate {
    return json?.kind === 'fixed' ? MutationRate.fixed(Number(json.rate)) : MutationRate.Adaptive;
  }

  toString(): string {
    return this.kind === 'adaptive' ? 'Adaptive' : `fixed(${this.rate})`;
  }
}

// ---------------------------------------------------------------------------------------
// Genes

export interface GeneBounds {
  min: number;
  max: number;
  /**
   * 'log' (default when min > 0): mutations multiply, which suits quantities whose useful
   * range spans orders of magnitude. 'linear': mutations add a fraction of max − min.
   */
  scale?: 'log' | 'linear';
  /** Round proposals to integers (default for memoryLimit, cpuWeight and pidsLimit). */
  integer?: boolean;
}

interface GeneSpec {
  name: string;
  min: number;
  max: number;
  log: boolean;
  integer: boolean;
  lo: number; // bounds in search coordinates
  hi: number;
}

const INTEGER_GENES = new Set(['memoryLimit', 'cpuWeight', 'pidsLimit']);
/** The genes a container evolves when the configuration names none. */
export const DEFAULT_GENES = ['cpuLimit', 'memoryLimit', 'cpuWeight'] as const;

function specOf(name: string, b: GeneBounds): GeneSpec {
  const log = (b.scale ?? (b.min > 0 ? 'log' : 'linear')) === 'log';
  return {
    name,
    min: b.min,
    max: b.max,
    log,
    integer: b.integer ?? INTEGER_GENES.has(name),
    lo: log ? Math.log(b.min) : 0,
    hi: log ? Math.log(b.max) : 1,
  };
}

/** Genes the kernel rejects or misbehaves on at zero, and cpu.weight's own range. */
const POSITIVE_GENES = new Set(['cpuLimit', 'memoryLimit', 'cpuWeight', 'pidsLimit']);
const CPU_WEIGHT_MIN = 1;
const CPU_WEIGHT_MAX = 10_000;

function boundsProblem(name: string, b: GeneBounds | undefined): string | undefined {
  if (!b || typeof b !== 'object') return 'expected { min, max }';
  const { min, max, scale } = b;
  if (typeof min !== 'number' || typeof max !== 'number' || !Number.isFinite(min) || !Number.isFinite(max)) {
    return `expected finite min and max, got min=${JSON.stringify(min)} max=${JSON.stringify(max)}`;
  }
  if (!(min < max)) return `expected min < max, got min=${min} max=${max}`;
  if (POSITIVE_GENES.has(name) && !(min > 0)) return `${name} needs min > 0, got ${min}`;
  if (name === 'cpuWeight' && (min < CPU_WEIGHT_MIN || max > CPU_WEIGHT_MAX)) {
    return `cpuWeight must stay within [${CPU_WEIGHT_MIN}, ${CPU_WEIGHT_MAX}], got [${min}, ${max}]`;
  }
  if (scale !== undefined && scale !== 'log' && scale !== 'linear') return `expected scale "log" or "linear", got ${JSON.stringify(scale)}`;
  if ((scale ?? (min > 0 ? 'log' : 'linear')) === 'log' && !(min > 0)) return `a log-scale gene needs min > 0, got ${min}`;
  if (b.integer && Math.ceil(min) > Math.floor(max)) return `no integer lies in [${min}, ${max}]`;
  return undefined;
}

function toCoord(g: GeneSpec, v: number): number {
  if (g.log && !(v > 0)) return g.lo;
  const c = g.log ? Math.log(v) : (v - g.min) / (g.max - g.min);
  return Math.min(g.hi, Math.max(g.lo, c));
}

function fromCoord(g: GeneSpec, c: number, exact?: number): number {
  let v = exact ?? (g.log ? Math.exp(c) : g.min + c * (g.max - g.min));
  if (g.integer) v = Math.round(v);
  // Rounding and exp() may step just outside the bounds; the bounds are a promise.
  const lo = g.integer ? Math.ceil(g.min) : g.min;
  const hi = g.integer ? Math.floor(g.max) : g.max;
  return Math.min(hi, Math.max(lo, v));
}

/**
 * Bounds for the default genes when the configuration sets none: a quarter to four times
 * the value the container starts with, so an unconfigured search cannot run away.
 */
export function defaultBounds(initial: Genome): Record<string, GeneBounds> {
  const out: Record<string, GeneBounds> = {};
  const c = initial.cpuLimit;
  if (typeof c === 'number' && c > 0) out.cpuLimit = { min: Math.max(0.01, c / 4), max: Math.max(0.02, c * 4) };
  const m = initial.memoryLimit;
  if (typeof m === 'number' && m > 0) out.memoryLimit = { min: Math.max(4 * 1024 * 1024, Math.floor(m / 4)), max: Math.max(8 * 1024 * 1024, m * 4) };
  const w = initial.cpuWeight;
  if (typeof w === 'number' && w > 0) out.cpuWeight = { min: Math.max(1, Math.floor(w / 4)), max: Math.min(10_000, Math.max(2, w * 4)) };
  return out;
}

// ---------------------------------------------------------------------------------------
// Random numbers

/**
 * xoshiro128** seeded through splitmix32: small, fast, and its whole state is four 32-bit
 * words, so a snapshot resumes the exact sequence.
 */
class Random {
  private constructor(private readonly s: Uint32Array) {}

  static fromSeed(seed: number): Random {
    let a = seed >>> 0;
    const s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      a = (a + 0x9e3779b9) >>> 0;
      let t = a ^ (a >>> 16);
      t = Math.imul(t, 0x21f0aaad);
      t ^= t >>> 15;
      t = Math.imul(t, 0x735a2d97);
      t ^= t >>> 15;
      s[i] = t >>> 0;
    }
    if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
    return new Random(s);
  }

  static fromState(state: readonly number[]): Random {
    return new Random(Uint32Array.from(state));
  }

  state(): number[] {
    return Array.from(this.s);
  }

  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Standard normal (Box–Muller; the second value is dropped to keep the state small). */
  gaussian(): number {
    const u = (this.nextUint32() + 1) / 4294967297; // (0, 1): log(0) must not happen
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// ---------------------------------------------------------------------------------------
// Engine

export type GenerationKind = 'baseline' | 'remeasure' | 'trial';

export interface GenerationRecord {
  /** 1 for the first generation. */
  generation: number;
  /** baseline: the starting genome's first measurement; remeasure: the incumbent again; trial: a mutation. */
  kind: GenerationKind;
  genome: Genome;
  /** null when the generation failed. */
  fitness: number | null;
  /** A trial that became the new best genome. */
  accepted: boolean;
  best: Genome;
  /** Running mean of the best genome's recent measurements. */
  bestFitness: number | null;
  /** Geometric mean of the genes' step sizes after this generation. */
  stepSize: number;
  /** Estimated relative measurement noise (standard deviation / mean), once known. */
  noise: number | null;
  error?: string;
}

interface ArchiveEntry {
  id: number;
  x: number[];
  genome: Genome;
  fitness: number[];
  measuredAt: number;
}

interface Pending {
  kind: GenerationKind;
  genome: Genome;
  entryId: number; // the measured entry, or the parent of a trial
  x: number[];
  step: number[] | null;
  mirrored: boolean;
}

export interface EngineSnapshot {
  version: 1;
  genes: Array<{ name: string } & Required<GeneBounds>>;
  mutationRate: { kind: 'adaptive' | 'fixed'; rate?: number };
  trialRate: number;
  maxGenerations: number | null;
  historyLimit: number;
  rng: number[];
  sigma: number[];
  archive: ArchiveEntry[];
  nextId: number;
  pending: Pending | null;
  mirror: { parentId: number; step: number[] } | null;
  credit: number;
  noise: { sum: number; weight: number };
  generation: number;
  trials: number;
  successes: number;
  failures: number;
  successRate: number;
  history: GenerationRecord[];
}

export interface EngineState {
  generation: number;
  finished: boolean;
  /** The genome awaiting a report, if any. */
  current: Genome | null;
  best: Genome;
  bestFitness: number | null;
  stepSizes: Record<string, number>;
  successRate: number;
  noise: number | null;
  trials: number;
  successes: number;
  failures: number;
  history: readonly GenerationRecord[];
}

export interface EvolutionEngineOptions {
  genes: Record<string, GeneBounds>;
  /** The genome to start from; values outside the bounds are clamped into them. */
  initial: Genome;
  /** Default: Adaptive. */
  mutationRate?: MutationRate;
  /** Step size to start an Adaptive search with; default from the personality. */
  initialStepSize?: number;
  /** Share of noisy generations that try a mutation; default from the personality. */
  trialRate?: number;
  /** Supplies initialStepSize and trialRate when they are not given. Default: Balanced. */
  personality?: Personality;
  seed?: number;
  maxGenerations?: number;
  /** How many generation records to keep (and persist). Default 32. */
  historyLimit?: number;
}

/** Incumbents kept with their running means; a lucky newcomer falls back behind them. */
const ARCHIVE_SIZE = 4;
/** Measurements per incumbent in its running mean; older ones age out so drift shows. */
const MEASUREMENT_WINDOW = 8;
/** Relative noise below which measurements count as exact and re-measuring is skipped. */
const NOISE_FLOOR = 0.002;
/** In exact mode, re-measure an incumbent this many generations old, to notice drift. */
const STALE_AFTER = 25;
/** Memory of the noise estimate, in measurements. */
const NOISE_DECAY = 0.95;
/** Chance that a trial mutates a given gene (at least one always mutates). */
const GENE_MUTATION_PROBABILITY = 0.5;
/** Step growth on success; the shrink on failure is its fourth root, which settles the success rate at 1/5. */
const STEP_UP = Math.exp(0.4);
const STEP_DOWN = Math.exp(-0.1);
const MIN_STEP = 0.001;
const MAX_STEP = 1;

const mean = (a: readonly number[]): number => {
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
};

function sameGenome(a: Genome | null | undefined, b: Genome | null | undefined): boolean {
  if (!a || !b) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

function copyEntry(e: ArchiveEntry): ArchiveEntry {
  return { id: e.id, x: e.x.slice(), genome: { ...e.genome }, fitness: e.fitness.slice(), measuredAt: e.measuredAt };
}

function copyPending(p: Pending): Pending {
  return { kind: p.kind, genome: { ...p.genome }, entryId: p.entryId, x: p.x.slice(), step: p.step && p.step.slice(), mirrored: p.mirrored };
}

function freezeRecord(r: GenerationRecord): GenerationRecord {
  Object.freeze(r.genome);
  Object.freeze(r.best);
  return Object.freeze(r);
}

function validSeed(seed: unknown): boolean {
  return typeof seed === 'number' && Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff;
}

/**
 * A seedable, container-free search over genomes: `propose()` the genome to measure next,
 * `report()` its measured fitness (higher is better), repeat.
 *
 * Why it is built this way:
 * - Live measurements are noisy, and a plain (1+1)-ES keeps whichever parent got the
 *   luckiest measurement, then random-walks downhill as lucky children beat it. Here every
 *   incumbent's fitness is the running mean of its measurements; a newcomer is re-measured
 *   before anything is built on it, the best is re-measured between trials, and the best is
 *   always the archive member with the highest mean, so a lucky newcomer whose mean falls
 *   hands the lead back to the genome it displaced.
 * - Whether measurements are noisy is measured, not assumed: the first incumbent is
 *   measured twice, and exact measurements skip re-measuring entirely.
 * - Step sizes are per gene and a trial mutates about half the genes, since CPU and memory
 *   have very different sensitivities; a failed step is retried mirrored, which on a smooth
 *   landscape often succeeds.
 */
export class EvolutionEngine {
  private readonly genes: GeneSpec[];
  private readonly mutation: MutationRate;
  private readonly trialRate: number;
  private readonly maxGenerations: number | undefined;
  private readonly historyLimit: number;
  private rng: Random;
  private sigma: number[];
  private archive: ArchiveEntry[];
  private nextId: number;
  private pending: Pending | null = null;
  private mirror: { parentId: number; step: number[] } | null = null;
  private credit = 0;
  private noiseSum = 0;
  private noiseWeight = 0;
  private generation = 0;
  private trials = 0;
  private successes = 0;
  private failures = 0;
  private successRate = 0.2;
  private history: GenerationRecord[] = [];

  constructor(options: EvolutionEngineOptions) {
    const problems = new Problems();
    const genes: GeneSpec[] = [];
    const entries = Object.entries(options?.genes ?? {});
    if (entries.length === 0) problems.add('genes', 'expected at least one gene with bounds');
    for (const [name, b] of entries) {
      const p = boundsProblem(name, b);
      if (p) problems.add(`bounds.${name}`, p);
      else genes.push(specOf(name, b));
      const v = options.initial?.[name];
      if (typeof v !== 'number' || !Number.isFinite(v)) problems.add(`initial.${name}`, `expected a finite number, got ${JSON.stringify(v)}`);
    }
    const mutation = options.mutationRate ?? MutationRate.Adaptive;
    const mp = mutation instanceof MutationRate ? mutation.problem() : 'expected MutationRate.Adaptive or MutationRate.fixed(r)';
    if (mp) problems.add('mutationRate', mp);
    const fromPersonality = evolutionParameters(options.personality ?? Personality.Balanced);
    const step = options.initialStepSize ?? fromPersonality.initialStepSize;
    if (!(step > 0 && step <= MAX_STEP)) problems.add('initialStepSize', `expected a number in (0, 1], got ${JSON.stringify(step)}`);
    const trialRate = options.trialRate ?? fromPersonality.trialRate;
    if (!(trialRate > 0 && trialRate <= 1)) problems.add('trialRate', `expected a number in (0, 1], got ${JSON.stringify(trialRate)}`);
    const seed = options.seed ?? 0x5eed;
    if (!validSeed(seed)) problems.add('seed', `expected an integer in [0, 2^32), got ${JSON.stringify(seed)}`);
    const maxG = options.maxGenerations;
    if (maxG !== undefined && !(Number.isInteger(maxG) && maxG > 0)) problems.add('maxGenerations', `expected a positive integer, got ${JSON.stringify(maxG)}`);
    const historyLimit = options.historyLimit ?? 32;
    if (!(Number.isInteger(historyLimit) && historyLimit >= 0)) problems.add('historyLimit', `expected a non-negative integer, got ${JSON.stringify(historyLimit)}`);
    problems.throwIfAny('invalid evolution configuration');

    this.genes = genes;
    this.mutation = mutation;
    this.trialRate = trialRate;
    this.maxGenerations = maxG;
    this.historyLimit = historyLimit;
    this.rng = Random.fromSeed(seed);
    this.sigma = genes.map(() => (mutation.kind === 'fixed' ? mutation.rate! : step));
    const x = genes.map((g) => toCoord(g, options.initial[g.name]!));
    // The start keeps its exact values (exp(log(v)) need not give v back), so the first
    // proposal matches the settings in force and needs no update.
    const start: Genome = {};
    genes.forEach((g, i) => (start[g.name] = fromCoord(g, x[i]!, options.initial[g.name])));
    this.archive = [{ id: 0, x, genome: start, fitness: [], measuredAt: 0 }];
    this.nextId = 1;
  }

  /** Resumes exactly where `snapshot()` left off: the same proposals follow the same reports. */
  static restore(snapshot: EngineSnapshot): EvolutionEngine {
    if (snapshot?.version !== 1 || !Array.isArray(snapshot.genes) || !Array.isArray(snapshot.archive) || snapshot.archive.length === 0) {
      throw new RuntimeError('unsupported evolution snapshot', { code: 'EINVAL' });
    }
    const genes: Record<string, GeneBounds> = {};
    for (const g of snapshot.genes) genes[g.name] = { min: g.min, max: g.max, scale: g.scale, integer: g.integer };
    const e = new EvolutionEngine({
      genes,
      initial: snapshot.archive[0]!.genome,
      mutationRate: MutationRate.fromJSON(snapshot.mutationRate),
      trialRate: snapshot.trialRate,
      maxGenerations: snapshot.maxGenerations ?? undefined,
      historyLimit: snapshot.historyLimit,
    });
    e.rng = Random.fromState(snapshot.rng);
    e.sigma = snapshot.sigma.slice();
    e.archive = snapshot.archive.map(copyEntry);
    e.nextId = snapshot.nextId;
    e.pending = snapshot.pending && copyPending(snapshot.pending);
    e.mirror = snapshot.mirror && { parentId: snapshot.mirror.parentId, step: snapshot.mirror.step.slice() };
    e.credit = snapshot.credit;
    e.noiseSum = snapshot.noise.sum;
    e.noiseWeight = snapshot.noise.weight;
    e.generation = snapshot.generation;
    e.trials = snapshot.trials;
    e.successes = snapshot.successes;
    e.failures = snapshot.failures;
    e.successRate = snapshot.successRate;
    e.history = snapshot.history.map((r) => freezeRecord({ ...r, genome: { ...r.genome }, best: { ...r.best } }));
    return e;
  }

  get finished(): boolean {
    return this.maxGenerations !== undefined && this.generation >= this.maxGenerations;
  }

  get geneNames(): string[] {
    return this.genes.map((g) => g.name);
  }

  /**
   * The genome to measure next. Calling it again before reporting returns the same genome;
   * once the generation limit is reached it returns the best genome, which needs no report.
   */
  propose(): Genome {
    if (this.finished) return { ...this.leader().genome };
    if (!this.pending) this.pending = this.decide();
    return { ...this.pending.genome };
  }

  private decide(): Pending {
    const L = this.leader();
    const remeasure = (kind: GenerationKind): Pending => ({ kind, genome: L.genome, entryId: L.id, x: L.x, step: null, mirrored: false });
    if (L.fitness.length === 0) return remeasure('baseline');
    const noise = this.noise();
    if (noise === null) return remeasure('remeasure');
    if (noise > NOISE_FLOOR) {
      if (L.fitness.length < 2) return remeasure('remeasure');
      this.credit += this.trialRate;
      if (this.credit < 1) return remeasure('remeasure');
      this.credit -= 1;
    } else if (this.generation - L.measuredAt >= STALE_AFTER) {
      return remeasure('remeasure');
    }
    return this.trial(L);
  }

  private trial(L: ArchiveEntry): Pending {
    let step: number[];
    let mirrored = false;
    if (this.mirror && this.mirror.parentId === L.id) {
      step = this.mirror.step.map((v) => -v);
      mirrored = true;
      this.mirror = null;
    } else {
      this.mirror = null;
      const n = this.genes.length;
      const mask = this.genes.map(() => n === 1 || this.rng.uniform() < GENE_MUTATION_PROBABILITY);
      if (!mask.includes(true)) mask[Math.min(n - 1, Math.floor(this.rng.uniform() * n))] = true;
      step = mask.map((m, i) => (m ? this.sigma[i]! * this.rng.gaussian() : 0));
    }
    const x = L.x.map((v, i) => Math.min(this.genes[i]!.hi, Math.max(this.genes[i]!.lo, v + step[i]!)));
    return { kind: 'trial', genome: this.genomeOf(x), entryId: L.id, x, step, mirrored };
  }

  /** Records the measured fitness (higher is better) of the genome `propose()` returned. */
  report(genome: Genome, fitness: number): GenerationRecord {
    const p = this.checkPending(genome);
    if (typeof fitness !== 'number' || !Number.isFinite(fitness)) {
      return this.reportFailure(genome, `fitness is not a finite number: ${String(fitness)}`);
    }
    this.generation++;
    let accepted = false;
    if (p.kind === 'trial') {
      this.trials++;
      const parent = this.entry(p.entryId);
      const success = parent === undefined || parent.fitness.length === 0 || fitness > mean(parent.fitness);
      if (success) {
        accepted = true;
        this.successes++;
        this.archive.push({ id: this.nextId++, x: p.x, genome: p.genome, fitness: [fitness], measuredAt: this.generation });
        if (this.archive.length > ARCHIVE_SIZE) this.evictWorst(this.archive.length - 1);
        this.mirror = null;
      } else if (!p.mirrored && p.step) {
        this.mirror = { parentId: p.entryId, step: p.step };
      }
      this.adapt(p, success);
    } else {
      const e = this.entry(p.entryId);
      if (e) {
        if (e.fitness.length > 0) this.observeNoise(e.fitness, fitness);
        e.fitness.push(fitness);
        if (e.fitness.length > MEASUREMENT_WINDOW) e.fitness.shift();
        e.measuredAt = this.generation;
      }
    }
    this.pending = null;
    return this.record(p, fitness, accepted);
  }

  /**
   * Records that the proposed genome could not be measured (the update was refused, the
   * fitness function threw). A failed trial counts as an unsuccessful one.
   */
  reportFailure(genome: Genome, reason: string): GenerationRecord {
    const p = this.checkPending(genome);
    this.generation++;
    this.failures++;
    if (p.kind === 'trial') {
      this.trials++;
      this.adapt(p, false);
      if (!p.mirrored && p.step) this.mirror = { parentId: p.entryId, step: p.step };
    }
    this.pending = null;
    return this.record(p, null, false, reason);
  }

  private checkPending(genome: Genome): Pending {
    if (this.finished) throw new RuntimeError('evolution has reached its generation limit', { code: 'ESTATE' });
    const p = this.pending;
    if (!p) throw new RuntimeError('no genome has been proposed; call propose() first', { code: 'ESTATE' });
    if (!sameGenome(p.genome, genome)) {
      throw new RuntimeError(`reported genome ${JSON.stringify(genome)} is not the proposed ${JSON.stringify(p.genome)}`, { code: 'EINVAL' });
    }
    return p;
  }

  private adapt(p: Pending, success: boolean): void {
    this.successRate = 0.9 * this.successRate + 0.1 * (success ? 1 : 0);
    if (this.mutation.kind !== 'adaptive' || !p.step) return;
    const f = success ? STEP_UP : STEP_DOWN;
    for (let i = 0; i < this.sigma.length; i++) {
      if (p.step[i] !== 0) this.sigma[i] = Math.min(MAX_STEP, Math.max(MIN_STEP, this.sigma[i]! * f));
    }
  }

  /**
   * The residual of a new measurement against the entry's earlier mean has variance
   * σ²(1 + 1/n); scaling by n/(n+1) makes each contribution an unbiased estimate of σ².
   */
  private observeNoise(previous: readonly number[], v: number): void {
    const n = previous.length;
    const m = mean(previous);
    const scale = Math.abs(m) > 0 ? Math.abs(m) : Math.abs(v);
    const r = scale > 0 ? (v - m) / scale : 0;
    this.noiseSum = NOISE_DECAY * this.noiseSum + (r * r * n) / (n + 1);
    this.noiseWeight = NOISE_DECAY * this.noiseWeight + 1;
  }

  private noise(): number | null {
    return this.noiseWeight > 0 ? Math.sqrt(this.noiseSum / this.noiseWeight) : null;
  }

  private evictWorst(keepIndex: number): void {
    let worst = -1;
    for (let i = 0; i < this.archive.length; i++) {
      if (i === keepIndex) continue;
      const e = this.archive[i]!;
      if (worst < 0 || this.score(e) < this.score(this.archive[worst]!)) worst = i;
    }
    if (worst >= 0) this.archive.splice(worst, 1);
  }

  private score(e: ArchiveEntry): number {
    return e.fitness.length === 0 ? Number.NEGATIVE_INFINITY : mean(e.fitness);
  }

  private leader(): ArchiveEntry {
    let best = this.archive[0]!;
    let bestScore = this.score(best);
    for (let i = 1; i < this.archive.length; i++) {
      const s = this.score(this.archive[i]!);
      if (s > bestScore) {
        best = this.archive[i]!;
        bestScore = s;
      }
    }
    return best;
  }

  private entry(id: number): ArchiveEntry | undefined {
    return this.archive.find((e) => e.id === id);
  }

  private genomeOf(x: readonly number[]): Genome {
    const g: Genome = {};
    for (let i = 0; i < this.genes.length; i++) g[this.genes[i]!.name] = fromCoord(this.genes[i]!, x[i]!);
    return g;
  }

  private stepSize(): number {
    let s = 0;
    for (const v of this.sigma) s += Math.log(v);
    return Math.exp(s / this.sigma.length);
  }

  private record(p: Pending, fitness: number | null, accepted: boolean, error?: string): GenerationRecord {
    const L = this.leader();
    const rec: GenerationRecord = {
      generation: this.generation,
      kind: p.kind,
      genome: { ...p.genome },
      fitness,
      accepted,
      best: { ...L.genome },
      bestFitness: L.fitness.length > 0 ? mean(L.fitness) : null,
      stepSize: this.stepSize(),
      noise: this.noise(),
    };
    if (error !== undefined) rec.error = error;
    freezeRecord(rec);
    if (this.historyLimit > 0) {
      this.history.push(rec);
      if (this.history.length > this.historyLimit) this.history.shift();
    }
    return rec;
  }

  /** The best genome so far: the incumbent with the highest running-mean fitness. */
  best(): { genome: Genome; fitness: number | null } {
    const L = this.leader();
    return { genome: { ...L.genome }, fitness: L.fitness.length > 0 ? mean(L.fitness) : null };
  }

  state(): EngineState {
    const L = this.leader();
    const stepSizes: Record<string, number> = {};
    this.genes.forEach((g, i) => (stepSizes[g.name] = this.sigma[i]!));
    return {
      generation: this.generation,
      finished: this.finished,
      current: this.pending ? { ...this.pending.genome } : null,
      best: { ...L.genome },
      bestFitness: L.fitness.length > 0 ? mean(L.fitness) : null,
      stepSizes,
      successRate: this.successRate,
      noise: this.noise(),
      trials: this.trials,
      successes: this.successes,
      failures: this.failures,
      history: this.history.slice(),
    };
  }

  /**
   * Everything needed to resume; plain data, safe for JSON. Generation records are frozen,
   * so they are shared rather than copied: a snapshot per generation stays cheap.
   * `history` caps how many of the newest records it carries (default: all kept); the
   * records are for people, resuming does not need them.
   */
  snapshot(options: { history?: number } = {}): EngineSnapshot {
    const keep = options.history ?? this.history.length;
    return {
      version: 1,
      genes: this.genes.map((g) => ({ name: g.name, min: g.min, max: g.max, scale: g.log ? 'log' : 'linear', integer: g.integer })),
      mutationRate: this.mutation.toJSON(),
      trialRate: this.trialRate,
      maxGenerations: this.maxGenerations ?? null,
      historyLimit: this.historyLimit,
      rng: this.rng.state(),
      sigma: this.sigma.slice(),
      archive: this.archive.map(copyEntry),
      nextId: this.nextId,
      pending: this.pending && copyPending(this.pending),
      mirror: this.mirror && { parentId: this.mirror.parentId, step: this.mirror.step.slice() },
      credit: this.credit,
      noise: { sum: this.noiseSum, weight: this.noiseWeight },
      generation: this.generation,
      trials: this.trials,
      successes: this.successes,
      failures: this.failures,
      successRate: this.successRate,
      history: keep > 0 ? this.history.slice(-keep) : [],
    };
  }
}

// ---------------------------------------------------------------------------------------
// Metrics

/** What a fitness function sees about one generation's interval. */
export interface EvolutionMetrics {
  /** The workload's own work counter per second when it reports one, else CPU-seconds used per second. */
  throughput: number;
  /** Average cores used over the interval. */
  cpuUsageCores: number;
  /** Cores allowed during the interval. */
  cpuLimit: number;
  memoryBytes: number;
  memoryLimit: number;
  /** Normalised cost of the allocation: cpuLimit / reference cores + memoryLimit / reference bytes. */
  resourceUsage: number;
  intervalMs: number;
  custom?: Record<string, number>;
}

export type FitnessFunction = (metrics: EvolutionMetrics) => number;

/** Two consecutive readings of a container's counters, from which metricsBetween() derives a generation's metrics. */
export interface StatsReading {
  timestampMs: number;
  /** Cumulative CPU time used (cgroup cpu.stat usage_usec). */
  cpuUsageUsec: number;
  memoryBytes: number;
  /** Cumulative count of the workload's own unit of work, when it reports one. */
  workDone?: number;
  custom?: Record<string, number>;
}

export interface ResourceReference {
  /** Cores that cost 1. Default 1. */
  cpu?: number;
  /** Bytes that cost 1. Default 1 GiB. */
  memory?: number;
}

/** The allocation's cost in reference units, so fitness = throughput / resourceUsage is work per unit of resources. */
export function resourceCost(cpuLimit: number, memoryLimit: number, reference: ResourceReference = {}): number {
  return cpuLimit / (reference.cpu ?? 1) + memoryLimit / (reference.memory ?? 1024 ** 3);
}

export function metricsBetween(
  prev: StatsReading,
  cur: StatsReading,
  settings: { cpuLimit: number; memoryLimit: number },
  reference: ResourceReference = {},
): EvolutionMetrics {
  const intervalMs = cur.timestampMs - prev.timestampMs;
  const seconds = intervalMs / 1000;
  const cpuUsageCores = seconds > 0 ? Math.max(0, cur.cpuUsageUsec - prev.cpuUsageUsec) / 1e6 / seconds : 0;
  const work = cur.workDone !== undefined && prev.workDone !== undefined ? cur.workDone - prev.workDone : undefined;
  const throughput = work !== undefined ? (seconds > 0 ? work / seconds : 0) : cpuUsageCores;
  const m: EvolutionMetrics = {
    throughput,
    cpuUsageCores,
    cpuLimit: settings.cpuLimit,
    memoryBytes: cur.memoryBytes,
    memoryLimit: settings.memoryLimit,
    resourceUsage: resourceCost(settings.cpuLimit, settings.memoryLimit, reference),
    intervalMs,
  };
  if (cur.custom) m.custom = { ...cur.custom };
  return m;
}

/** Work per unit of allocated resources: what a container should maximise unless told otherwise. */
export const defaultFitness: FitnessFunction = (m) => (m.resourceUsage > 0 ? m.throughput / m.resourceUsage : 0);

// ---------------------------------------------------------------------------------------
// Configuration

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

// ---------------------------------------------------------------------------------------
// Controller

/** What the controller drives: a container, or anything with settings and metrics. */
export interface EvolutionTarget {
  /** Applies settings (a whole genome). Rejects when they cannot be applied. */
  update(settings: Record<string, number>): Promise<void>;
  /** Metrics for the time since the previous sample() call. */
  sample(): Promise<EvolutionMetrics>;
}

export interface EvolutionTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
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
   * How many of the newest generation records the persisted snapshots carry. Default 8:
   * the records make up most of a snapshot's size and none of what resuming needs.
   */
  persistedHistory?: number;
  /** Default: a shared coalescingTimers grid (250 ms, finer for sub-second intervals), unref'd so evolution never keeps a process alive. */
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

/**
 * Timers that fire on a shared grid of `granularityMs`: every callback due near the same
 * grid point runs from one wake-up. A hundred controllers each on its own 1-second timer
 * wake the process a hundred times a second, and on a small host those wake-ups alone cost
 * more than the evolution they drive. Due times are rounded to the nearest grid point (not
 * up), so a periodic timer keeps its period instead of drifting by a grid step each time.
 * The timers are unref'd: evolution never keeps a process alive.
 */
export function coalescingTimers(granularityMs = 250): EvolutionTimers {
  const slots = new Map<number, { timer: NodeJS.Timeout; fns: Set<() => void> }>();
  const fire = (due: number) => {
    const slot = slots.get(due);
    slots.delete(due);
    if (!slot) return;
    // One throwing callback must not cancel the others that share its wake-up; its error
    // still surfaces, as it would from a timer of its own.
    for (const fn of slot.fns) {
      try {
        fn();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  };
  return {
    setTimeout(fn, ms) {
      const now = Date.now();
      let due = Math.round((now + ms) / granularityMs) * granularityMs;
      if (due <= now) due += granularityMs;
      let slot = slots.get(due);
      if (!slot) {
        const timer = setTimeout(() => fire(due), due - now);
        timer.unref?.();
        slot = { timer, fns: new Set() };
        slots.set(due, slot);
      }
      slot.fns.add(fn);
      return { due, fn };
    },
    clearTimeout(handle) {
      const { due, fn } = handle as { due: number; fn: () => void };
      const slot = slots.get(due);
      if (!slot) return;
      slot.fns.delete(fn);
      if (slot.fns.size === 0) {
        clearTimeout(slot.timer);
        slots.delete(due);
      }
    },
  };
}

const sharedGrids = new Map<number, EvolutionTimers>();

/** The shared grid for an interval: 250 ms, or finer for intervals under a second so they keep their length. */
function defaultTimers(intervalMs: number): EvolutionTimers {
  const granularity = Math.max(1, Math.min(250, Math.floor(intervalMs / 4)));
  let t = sharedGrids.get(granularity);
  if (!t) {
    t = coalescingTimers(granularity);
    sharedGrids.set(granularity, t);
  }
  return t;
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
