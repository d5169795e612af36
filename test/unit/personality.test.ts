import { describe, expect, it } from 'vitest';
import { ConfigError, RuntimeError } from '../../src/errors.js';
import {
  DECISION_TABLE,
  Personality,
  TRAIT_NAMES,
  UsageHistory,
  allocateResources,
  decisionTableMarkdown,
  evolutionParameters,
  restartBackoffMs,
  restartPolicy,
  type PersonalityTraits,
  type ResourcePlan,
  type TraitName,
  type WorkloadRequest,
} from '../../src/personality/index.js';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const SPEC_TABLE: Record<string, PersonalityTraits> = {
  Conservative: { riskTolerance: 0.2, cooperation: 0.6, exploration: 0.3, efficiencyFocus: 0.7, stability: 0.9 },
  Aggressive: { riskTolerance: 0.9, cooperation: 0.3, exploration: 0.8, efficiencyFocus: 0.9, stability: 0.4 },
  Balanced: { riskTolerance: 0.5, cooperation: 0.7, exploration: 0.5, efficiencyFocus: 0.6, stability: 0.7 },
  Explorer: { riskTolerance: 0.7, cooperation: 0.5, exploration: 0.95, efficiencyFocus: 0.4, stability: 0.3 },
  Cooperative: { riskTolerance: 0.4, cooperation: 0.95, exploration: 0.4, efficiencyFocus: 0.5, stability: 0.6 },
};

/** A small deterministic generator for trait vectors and usage samples. */
function lcg(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** A workload that uses about 1.5 cores and 600 MiB, with spread, sampled every 10 s for an hour. */
function busyHistory(seed = 1): UsageHistory {
  const h = new UsageHistory({ halfLifeMs: 3_600_000 });
  const r = lcg(seed);
  for (let i = 0; i < 360; i++) {
    h.add({ timestampMs: i * 10_000, cpuCores: 1.5 * Math.exp(0.4 * (r() - 0.5)), memoryBytes: 600 * MiB * Math.exp(0.2 * (r() - 0.5)) });
  }
  return h;
}

const WORKLOAD: WorkloadRequest = { cpu: 2, memory: GiB, gpus: 1 };

function withTrait(base: PersonalityTraits, trait: TraitName, v: number): Personality {
  return Personality.custom({ ...base, [trait]: v });
}

const GRID = Array.from({ length: 11 }, (_, i) => i / 10);
const bases = (): PersonalityTraits[] => {
  const r = lcg(99);
  const random = Array.from({ length: 8 }, () => ({
    riskTolerance: r(),
    cooperation: r(),
    exploration: r(),
    efficiencyFocus: r(),
    stability: r(),
  }));
  return [...Object.values(SPEC_TABLE), ...random];
};

/** Checks that f, sampled along one trait with the others fixed, only moves the stated way. */
function expectMonotone(f: (p: Personality) => number, trait: TraitName, direction: 1 | -1, strictOverall = true): void {
  for (const base of bases()) {
    const values = GRID.map((v) => f(withTrait(base, trait, v)));
    for (let i = 1; i < values.length; i++) {
      expect(direction * (values[i]! - values[i - 1]!), `${trait} ${JSON.stringify(base)} at ${GRID[i]}`).toBeGreaterThanOrEqual(0);
    }
    if (strictOverall) expect(direction * (values.at(-1)! - values[0]!)).toBeGreaterThan(0);
  }
}

describe('Personality presets', () => {
  it("each preset's traits equal the spec's table", () => {
    expect(Personality.presets.map((p) => p.name)).toEqual(Object.keys(SPEC_TABLE));
    for (const p of Personality.presets) {
      expect(p.traits()).toEqual({ ...SPEC_TABLE[p.name], explorationRate: SPEC_TABLE[p.name]!.exploration });
    }
    expect(Personality.Explorer.traits().explorationRate).toBe(0.95);
    expect(Personality.Conservative.name).toBe('Conservative');
  });

  it('traits are read-only', () => {
    expect(Object.isFrozen(Personality.Balanced.traits())).toBe(true);
  });

  it('custom() accepts traits in [0, 1] and names every bad one', () => {
    const p = Personality.custom({ riskTolerance: 0, cooperation: 1, explorationRate: 0.5, efficiencyFocus: 0.25, stability: 0.75 }, 'mine');
    expect(p.name).toBe('mine');
    expect(p.traits()).toMatchObject({ exploration: 0.5, explorationRate: 0.5 });
    try {
      Personality.custom({ riskTolerance: 1.5, cooperation: -0.1, exploration: Number.NaN, efficiencyFocus: 0.5 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).fields()).toEqual(['riskTolerance', 'cooperation', 'exploration', 'stability']);
    }
  });

  it('looks presets up by name and round-trips through JSON', () => {
    expect(Personality.byName('aggressive')).toBe(Personality.Aggressive);
    expect(() => Personality.byName('reckless')).toThrow(ConfigError);
    expect(Personality.fromJSON(JSON.parse(JSON.stringify(Personality.Cooperative)))).toBe(Personality.Cooperative);
    const c = Personality.custom({ ...SPEC_TABLE.Balanced!, stability: 0.1 }, 'jittery');
    const back = Personality.fromJSON(JSON.parse(JSON.stringify(c)));
    expect(back.name).toBe('jittery');
    expect(back.traits()).toEqual(c.traits());
  });
});

describe('decision table', () => {
  it('has one rule per decision, each claiming only what it does', () => {
    const ids = DECISION_TABLE.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const rule of DECISION_TABLE) {
      for (const trait of TRAIT_NAMES) {
        const direction = rule.increasesWith.includes(trait) ? 1 : rule.decreasesWith.includes(trait) ? -1 : 0;
        for (const base of bases()) {
          const values = GRID.map((v) => rule.evaluate({ ...base, [trait]: v }));
          if (direction === 0) {
            // A trait the table does not name must not move the output at all.
            expect(new Set(values).size, `${rule.id} should not depend on ${trait}`).toBe(1);
            continue;
          }
          for (let i = 1; i < values.length; i++) {
            expect(direction * (values[i]! - values[i - 1]!), `${rule.id} vs ${trait}`).toBeGreaterThanOrEqual(0);
          }
          expect(direction * (values.at(-1)! - values[0]!), `${rule.id} vs ${trait} overall`).toBeGreaterThan(0);
        }
      }
    }
  });

  it("gives each preset the values the README's table lists", () => {
    // Worked out by hand from the spec's formulas and the presets' traits, not by the code under test.
    const expected: Record<string, Record<string, number>> = {
      Conservative: {
        cpuPercentile: 0.838, memoryPercentile: 0.9598, cpuProvisionFactor: 1.2, memoryProvisionFactor: 1.1, headroom: 0.09,
        cpuWeightFactor: 0.870551, reservationFraction: 0.7, hardLimits: 1, saturationStep: 1.1, scaleDownDelayMs: 1266727.594,
        scaleDownStep: 0.28, deadband: 0.11, maxRetries: 2, initialBackoffMs: 1319.508, backoffMultiplier: 2.4, maxBackoffMs: 121257.325,
        initialStepSize: 0.14, trialRate: 0.52,
      },
      Aggressive: {
        cpuPercentile: 0.971, memoryPercentile: 0.9941, cpuProvisionFactor: 1.9, memoryProvisionFactor: 1.45, headroom: 0.03,
        cpuWeightFactor: 1.319508, reservationFraction: 0.475, hardLimits: 1, saturationStep: 1.45, scaleDownDelayMs: 158340.949,
        scaleDownStep: 0.68, deadband: 0.06, maxRetries: 8, initialBackoffMs: 250, backoffMultiplier: 1.9, maxBackoffMs: 30314.331,
        initialStepSize: 0.29, trialRate: 0.72,
      },
      Balanced: {
        cpuPercentile: 0.895, memoryPercentile: 0.9745, cpuProvisionFactor: 1.5, memoryProvisionFactor: 1.25, headroom: 0.12,
        cpuWeightFactor: 0.757858, reservationFraction: 0.775, hardLimits: 1, saturationStep: 1.25, scaleDownDelayMs: 551375.21,
        scaleDownStep: 0.44, deadband: 0.09, maxRetries: 5, initialBackoffMs: 659.7540, backoffMultiplier: 2.2, maxBackoffMs: 69644.045,
        initialStepSize: 0.2, trialRate: 0.6,
      },
      Explorer: {
        cpuPercentile: 0.933, memoryPercentile: 0.9843, cpuProvisionFactor: 1.7, memoryProvisionFactor: 1.35, headroom: 0.18,
        cpuWeightFactor: 1, reservationFraction: 0.625, hardLimits: 1, saturationStep: 1.35, scaleDownDelayMs: 104466.068,
        scaleDownStep: 0.76, deadband: 0.05, maxRetries: 7, initialBackoffMs: 287.1746, backoffMultiplier: 1.8, maxBackoffMs: 22973.967,
        initialStepSize: 0.335, trialRate: 0.78,
      },
      Cooperative: {
        cpuPercentile: 0.876, memoryPercentile: 0.9696, cpuProvisionFactor: 1.4, memoryProvisionFactor: 1.2, headroom: 0.15,
        cpuWeightFactor: 0.535887, reservationFraction: 0.9625, hardLimits: 0, saturationStep: 1.2, scaleDownDelayMs: 363771.976,
        scaleDownStep: 0.52, deadband: 0.08, maxRetries: 4, initialBackoffMs: 659.7540, backoffMultiplier: 2.1, maxBackoffMs: 52780.316,
        initialStepSize: 0.17, trialRate: 0.56,
      },
    };
    for (const p of Personality.presets) {
      const want = expected[p.name]!;
      expect(Object.keys(want).sort()).toEqual(DECISION_TABLE.map((r) => r.id).sort());
      for (const rule of DECISION_TABLE) {
        const v = want[rule.id]!;
        // Relative tolerance: the delays are in the millions of ms, the fractions below 1.
        expect(Math.abs(p.decisions[rule.id] - v), `${p.name}.${rule.id}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v)) + 1e-6);
      }
    }
  });

  it('renders as markdown with every rule and preset', () => {
    const md = decisionTableMarkdown();
    for (const rule of DECISION_TABLE) expect(md).toContain(rule.formula);
    for (const p of Personality.presets) expect(md).toContain(`| ${p.name} |`);
    expect(md.split('\n').filter((l) => l.startsWith('|')).length).toBe(Personality.presets.length + 2 + DECISION_TABLE.length + 2);
  });
});

describe('allocateResources', () => {
  const usage = busyHistory();
  const plan = (p: Personality, w: WorkloadRequest = WORKLOAD): ResourcePlan => allocateResources(p, w, usage, undefined, 3_600_000);

  it('gives visibly different plans for the same workload', () => {
    const plans = Personality.presets.map((p) => plan(p));
    for (let i = 0; i < plans.length; i++) {
      for (let j = i + 1; j < plans.length; j++) {
        const a = plans[i]!;
        const b = plans[j]!;
        const rel = (x: number, y: number) => Math.abs(x - y) / Math.max(x, y);
        const differs =
          a.hardLimits !== b.hardLimits ||
          rel(a.cpuLimit, b.cpuLimit) >= 0.1 ||
          rel(a.memoryLimit, b.memoryLimit) >= 0.1 ||
          rel(a.cpuWeight, b.cpuWeight) >= 0.1 ||
          rel(a.memoryReservation, b.memoryReservation) >= 0.1;
        expect(differs, `${Personality.presets[i]!.name} vs ${Personality.presets[j]!.name}`).toBe(true);
      }
    }
    const [cons, aggr, , , coop] = plans as [ResourcePlan, ResourcePlan, ResourcePlan, ResourcePlan, ResourcePlan];
    // The spec: Aggressive over-provisions for performance despite its efficiency focus,
    // Conservative provisions tightly; Cooperative shares instead of capping.
    expect(aggr.cpuLimit).toBeGreaterThan(1.4 * cons.cpuLimit);
    expect(aggr.memoryLimit).toBeGreaterThan(1.2 * cons.memoryLimit);
    expect(coop.hardLimits).toBe(false);
    expect(cons.hardLimits && aggr.hardLimits).toBe(true);
    expect(coop.cpuWeight).toBeLessThan(aggr.cpuWeight);
    expect(coop.memoryReservation).toBeGreaterThan(aggr.memoryReservation);
    for (const p of plans) {
      expect(p.gpuCount).toBe(1);
      expect(p.cpuLimit).toBeGreaterThan(1.5); // above the observed use
      expect(p.memoryLimit).toBeGreaterThan(600 * MiB);
      expect(p.memoryReservation).toBeLessThanOrEqual(p.memoryLimit);
      expect(p.cpuWeight).toBeGreaterThanOrEqual(1);
      expect(p.cpuWeight).toBeLessThanOrEqual(10_000);
      expect(p.memoryLimit % 4096).toBe(0);
    }
  });

  it('provisions more with risk tolerance', () => {
    expectMonotone((p) => plan(p).cpuLimit, 'riskTolerance', 1);
    expectMonotone((p) => plan(p).memoryLimit, 'riskTolerance', 1);
    expectMonotone((p) => plan(p).pidsLimit, 'riskTolerance', 1);
  });

  it('keeps less headroom with efficiency focus', () => {
    expectMonotone((p) => plan(p).cpuLimit, 'efficiencyFocus', -1);
    expectMonotone((p) => plan(p).memoryLimit, 'efficiencyFocus', -1);
  });

  it('shares more with cooperation: lower weight, larger reservation, soft limits', () => {
    expectMonotone((p) => plan(p).cpuWeight, 'cooperation', -1);
    expectMonotone((p) => plan(p).memoryReservation, 'cooperation', 1);
    expectMonotone((p) => (plan(p).hardLimits ? 1 : 0), 'cooperation', -1);
  });

  it('does not let exploration or stability move a fresh plan', () => {
    for (const trait of ['exploration', 'stability'] as const) {
      const plans = GRID.map((v) => plan(withTrait(SPEC_TABLE.Balanced!, trait, v)));
      for (const p of plans) expect(p).toEqual(plans[0]);
    }
  });

  it('scales down later and by less with stability', () => {
    const current: ResourcePlan = { ...plan(Personality.Balanced), updatedAtMs: 0 };
    const big: ResourcePlan = { ...current, cpuLimit: current.cpuLimit * 3, memoryLimit: current.memoryLimit * 3 };
    // How long until a plan first shrinks, in minutes.
    const firstShrink = (p: Personality) => {
      for (let minute = 0; minute <= 120; minute++) {
        if (allocateResources(p, WORKLOAD, usage, big, minute * 60_000).cpuLimit < big.cpuLimit) return minute;
      }
      return 121;
    };
    expectMonotone(firstShrink, 'stability', 1);
    // How far one allowed decision moves.
    const shrinkBy = (p: Personality) => big.cpuLimit - allocateResources(p, WORKLOAD, usage, big, 10 * 3_600_000).cpuLimit;
    expectMonotone(shrinkBy, 'stability', -1);
    expect(firstShrink(Personality.Conservative)).toBeGreaterThan(firstShrink(Personality.Aggressive));
    expect(shrinkBy(Personality.Conservative)).toBeLessThan(shrinkBy(Personality.Aggressive));
  });

  it('scales up at once, whatever the stability, and ignores changes inside the deadband', () => {
    const stable = Personality.custom({ ...SPEC_TABLE.Conservative!, stability: 1 });
    const fresh = plan(stable);
    const small: ResourcePlan = { ...fresh, cpuLimit: fresh.cpuLimit / 2, memoryLimit: fresh.memoryLimit / 2, updatedAtMs: 3_600_000 };
    const up = allocateResources(stable, WORKLOAD, usage, small, 3_600_000);
    expect(up.cpuLimit).toBeGreaterThanOrEqual(fresh.cpuLimit);
    expect(up.updatedAtMs).toBe(3_600_000);
    const near: ResourcePlan = { ...fresh, cpuLimit: Math.round(fresh.cpuLimit * 1050) / 1000, updatedAtMs: 0 };
    const kept = allocateResources(stable, WORKLOAD, usage, near, 10 * 3_600_000);
    expect(kept.cpuLimit).toBe(near.cpuLimit);
    // Nothing changed, so the plan keeps its time of last change.
    const again = allocateResources(stable, WORKLOAD, usage, fresh, 2 * 3_600_000);
    expect(again).toEqual(fresh);
  });

  it('grows a limit that the usage keeps hitting', () => {
    const capped = new UsageHistory();
    for (let i = 0; i < 100; i++) capped.add({ timestampMs: i * 1000, cpuCores: 0.5, memoryBytes: 100 * MiB });
    const current: ResourcePlan = { ...allocateResources(Personality.Conservative, {}, capped, undefined, 100_000), cpuLimit: 0.5, updatedAtMs: 0 };
    for (const p of Personality.presets) {
      const next = allocateResources(p, {}, capped, current, 100_000);
      // The minimum growth 1 + 0.5·r, per preset.
      const step = { Conservative: 1.1, Aggressive: 1.45, Balanced: 1.25, Explorer: 1.35, Cooperative: 1.2 }[p.name]!;
      expect(next.cpuLimit).toBeGreaterThanOrEqual(0.5 * step - 0.001);
    }
  });

  it('plans from the request until usage is observed, and has defaults for neither', () => {
    const p = Personality.Balanced;
    // Balanced (r 0.5, k 0.7, e 0.6): P_cpu 1.5, P_mem 1.25, 1 + H = 1.12, weight factor 2^-0.4,
    // reservation 0.775 of the median; limits rounded up to 1/1000 core and to 4 KiB pages.
    const fromRequest = allocateResources(p, { cpu: 2, memory: GiB, pids: 100, gpus: 2 }, undefined, undefined, 0);
    expect(fromRequest).toEqual({
      cpuLimit: 3.361, // 2 × 1.5 × 1.12 is 3.3600000000000003 in doubles; rounding up to 1/1000 core gives 3.361
      cpuWeight: 152, // round(100 × 2 × 0.7579)
      memoryLimit: 1503240192, // 1 GiB × 1.25 × 1.12, up to a page
      memoryReservation: 832151552, // 1 GiB × 0.775, up to a page
      pidsLimit: 100,
      gpuCount: 2,
      hardLimits: true,
      updatedAtMs: 0,
    });
    const blind = allocateResources(p, {}, undefined, undefined, 0);
    expect(blind).toEqual({
      cpuLimit: 1.681, // the default 1 core × 1.5 × 1.12 (1.6800000000000002), rounded up
      cpuWeight: 76, // round(100 × 1 × 0.7579)
      memoryLimit: 375812096, // the default 256 MiB × 1.25 × 1.12, up to a page
      memoryReservation: 208039936, // 256 MiB × 0.775, up to a page
      pidsLimit: 384, // ceil(256 × 1.5)
      gpuCount: 0,
      hardLimits: true,
      updatedAtMs: 0,
    });
    // With an hour of samples the plan follows the observed use, not the request.
    const observed = allocateResources(p, { cpu: 8, memory: 8 * GiB }, busyHistory(), undefined, 3_600_000);
    expect(observed.cpuLimit).toBeLessThan(8);
    expect(observed.memoryLimit).toBeLessThan(4 * GiB);
  });

  it('is deterministic and pure', () => {
    const before = JSON.stringify(usage);
    const a = allocateResources(Personality.Explorer, WORKLOAD, usage, undefined, 5);
    const b = allocateResources(Personality.Explorer, WORKLOAD, usage, undefined, 5);
    expect(a).toEqual(b);
    expect(JSON.stringify(usage)).toBe(before);
  });

  it('names every invalid workload field', () => {
    try {
      allocateResources(Personality.Balanced, { cpu: -1, memory: Number.NaN, gpus: 0.5, pids: 3 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).fields()).toEqual(['workload.cpu', 'workload.memory', 'workload.gpus']);
    }
  });
});

describe('restartPolicy', () => {
  it('retries more with risk tolerance and less with stability', () => {
    expectMonotone((p) => restartPolicy(p).maxRetries, 'riskTolerance', 1);
    expectMonotone((p) => restartPolicy(p).maxRetries, 'stability', -1);
  });

  it('backs off longer with stability and shorter with risk tolerance', () => {
    expectMonotone((p) => restartPolicy(p).initialBackoffMs, 'stability', 1);
    expectMonotone((p) => restartPolicy(p).initialBackoffMs, 'riskTolerance', -1);
    expectMonotone((p) => restartPolicy(p).multiplier, 'stability', 1);
    expectMonotone((p) => restartPolicy(p).maxBackoffMs, 'stability', 1);
    expectMonotone((p) => restartBackoffMs(restartPolicy(p), 1)!, 'stability', 1);
    expectMonotone((p) => restartBackoffMs(restartPolicy(p), 1)!, 'riskTolerance', -1);
  });

  it('gives an exponential, capped backoff and gives up after the retries', () => {
    const policy = restartPolicy(Personality.Aggressive);
    expect(policy).toEqual({ maxRetries: 8, initialBackoffMs: 250, maxBackoffMs: 30314, multiplier: 1.9 });
    const delays = Array.from({ length: policy.maxRetries }, (_, i) => restartBackoffMs(policy, i + 1)!);
    expect(delays[0]).toBe(250);
    expect(delays[1]).toBe(475);
    for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1]!);
    expect(Math.max(...delays)).toBeLessThanOrEqual(policy.maxBackoffMs);
    expect(restartBackoffMs(policy, policy.maxRetries + 1)).toBeUndefined();
    expect(() => restartBackoffMs(policy, 0)).toThrow(RuntimeError);
    expect(restartPolicy(Personality.Conservative).maxRetries).toBeLessThan(policy.maxRetries);
  });
});

describe('evolutionParameters', () => {
  it('explores with larger steps and more trials as exploration rises', () => {
    expectMonotone((p) => evolutionParameters(p).initialStepSize, 'exploration', 1);
    expectMonotone((p) => evolutionParameters(p).trialRate, 'exploration', 1);
    const balanced = evolutionParameters(Personality.Balanced);
    expect(balanced.initialStepSize).toBeCloseTo(0.2, 12);
    expect(balanced.trialRate).toBeCloseTo(0.6, 12);
  });
});

describe('UsageHistory', () => {
  it('tracks percentiles within the bucket resolution', () => {
    const h = new UsageHistory();
    // Uniform 0.1 .. 2.1 cores and 100 .. 1100 MiB.
    for (let i = 0; i < 10_000; i++) h.add({ timestampMs: 0, cpuCores: 0.1 + (2 * i) / 10_000, memoryBytes: (100 + i / 10) * MiB });
    for (const q of [0.01, 0.1, 0.5, 0.9]) {
      expect(Math.abs(h.cpuPercentile(q)! / (0.1 + 2 * q) - 1)).toBeLessThan(0.005);
      expect(Math.abs(h.memoryPercentile(q)! / ((100 + 1000 * q) * MiB) - 1)).toBeLessThan(0.005);
    }
    // In the partly filled top bucket the estimate may overshoot, by less than a bucket.
    const p99 = h.cpuPercentile(0.99)! / 2.08;
    expect(p99).toBeGreaterThanOrEqual(0.995);
    expect(p99).toBeLessThan(1.09);
    expect(h.effectiveSamples()).toBeCloseTo(10_000, 6);
    expect(h.count).toBe(10_000);
  });

  it('forgets old samples with its half-life', () => {
    const h = new UsageHistory({ halfLifeMs: 60_000 });
    for (let t = 0; t < 600_000; t += 1000) h.add({ timestampMs: t, cpuCores: 4, memoryBytes: 4 * GiB });
    expect(h.cpuPercentile(0.5)).toBeCloseTo(4, 0);
    // The workload shrinks; ten minutes later the history mostly shows the new use.
    for (let t = 600_000; t < 1_200_000; t += 1000) h.add({ timestampMs: t, cpuCores: 0.5, memoryBytes: GiB / 2 });
    expect(h.cpuPercentile(0.9)! / 0.5).toBeCloseTo(1, 1);
    expect(h.cpuPercentile(0.9999)).toBeGreaterThan(3.5); // the old peak is still remembered, faintly
    expect(h.effectiveSamples(1_200_000)).toBeCloseTo(60 / Math.LN2, -1);
  });

  it('stays finite over thousands of half-lives and round-trips through JSON', () => {
    const h = new UsageHistory({ halfLifeMs: 1000 });
    for (let t = 0; t < 5_000_000; t += 997) h.add({ timestampMs: t, cpuCores: 1 + (t % 3), memoryBytes: GiB });
    expect(Number.isFinite(h.cpuPercentile(0.99)!)).toBe(true);
    expect(h.cpuPercentile(0.99)).toBeGreaterThan(2.5);
    const back = UsageHistory.fromJSON(JSON.parse(JSON.stringify(h)));
    expect(back.cpuPercentile(0.5)).toBe(h.cpuPercentile(0.5));
    expect(back.effectiveSamples()).toBeCloseTo(h.effectiveSamples(), 9);
    const empty = UsageHistory.fromJSON(JSON.parse(JSON.stringify(new UsageHistory())));
    expect(empty.cpuPercentile(0.5)).toBeUndefined();
    expect(empty.latestMs).toBeUndefined();
  });

  it('rejects invalid samples', () => {
    const h = new UsageHistory();
    expect(() => h.add({ timestampMs: 0, cpuCores: -1, memoryBytes: 0 })).toThrow(RuntimeError);
    expect(() => h.add({ timestampMs: Number.NaN, cpuCores: 1, memoryBytes: 0 })).toThrow(RuntimeError);
    expect(() => new UsageHistory({ halfLifeMs: 0 })).toThrow(RuntimeError);
  });
});
