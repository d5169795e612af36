/**
 * The search is a (1+1) evolution strategy in log space with per-gene step sizes, mirrored
 * retries and the 1/5 success rule, made robust to noisy measurements by comparing against
 * running means over a small archive of incumbents. See EvolutionEngine for why.
 */
import { Problems, RuntimeError } from '../errors.js';
import { Personality } from '../personality/personality.js';
import { evolutionParameters } from '../personality/evolution-parameters.js';
import {
  ARCHIVE_SIZE, GENE_MUTATION_PROBABILITY, MEASUREMENT_WINDOW, NOISE_DECAY, NOISE_FLOOR, STALE_AFTER, STEP_DOWN, STEP_UP,
  copyEntry, copyPending, entry, evictWorst, freezeRecord, leader, mean, sameGenome,
} from './archive.js';
import { boundsProblem, fromCoord, specOf, toCoord, type GeneBounds, type GeneSpec, type Genome } from './genes.js';
import { Plateau, isTie } from './plateau.js';
import { Random, validSeed } from './random.js';
import { MAX_STEP, MIN_STEP, MutationRate } from './rate.js';
import type { ArchiveEntry, EngineSnapshot, EngineState, GenerationKind, GenerationRecord, Pending } from './records.js';

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
 * - A trial that measures the same as its parent (equal, both zero, within noise) is a tie,
 *   not a failure; a run of ties is a plateau, on which the step widens and every gene moves
 *   (plateau.ts), so a start where nothing within reach scores differently still escapes.
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
  private plateau = new Plateau();
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
    e.plateau = Plateau.from(snapshot.plateau);
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
    if (this.finished) return { ...leader(this.archive).genome };
    if (!this.pending) this.pending = this.decide();
    return { ...this.pending.genome };
  }

  private decide(): Pending {
    const L = leader(this.archive);
    const remeasure = (kind: GenerationKind): Pending => ({ kind, genome: L.genome, entryId: L.id, x: L.x, step: null, mirrored: false });
    if (L.fitness.length === 0) return remeasure('baseline');
    if (this.plateau.resting()) return remeasure('remeasure');
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
    const flat = this.plateau.flat;
    const from = (flat && this.plateau.center) || L.x;
    if (this.mirror && this.mirror.parentId === L.id && !flat) {
      step = this.mirror.step.map((v) => -v);
      mirrored = true;
      this.mirror = null;
    } else {
      this.mirror = null;
      const n = this.genes.length;
      const all = n === 1 || flat;
      const mask = this.genes.map(() => all || this.rng.uniform() < GENE_MUTATION_PROBABILITY);
      if (!mask.includes(true)) mask[Math.min(n - 1, Math.floor(this.rng.uniform() * n))] = true;
      step = mask.map((m, i) => (m ? this.sigma[i]! * this.rng.gaussian() : 0));
    }
    const x = from.map((v, i) => Math.min(this.genes[i]!.hi, Math.max(this.genes[i]!.lo, v + step[i]!)));
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
      const parent = entry(this.archive, p.entryId);
      const measured = parent !== undefined && parent.fitness.length > 0;
      const success = !measured || fitness > mean(parent.fitness);
      const tie = !success && isTie(fitness, mean(parent!.fitness), parent!.fitness.length, this.noise());
      if (success) {
        accepted = true;
        this.successes++;
        this.archive.push({ id: this.nextId++, x: p.x, genome: p.genome, fitness: [fitness], measuredAt: this.generation });
        if (this.archive.length > ARCHIVE_SIZE) evictWorst(this.archive, this.archive.length - 1);
        this.mirror = null;
      } else if (!p.mirrored && p.step) {
        this.mirror = { parentId: p.entryId, step: p.step };
      }
      this.adapt(p, success ? 'success' : tie ? 'tie' : 'failure');
      if (this.plateau.flat) this.mirror = null;
    } else {
      const e = entry(this.archive, p.entryId);
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
      this.adapt(p, 'error');
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

  /** The 1/5 rule, except on a plateau (see plateau.ts); an error says nothing about the landscape. */
  private adapt(p: Pending, outcome: 'success' | 'failure' | 'tie' | 'error'): void {
    const success = outcome === 'success';
    this.successRate = 0.9 * this.successRate + 0.1 * (success ? 1 : 0);
    const adaptive = this.mutation.kind === 'adaptive';
    if (outcome === 'tie' && this.plateau.tie(this.sigma, this.genes, adaptive, p.x)) return;
    if (outcome === 'success' || outcome === 'failure') this.plateau.distinguished(this.sigma, success);
    if (!adaptive || !p.step) return;
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
    const L = leader(this.archive);
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
    const L = leader(this.archive);
    return { genome: { ...L.genome }, fitness: L.fitness.length > 0 ? mean(L.fitness) : null };
  }

  state(): EngineState {
    const L = leader(this.archive);
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
      plateau: this.plateau.state(),
      history: keep > 0 ? this.history.slice(-keep) : [],
    };
  }
}
