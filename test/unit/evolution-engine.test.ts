import { describe, expect, it } from 'vitest';
import { ConfigError, RuntimeError } from '../../src/errors.js';
import { EvolutionEngine } from '../../src/evolution/engine.js';
import type { Genome } from '../../src/evolution/genes.js';
import { MutationRate } from '../../src/evolution/rate.js';
import { Personality } from '../../src/personality/index.js';

// ---------------------------------------------------------------------------------------
// The synthetic landscape, in closed form.

/** erf by its Maclaurin series near 0 and a continued fraction for erfc in the tails. */
function erf(x: number): number {
  const sign = Math.sign(x);
  const a = Math.abs(x);
  if (a < 2.5) {
    let sum = a;
    let term = a;
    for (let n = 1; Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return (sign * 2 * sum) / Math.sqrt(Math.PI);
  }
  let f = 0;
  for (let k = 60; k >= 1; k--) f = k / 2 / (a + f);
  return sign * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f));
}
const Phi = (z: number): number => 0.5 * (1 + erf(z / Math.SQRT2));

const SIGMA_D = 0.35;
const MU_D = Math.log(1000) - SIGMA_D ** 2 / 2; // mean 1000 millicores
const SIGMA_M = 0.15;
const MU_M = Math.log(512) - SIGMA_M ** 2 / 2; // mean 512 MiB

/** E[min(D, c)] = E[D; D < c] + c·P(D > c) for a lognormal D. */
function expectedServed(c: number): number {
  const z = (Math.log(c) - MU_D) / SIGMA_D;
  return 1000 * Phi(z - SIGMA_D) + c * (1 - Phi(z));
}
const pMemoryExceeds = (m: number): number => 1 - Phi((Math.log(m) - MU_M) / SIGMA_M);
const landscape = (c: number, m: number): number =>
  (expectedServed(c) * Math.max(0, 1 - 5 * pMemoryExceeds(m))) / (c / 1000 + m / 512);

function findOptimum(): { f: number; c: number; m: number } {
  let best = { f: 0, c: 0, m: 0 };
  for (let c = 500; c <= 3000; c += 2) {
    for (let m = 400; m <= 1500; m += 2) {
      const f = landscape(c, m);
      if (f > best.f) best = { f, c, m };
    }
  }
  for (let c = best.c - 2; c <= best.c + 2; c += 0.05) {
    for (let m = best.m - 2; m <= best.m + 2; m += 0.05) {
      const f = landscape(c, m);
      if (f > best.f) best = { f, c, m };
    }
  }
  return best;
}
const OPT = findOptimum();
const F_STAR = OPT.f;
const Z90 = 1.2815515655446004;
const P90_RECOMMENDER = landscape(Math.exp(MU_D + Z90 * SIGMA_D) * 1.15, Math.exp(MU_M + Z90 * SIGMA_M) * 1.15) / F_STAR;

/** The measurement noise comes from its own stream, so it is the same whatever the engine proposes. */
function noiseSource(seed: number): () => number {
  let x = (Math.imul(seed + 1, 0x9e3779b1) ^ 0x85ebca6b) >>> 0 || 1;
  const u = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
  return () => {
    let a = u();
    while (a <= 1e-12) a = u();
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * u());
  };
}

const LANDSCAPE_GENES = { c: { min: 100, max: 8000 }, m: { min: 64, max: 4096 } };

/** Runs the engine from (2000, 1024) and returns the true fitness of its best genome, as a fraction of F*. */
function runLandscape(seed: number, generations: number, noise: number, personality = Personality.Balanced): number {
  const engine = new EvolutionEngine({ genes: LANDSCAPE_GENES, initial: { c: 2000, m: 1024 }, seed, personality });
  const gauss = noiseSource(seed + 100_000);
  for (let i = 0; i < generations; i++) {
    const g = engine.propose();
    const f = landscape(g.c!, g.m!);
    engine.report(g, noise > 0 ? f * (1 + noise * gauss()) : f);
  }
  const best = engine.best().genome;
  return landscape(best.c!, best.m!) / F_STAR;
}

const quantile = (values: number[], q: number): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(q * (s.length - 1))]!;
};
const SEEDS = Array.from({ length: 200 }, (_, i) => i);

describe('synthetic landscape', () => {
  it('has the stated optimum and reference scores', () => {
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf(-1.5)).toBeCloseTo(-0.9661051464753108, 14);
    expect(erf(3)).toBeCloseTo(0.9999779095030014, 14);
    expect(F_STAR).toBeCloseTo(343.2, 1);
    expect(OPT.c).toBeGreaterThan(1070);
    expect(OPT.c).toBeLessThan(1076);
    expect(OPT.m).toBeGreaterThan(737);
    expect(OPT.m).toBeLessThan(741);
    expect(landscape(2000, 1024) / F_STAR).toBeCloseTo(0.725, 3);
    expect(P90_RECOMMENDER).toBeCloseTo(0.873, 3);
  });
});

describe('EvolutionEngine on the landscape (200 seeds, from (2000, 1024))', () => {
  for (const personality of Personality.presets) {
    it(`${personality.name}: exact measurements reach 0.95·F* within 30 generations in >= 90 % of seeds`, () => {
      const scores = SEEDS.map((s) => runLandscape(s, 30, 0, personality));
      const reached = scores.filter((x) => x >= 0.95).length / scores.length;
      expect(reached).toBeGreaterThanOrEqual(0.9);
    });

    it(`${personality.name}: with 10 % noise, after 100 generations median >= 0.95·F*, p10 >= 0.88·F*, beats p90+15 % in >= 90 %`, () => {
      const scores = SEEDS.map((s) => runLandscape(s, 100, 0.1, personality));
      expect(quantile(scores, 0.5)).toBeGreaterThanOrEqual(0.95);
      expect(quantile(scores, 0.1)).toBeGreaterThanOrEqual(0.88);
      const beats = scores.filter((x) => x > P90_RECOMMENDER).length / scores.length;
      expect(beats).toBeGreaterThanOrEqual(0.9);
    });
  }

  it('a fixed mutation rate also climbs from the 2x allocation', () => {
    const scores = SEEDS.slice(0, 50).map((seed) => {
      const e = new EvolutionEngine({ genes: LANDSCAPE_GENES, initial: { c: 2000, m: 1024 }, seed, mutationRate: MutationRate.fixed(0.1) });
      for (let i = 0; i < 60; i++) {
        const g = e.propose();
        e.report(g, landscape(g.c!, g.m!));
      }
      expect(Object.values(e.state().stepSizes)).toEqual([0.1, 0.1]);
      const b = e.best().genome;
      return landscape(b.c!, b.m!) / F_STAR;
    });
    expect(quantile(scores, 0.5)).toBeGreaterThan(0.95);
  });
});

describe('EvolutionEngine', () => {
  const genes = { cpuLimit: { min: 0.1, max: 8 }, memoryLimit: { min: 64 * 2 ** 20, max: 8 * 2 ** 30 }, cpuWeight: { min: 1, max: 10_000 } };
  const initial = { cpuLimit: 2, memoryLimit: 2 ** 30, cpuWeight: 100 };
  /** A smooth, noisy function of all three genes, so runs exercise every branch. */
  const fitnessOf = (g: Genome, k: number): number =>
    (100 - (Math.log(g.cpuLimit!) - 0.3) ** 2 * 40 - (Math.log2(g.memoryLimit! / 2 ** 29) * 5) ** 2 - Math.log(g.cpuWeight! / 300) ** 2) *
    (1 + 0.05 * Math.sin(k * 12.9898));

  it('is deterministic for a seed and differs between seeds', () => {
    const trace = (seed: number) => {
      const e = new EvolutionEngine({ genes, initial, seed });
      const out: Genome[] = [];
      for (let k = 0; k < 40; k++) {
        const g = e.propose();
        out.push(g);
        e.report(g, fitnessOf(g, k));
      }
      return out;
    };
    expect(trace(7)).toEqual(trace(7));
    expect(trace(7)).not.toEqual(trace(8));
  });

  it('propose() is idempotent until reported, and the first generation measures the start', () => {
    const e = new EvolutionEngine({ genes, initial, seed: 1 });
    const a = e.propose();
    expect(e.propose()).toEqual(a);
    expect(a).toEqual(initial);
    const rec = e.report(a, 50);
    expect(rec).toMatchObject({ generation: 1, kind: 'baseline', fitness: 50, accepted: false, best: initial, bestFitness: 50 });
  });

  it('restores from a JSON snapshot and continues identically', () => {
    const a = new EvolutionEngine({ genes, initial, seed: 42, personality: Personality.Explorer, maxGenerations: 200 });
    let k = 0;
    for (; k < 57; k++) {
      const g = a.propose();
      a.report(g, fitnessOf(g, k));
    }
    a.propose(); // a snapshot may be taken with a proposal in flight
    const b = EvolutionEngine.restore(JSON.parse(JSON.stringify(a.snapshot())));
    expect(b.state()).toEqual(a.state());
    for (; k < 200; k++) {
      const ga = a.propose();
      const gb = b.propose();
      expect(gb).toEqual(ga);
      const ra = k % 17 === 0 ? a.reportFailure(ga, 'refused') : a.report(ga, fitnessOf(ga, k));
      const rb = k % 17 === 0 ? b.reportFailure(gb, 'refused') : b.report(gb, fitnessOf(gb, k));
      expect(rb).toEqual(ra);
    }
    expect(b.snapshot()).toEqual(a.snapshot());
    expect(b.finished).toBe(true);
  });

  it('keeps every proposal within bounds, integral where the gene is', () => {
    const bounds = { cpuLimit: { min: 0.5, max: 1.5 }, memoryLimit: { min: 100 * 2 ** 20, max: 300 * 2 ** 20 }, cpuWeight: { min: 50, max: 80 }, ratio: { min: 0, max: 1 } };
    const e = new EvolutionEngine({ genes: bounds, initial: { cpuLimit: 4, memoryLimit: 2 ** 20, cpuWeight: 100, ratio: 0.5 }, seed: 3 });
    for (let k = 0; k < 500; k++) {
      const g = e.propose();
      for (const [name, b] of Object.entries(bounds)) {
        expect(g[name]).toBeGreaterThanOrEqual(b.min);
        expect(g[name]).toBeLessThanOrEqual(b.max);
      }
      expect(Number.isInteger(g.memoryLimit)).toBe(true);
      expect(Number.isInteger(g.cpuWeight)).toBe(true);
      // Rewards pushing every gene outwards, so the search presses against the bounds.
      e.report(g, g.cpuLimit! + g.memoryLimit! / 2 ** 20 + g.cpuWeight! + g.ratio! * 100 + Math.sin(k));
    }
    const best = e.best().genome;
    expect(best.cpuLimit).toBeGreaterThan(1.4);
    expect(best.cpuWeight).toBeGreaterThanOrEqual(78);
  });

  it('does not keep a parent whose fitness was a lucky measurement', () => {
    // True fitness peaks at the start (c = 10); measurements carry ±5 % noise. The first
    // trial is reported 30 % above the incumbent, so it takes the lead; re-measuring it must
    // hand the lead back within a few generations, for good.
    const e = new EvolutionEngine({ genes: { c: { min: 1, max: 100 } }, initial: { c: 10 }, seed: 5, personality: Personality.Conservative });
    const truth = (c: number) => 100 - 100 * Math.abs(Math.log(c / 10));
    let lucky: Genome | undefined;
    let luckyAt = 0;
    let lostAt: number | undefined;
    for (let k = 0; k < 60; k++) {
      const g = e.propose();
      const isFirstTrial = lucky === undefined && e.state().noise !== null && g.c !== 10;
      const rep = e.report(g, isFirstTrial ? 130 : truth(g.c!) * (1 + 0.05 * (k % 2 === 0 ? 1 : -1)));
      if (isFirstTrial) {
        lucky = g;
        luckyAt = k;
        expect(rep.accepted).toBe(true);
        expect(rep.best).toEqual(g);
      } else if (lucky && lostAt === undefined && rep.best.c !== lucky.c) {
        lostAt = k;
      }
      if (lostAt !== undefined) expect(rep.best.c).not.toBe(lucky!.c);
    }
    expect(lostAt).toBeGreaterThan(luckyAt);
    expect(lostAt! - luckyAt).toBeLessThanOrEqual(4);
    expect(truth(e.best().genome.c!)).toBeGreaterThan(95);
  });

  it('skips re-measuring when measurements are exact, and re-measures when they are noisy', () => {
    const count = (noise: number) => {
      const e = new EvolutionEngine({ genes, initial, seed: 9, historyLimit: 100 });
      const gauss = noiseSource(9);
      for (let k = 0; k < 100; k++) {
        const g = e.propose();
        e.report(g, fitnessOf(g, 0) * (1 + noise * gauss()));
      }
      return e.state().history.filter((r) => r.kind === 'remeasure').length;
    };
    expect(count(0)).toBeLessThanOrEqual(4); // once to learn there is no noise, then only for staleness
    expect(count(0.1)).toBeGreaterThan(15);
  });

  it('Adaptive grows the step on success and shrinks it on failure', () => {
    const grow = new EvolutionEngine({ genes: { c: { min: 1e-6, max: 1e6 } }, initial: { c: 1 }, seed: 2, initialStepSize: 0.1 });
    for (let k = 0; k < 30; k++) {
      const g = grow.propose();
      grow.report(g, g.c === 1 && k < 2 ? 0 : Math.abs(Math.log(g.c!))); // anything away from the start is better
    }
    expect(grow.state().stepSizes.c).toBeGreaterThan(0.1);
    const shrink = new EvolutionEngine({ genes: { c: { min: 1e-6, max: 1e6 } }, initial: { c: 1 }, seed: 2, initialStepSize: 0.1 });
    for (let k = 0; k < 30; k++) {
      const g = shrink.propose();
      shrink.report(g, -Math.abs(Math.log(g.c!))); // the start is the optimum
    }
    expect(shrink.state().stepSizes.c).toBeLessThan(0.05);
    expect(shrink.best().genome).toEqual({ c: 1 });
  });

  it("takes its initial step size and trial rate from the personality's exploration", () => {
    const step = (p: Personality) => new EvolutionEngine({ genes, initial, personality: p }).state().stepSizes.cpuLimit!;
    expect(step(Personality.Explorer)).toBeGreaterThan(step(Personality.Balanced));
    expect(step(Personality.Balanced)).toBeGreaterThan(step(Personality.Conservative));
    expect(step(Personality.Balanced)).toBeCloseTo(0.2, 10);
  });

  it('records failures without touching the best genome, and checks what is reported', () => {
    const e = new EvolutionEngine({ genes, initial, seed: 4 });
    expect(() => e.report(initial, 1)).toThrow(RuntimeError);
    const g0 = e.propose();
    e.report(g0, 10);
    const g1 = e.propose();
    e.report(g1, 10);
    const trial = e.propose();
    expect(trial).not.toEqual(initial);
    try {
      e.report({ ...trial, cpuLimit: 123 }, 1);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).code).toBe('EINVAL');
    }
    const rec = e.reportFailure(trial, 'update failed: EBUSY');
    expect(rec).toMatchObject({ generation: 3, kind: 'trial', fitness: null, accepted: false, error: 'update failed: EBUSY', best: initial });
    expect(e.state()).toMatchObject({ failures: 1, trials: 1, successes: 0 });
    const nan = e.propose();
    expect(e.report(nan, Number.NaN).error).toMatch(/not a finite number/);
  });

  it('stops at the generation limit and then proposes the best genome', () => {
    const e = new EvolutionEngine({ genes, initial, seed: 4, maxGenerations: 5 });
    for (let k = 0; k < 5; k++) {
      const g = e.propose();
      e.report(g, fitnessOf(g, k));
    }
    expect(e.finished).toBe(true);
    expect(e.propose()).toEqual(e.best().genome);
    expect(() => e.report(e.best().genome, 1)).toThrow(/generation limit/);
  });

  it('validates its options, naming every bad field', () => {
    try {
      new EvolutionEngine({
        genes: { cpuLimit: { min: 2, max: 1 }, memoryLimit: { min: 0, max: 10 } },
        initial: { cpuLimit: Number.NaN },
        mutationRate: MutationRate.fixed(2),
        trialRate: 0,
        seed: -1,
        maxGenerations: 0,
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).fields().sort()).toEqual(
        ['bounds.cpuLimit', 'bounds.memoryLimit', 'initial.cpuLimit', 'initial.memoryLimit', 'maxGenerations', 'mutationRate', 'seed', 'trialRate'].sort(),
      );
    }
  });
});
