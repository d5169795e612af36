/**
 * Flat regions. The 1/5 rule shrinks the step after every failed trial, which is right on a
 * slope and fatal on a plateau: where every genome within reach scores the same (a workload
 * that does nothing measurable until it gets enough memory, a fitness that is zero until a
 * deadline can be met, a throughput counter that moves in whole units), every trial "fails"
 * by a tie and the step shrinks to nothing around a point that is no better than any other.
 *
 * So a trial whose measurement does not distinguish it from its parent (equal, both zero, or
 * within a fraction of the measured noise) is a tie, not a loss. After PLATEAU_TRIALS ties in
 * a row the region counts as flat: each further tie widens every gene's step (up to a quarter of
 * the gene's range), trials mutate every gene at once, and they start from the last tied
 * trial rather than the best (a random walk across the flat region: from a corner of the
 * bounds half of all wide steps would only clamp back onto the bounds). The best genome
 * stays what it was: on the plateau nothing is better than it. The first trial that beats its
 * parent again ends the plateau and the step returns to what it was when the plateau began,
 * the scale the landscape had before.
 *
 * A region that stays flat across the whole range (an idle container: no throughput whatever
 * its limits) must not have its limits thrown about every generation for ever: past
 * REST_AFTER ties the engine rests between bold moves, re-measuring the best instead (which
 * changes no setting), one generation more every eight ties, up to MAX_REST.
 */
import type { GeneSpec } from './genes.js';
import { MAX_STEP } from './rate.js';

/** Ties in a row after which the region counts as flat. */
export const PLATEAU_TRIALS = 3;
/** Step growth per tie on a plateau: ×2.7 every two ties. */
export const PLATEAU_WIDEN = Math.exp(0.5);
/**
 * A trial within this many standard deviations of the measured noise of its parent's mean
 * is a tie. Small on purpose: near a noisy optimum most failures are within noise, and they
 * must keep shrinking the step; three ties in a row at 0.5 σ happen by chance about once in
 * 150 trials there.
 */
export const TIE_SIGMAS = 0.5;
/** Ties in a row after which the engine rests between trials; by then the step has reached its cap. */
export const REST_AFTER = 64;
/** The longest rest between two trials on a plateau, in generations. */
export const MAX_REST = 7;
/** Relative difference below which two exact measurements are equal (rounding of derived metrics). */
export const EXACT_TIE = 1e-9;

export interface PlateauState {
  /** Ties in a row. */
  streak: number;
  /** The step sizes when the plateau began; null when not on one. */
  base: number[] | null;
  /** Generations to re-measure the best before the next trial. */
  rest?: number;
  /** Where the next trial on the plateau starts, in search coordinates. */
  center?: number[] | null;
}

/** Whether a trial's fitness `f` is indistinguishable from its parent's mean of `n` measurements. */
export function isTie(f: number, parentMean: number, n: number, noise: number | null): boolean {
  const scale = Math.max(Math.abs(parentMean), Math.abs(f));
  const within = Math.max(EXACT_TIE, TIE_SIGMAS * (noise ?? 0) * Math.sqrt(1 + 1 / Math.max(1, n)));
  return Math.abs(f - parentMean) <= scale * within;
}

/** The widest step a plateau may grow a gene's to: a quarter of its range in search coordinates (wider steps mostly clamp onto the bounds), at least MAX_STEP. */
export function plateauCap(g: GeneSpec): number {
  return Math.max(MAX_STEP, (g.hi - g.lo) / 4);
}

export class Plateau {
  streak = 0;
  base: number[] | null = null;
  rest = 0;
  center: number[] | null = null;

  static from(s: PlateauState | undefined): Plateau {
    const p = new Plateau();
    if (s) {
      p.streak = s.streak;
      p.base = s.base && s.base.slice();
      p.rest = s.rest ?? 0;
      p.center = s.center ? s.center.slice() : null;
    }
    return p;
  }

  /** Trials on a plateau mutate every gene: a bold move, not a nudge of one. */
  get flat(): boolean {
    return this.streak >= PLATEAU_TRIALS;
  }

  /**
   * Adapts `sigma` in place for a tie of the trial at `x` (`widen` false: a fixed mutation rate, which only gets
   * the bolder moves). Returns false when the streak is still short of a plateau: the tie
   * then counts as an ordinary failure.
   */
  tie(sigma: number[], genes: readonly GeneSpec[], widen: boolean, x: readonly number[]): boolean {
    this.streak++;
    if (!this.flat) return false;
    this.center = x.slice();
    if (this.streak > REST_AFTER) this.rest = Math.min(MAX_REST, Math.ceil((this.streak - REST_AFTER) / 8));
    if (!widen) return true;
    this.base ??= sigma.slice();
    for (let i = 0; i < sigma.length; i++) sigma[i] = Math.min(plateauCap(genes[i]!), sigma[i]! * PLATEAU_WIDEN);
    return true;
  }

  /**
   * A trial that distinguished itself from its parent. A success that ends a plateau puts
   * the step back where it was before the plateau, so the search does not overshoot the
   * region it just found with the steps that crossed the flat one.
   */
  distinguished(sigma: number[], success: boolean): void {
    this.streak = 0;
    this.rest = 0;
    this.center = null;
    if (!this.base) return;
    if (success) {
      for (let i = 0; i < sigma.length; i++) sigma[i] = Math.min(sigma[i]!, this.base[i]!);
      this.base = null;
    } else if (sigma.every((s, i) => s <= this.base![i]!)) {
      this.base = null;
    }
  }

  /** Whether this generation rests (re-measures the best) instead of trying a bold move. */
  resting(): boolean {
    if (this.rest === 0) return false;
    this.rest--;
    return true;
  }

  state(): PlateauState {
    return { streak: this.streak, base: this.base && this.base.slice(), rest: this.rest, center: this.center && this.center.slice() };
  }
}
