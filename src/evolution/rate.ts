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

/** The range an adaptive step size stays in; a configured initial step size must lie in (0, MAX_STEP]. */
export const MIN_STEP = 0.001;
export const MAX_STEP = 1;
