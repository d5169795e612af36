/**
 * Flat regions: landscapes on which every genome within the initial step size of the start
 * scores the same (zero, or one terrace of a quantized fitness), from several hostile
 * starts. Each case runs 60 seeds; the test prints, per case, how often the run ends in the
 * good region and how far (in log units: 0.1 ≈ 10 %) its best genome ends from the optimum.
 */
import { describe, expect, it } from 'vitest';
import { EvolutionEngine } from '../../src/evolution/engine.js';
import type { Genome } from '../../src/evolution/genes.js';
import { MutationRate } from '../../src/evolution/rate.js';
import { Personality } from '../../src/personality/index.js';

// Two genes with wide bounds, as a host would give them: cores and MiB.
const GENES = { c: { min: 0.05, max: 64 }, m: { min: 16, max: 65_536 } };

interface Landscape {
  name: string;
  f: (c: number, m: number) => number;
  optimum: { c: number; m: number };
  /** The fitness (fraction of F*) that counts as having reached the good region. */
  good: number;
}

/** Log-space distance between two genomes: 0.1 ≈ 10 % off in one gene. */
const distance = (g: Genome, o: { c: number; m: number }): number => Math.hypot(Math.log(g.c! / o.c), Math.log(g.m! / o.m));

/**
 * A job that does nothing countable below 512 MiB (it is OOM-killed) or below 0.8 of a core
 * (it misses every deadline); above both, work per unit of resources, which peaks on the
 * memory cliff at (1.2 cores, 512 MiB): F* = 2/3.
 */
const CLIFF: Landscape = {
  name: 'deadline cliff',
  f: (c, m) => (m < 512 || c < 0.8 ? 0 : Math.min(c, 1.2) / (c + (1.2 * m) / 1024)),
  optimum: { c: 1.2, m: 512 },
  good: 0.9,
};

/** A hill of radius 1 (log units, a factor e) around (2 cores, 2 GiB), exactly zero outside it. */
const ISLAND: Landscape = {
  name: 'island in a zero sea',
  f: (c, m) => Math.max(0, 1 - (Math.log(c / 2) ** 2 + Math.log(m / 2048) ** 2)),
  optimum: { c: 2, m: 2048 },
  good: 0.9,
};

/** A smooth peak at (1 core, 1 GiB) read through a counter that moves in eighths: terraces, and zero far away. */
const TERRACES: Landscape = {
  name: 'terraces (fitness in eighths)',
  f: (c, m) => Math.floor(8 * Math.exp(-(Math.log(c) ** 2 + Math.log(m / 1024) ** 2) / (2 * 1.5 ** 2))) / 8,
  optimum: { c: 1, m: 1024 },
  good: 7 / 8, // the top terrace: the engine cannot tell its points apart
};

interface Case {
  landscape: Landscape;
  start: Genome;
  why: string;
  noise?: number;
  personality?: Personality;
}

const CASES: Case[] = [
  { landscape: CLIFF, start: { c: 0.1, m: 64 }, why: 'starved: 8× too little of both' },
  { landscape: CLIFF, start: { c: 0.05, m: 16 }, why: 'the lowest corner of the bounds' },
  { landscape: CLIFF, start: { c: 0.1, m: 64 }, why: 'starved, Conservative (initial step 0.11)', personality: Personality.Conservative },
  { landscape: ISLAND, start: { c: 0.2, m: 200 }, why: '10× too little of both' },
  { landscape: ISLAND, start: { c: 64, m: 65_536 }, why: 'the highest corner of the bounds' },
  { landscape: ISLAND, start: { c: 0.2, m: 200 }, why: '10× too little, 10 % noise on the island', noise: 0.1 },
  { landscape: TERRACES, start: { c: 30, m: 30_000 }, why: '30× too much of both' },
];

const SEEDS = Array.from({ length: 60 }, (_, i) => i);
const GENERATIONS = 300;

/** Noise from its own stream (xorshift + Box–Muller), the same whatever the engine proposes. */
function noiseSource(seed: number): () => number {
  let x = (Math.imul(seed + 7, 0x9e3779b1) ^ 0x27d4eb2f) >>> 0 || 1;
  const u = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x + 1) / 4294967297;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

function run(k: Case, seed: number): { score: number; distance: number; firstGood: number | null } {
  const { f } = k.landscape;
  const fStar = f(k.landscape.optimum.c, k.landscape.optimum.m);
  const e = new EvolutionEngine({ genes: GENES, initial: k.start, seed, personality: k.personality ?? Personality.Balanced });
  const gauss = noiseSource(seed);
  let firstGood: number | null = null;
  for (let g = 1; g <= GENERATIONS; g++) {
    const genome = e.propose();
    const exact = f(genome.c!, genome.m!);
    if (firstGood === null && exact >= k.landscape.good * fStar) firstGood = g;
    e.report(genome, k.noise ? exact * (1 + k.noise * gauss()) : exact);
  }
  const best = e.best().genome;
  return { score: f(best.c!, best.m!) / fStar, distance: distance(best, k.landscape.optimum), firstGood };
}

const quantile = (values: number[], q: number): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(q * (s.length - 1))]!;
};

describe(`flat regions: hostile starts (${SEEDS.length} seeds, ${GENERATIONS} generations each)`, () => {
  it('every start is flat: nothing within three initial steps scores differently', () => {
    for (const k of CASES) {
      const step = new EvolutionEngine({ genes: GENES, initial: k.start, personality: k.personality ?? Personality.Balanced }).state().stepSizes;
      const f0 = k.landscape.f(k.start.c!, k.start.m!);
      for (let i = -3; i <= 3; i++) {
        for (let j = -3; j <= 3; j++) {
          const c = Math.min(64, Math.max(0.05, k.start.c! * Math.exp(i * step.c!)));
          const m = Math.min(65_536, Math.max(16, k.start.m! * Math.exp(j * step.m!)));
          expect(k.landscape.f(c, m)).toBe(f0);
        }
      }
    }
  });

  const rows: string[] = [];
  for (const k of CASES) {
    it(`${k.landscape.name}, from (${k.start.c} cores, ${k.start.m} MiB), ${k.why}: reaches the good region and ends near the optimum`, () => {
      const results = SEEDS.map((s) => run(k, s));
      const reached = results.filter((r) => r.score >= k.landscape.good).length / results.length;
      const d = results.map((r) => r.distance);
      const found = results.map((r) => r.firstGood ?? Infinity);
      const row =
        `${k.landscape.name.padEnd(30)} from (${k.start.c}, ${k.start.m}) ${k.why.padEnd(44)} ` +
        `good region ${(reached * 100).toFixed(0).padStart(3)} % · first reached (median) gen ${quantile(found, 0.5)} · ` +
        `distance from optimum: median ${quantile(d, 0.5).toFixed(3)}, p90 ${quantile(d, 0.9).toFixed(3)}, max ${Math.max(...d).toFixed(3)} · ` +
        `median F/F* ${quantile(results.map((r) => r.score), 0.5).toFixed(3)}`;
      rows.push(row);
      console.log(row);
      expect(reached).toBeGreaterThanOrEqual(0.9);
      expect(quantile(d, 0.5)).toBeLessThan(k.landscape === TERRACES ? 0.8 : 0.25);
    });
  }

  it('widens the step on a plateau instead of shrinking it, and returns to it once off the plateau', () => {
    const e = new EvolutionEngine({ genes: GENES, initial: { c: 0.1, m: 64 }, seed: 3 });
    const initial = e.state().stepSizes.c!;
    let widest = 0;
    let escapedAt = 0;
    for (let g = 1; g <= 200 && !escapedAt; g++) {
      const genome = e.propose();
      const rec = e.report(genome, CLIFF.f(genome.c!, genome.m!));
      widest = Math.max(widest, e.state().stepSizes.c!);
      if (rec.accepted) escapedAt = g;
    }
    expect(widest).toBeGreaterThan(5 * initial);
    expect(escapedAt).toBeGreaterThan(0);
    // Back at the scale it had when the plateau began (times one success's growth).
    expect(e.state().stepSizes.c!).toBeLessThanOrEqual(initial * Math.exp(0.4) + 1e-12);
  });

  it('a fixed mutation rate keeps its step but still makes bold moves (every gene) on a plateau', () => {
    const e = new EvolutionEngine({ genes: GENES, initial: { c: 0.1, m: 64 }, seed: 5, mutationRate: MutationRate.fixed(0.3) });
    let trials = 0;
    let both = 0;
    for (let g = 0; g < 40; g++) {
      const genome = e.propose();
      const rec = e.report(genome, 0);
      if (g < 8 || rec.kind !== 'trial') continue;
      trials++;
      if (genome.c !== 0.1 && genome.m !== 64) both++;
    }
    expect(Object.values(e.state().stepSizes)).toEqual([0.3, 0.3]);
    expect(trials).toBeGreaterThan(25);
    expect(both).toBe(trials);
  });

  it('a plateau survives a snapshot: the resumed engine widens and proposes as the original', () => {
    const a = new EvolutionEngine({ genes: GENES, initial: { c: 0.1, m: 64 }, seed: 9 });
    for (let g = 0; g < 6; g++) a.report(a.propose(), 0);
    const b = EvolutionEngine.restore(JSON.parse(JSON.stringify(a.snapshot())));
    for (let g = 0; g < 20; g++) {
      const ga = a.propose();
      expect(b.propose()).toEqual(ga);
      a.report(ga, CLIFF.f(ga.c!, ga.m!));
      b.report(ga, CLIFF.f(ga.c!, ga.m!));
    }
    expect(b.state()).toEqual(a.state());
  });
});

describe('a plateau across the whole range (an idle container)', () => {
  it('rests between bold moves once the step is at its cap: few settings changes, none after an escape is possible', () => {
    const e = new EvolutionEngine({ genes: GENES, initial: { c: 1, m: 1024 }, seed: 11 });
    let trials = 0;
    let lastHundred = 0;
    for (let g = 1; g <= 400; g++) {
      const rec = e.report(e.propose(), 0);
      if (rec.kind === 'trial') {
        trials++;
        if (g > 300) lastHundred++;
      }
    }
    expect(trials).toBeLessThan(150);
    expect(lastHundred).toBeLessThanOrEqual(Math.ceil(100 / 8) + 1);
    // Once something scores, it is found and the rest ends.
    let found = false;
    for (let g = 0; g < 200 && !found; g++) {
      const genome = e.propose();
      found = e.report(genome, ISLAND.f(genome.c!, genome.m!)).accepted;
    }
    expect(found).toBe(true);
  });
});
