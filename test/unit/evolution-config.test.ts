import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { DEFAULT_GENERATION_INTERVAL_MS, EvolutionConfig } from '../../src/evolution/config.js';
import { defaultBounds } from '../../src/evolution/genes.js';
import { defaultFitness, type EvolutionMetrics } from '../../src/evolution/metrics.js';
import { MutationRate } from '../../src/evolution/rate.js';

describe('EvolutionConfig', () => {
  it('builds with the given settings', () => {
    const fit = (m: EvolutionMetrics) => m.throughput;
    const c = EvolutionConfig.builder()
      .mutationRate(MutationRate.Adaptive)
      .fitnessFunction(fit)
      .generationInterval(5000)
      .bounds('cpuLimit', 0.25, 4)
      .bounds('memoryLimit', 2 ** 26, 2 ** 32)
      .maxGenerations(100)
      .seed(11)
      .build();
    expect(c).toMatchObject({ mutationRate: MutationRate.Adaptive, fitnessFunction: fit, generationIntervalMs: 5000, maxGenerations: 100, seed: 11, enabled: true });
    expect(c.genes({ cpuLimit: 1, memoryLimit: 2 ** 30, cpuWeight: 100 })).toEqual({
      cpuLimit: { min: 0.25, max: 4 },
      memoryLimit: { min: 2 ** 26, max: 2 ** 32 },
    });
  });

  it('takes its defaults from the runtime options', () => {
    const c = EvolutionConfig.fromDefaults({ evolutionEnabled: false, evolutionRate: 0.2 });
    expect(c.enabled).toBe(false);
    expect(c.mutationRate.toJSON()).toEqual({ kind: 'fixed', rate: 0.2 });
    expect(c.generationIntervalMs).toBe(DEFAULT_GENERATION_INTERVAL_MS);
    expect(c.fitnessFunction).toBe(defaultFitness);
    const explicit = EvolutionConfig.builder({ evolutionEnabled: false, evolutionRate: 0.2 }).mutationRate(MutationRate.Adaptive).enabled().build();
    expect(explicit.mutationRate).toBe(MutationRate.Adaptive);
    expect(explicit.enabled).toBe(true);
    expect(EvolutionConfig.builder().build().mutationRate).toBe(MutationRate.Adaptive);
  });

  it('reports every invalid field at once', () => {
    try {
      EvolutionConfig.builder({ evolutionEnabled: true, evolutionRate: 0.1 })
        .mutationRate(MutationRate.fixed(0))
        .fitnessFunction('throughput' as unknown as () => number)
        .generationInterval(-5)
        .bounds('cpuLimit', 2, 1)
        .bounds('memoryLimit', 0, 1024)
        .maxGenerations(1.5)
        .seed(-1)
        .trialRate(1.5)
        .initialStepSize(0)
        .build();
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).fields().sort()).toEqual(
        [
          'bounds.cpuLimit',
          'bounds.memoryLimit',
          'fitnessFunction',
          'generationInterval',
          'initialStepSize',
          'maxGenerations',
          'mutationRate',
          'seed',
          'trialRate',
        ].sort(),
      );
    }
    expect(() => EvolutionConfig.fromDefaults({ evolutionEnabled: 'yes' as unknown as boolean, evolutionRate: 0 })).toThrow(
      /evolutionEnabled.*evolutionRate/,
    );
  });
});

describe('defaultBounds', () => {
  it('gives default bounds of a quarter to four times the start', () => {
    expect(defaultBounds({ cpuLimit: 1, memoryLimit: 2 ** 30, cpuWeight: 100, pidsLimit: 10 })).toEqual({
      cpuLimit: { min: 0.25, max: 4 },
      memoryLimit: { min: 2 ** 28, max: 2 ** 32 },
      cpuWeight: { min: 25, max: 400 },
    });
  });
});
