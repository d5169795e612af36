import { afterEach, describe, expect, it, vi } from 'vitest';
import { RuntimeError } from '../../src/errors.js';
import { EvolutionConfig } from '../../src/evolution/config.js';
import { EvolutionController, type EvolutionSnapshot, type EvolutionTarget } from '../../src/evolution/controller.js';
import type { Genome } from '../../src/evolution/genes.js';
import { resourceCost, type EvolutionMetrics } from '../../src/evolution/metrics.js';
import { MutationRate } from '../../src/evolution/rate.js';
import type { GenerationRecord } from '../../src/evolution/records.js';
import { Personality } from '../../src/personality/index.js';

/** An in-memory container: its "throughput" is a smooth function of its settings. */
class FakeTarget implements EvolutionTarget {
  settings: Genome;
  updates: Genome[] = [];
  samples = 0;
  failWhen: ((s: Record<string, number>) => boolean) | undefined;

  constructor(initial: Genome) {
    this.settings = { ...initial };
  }

  async update(s: Record<string, number>): Promise<void> {
    this.updates.push({ ...s });
    // Applies CPU first and fails on memory, as a kernel refusing memory.max would: the
    // controller must not leave that half-applied state behind.
    if (s.cpuLimit !== undefined) this.settings.cpuLimit = s.cpuLimit;
    if (this.failWhen?.(s)) throw new RuntimeError('memory.max: EBUSY', { code: 'EBUSY' });
    Object.assign(this.settings, s);
  }

  async sample(): Promise<EvolutionMetrics> {
    this.samples++;
    const { cpuLimit, memoryLimit } = this.settings as { cpuLimit: number; memoryLimit: number };
    const throughput = Math.min(cpuLimit, 1.2) * 1000 * (memoryLimit >= 700 * 2 ** 20 ? 1 : 0.5);
    return { throughput, cpuUsageCores: Math.min(cpuLimit, 1.2), cpuLimit, memoryBytes: 600 * 2 ** 20, memoryLimit, resourceUsage: resourceCost(cpuLimit, memoryLimit), intervalMs: 1000 };
  }
}

describe('EvolutionController', () => {
  const initial = { cpuLimit: 2, memoryLimit: 2 ** 30, cpuWeight: 100 };
  const config = () =>
    EvolutionConfig.builder()
      .mutationRate(MutationRate.Adaptive)
      .generationInterval(1000)
      .bounds('cpuLimit', 0.25, 4)
      .bounds('memoryLimit', 2 ** 28, 2 ** 32)
      .bounds('cpuWeight', 10, 1000)
      .seed(17)
      .build();

  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs generations by hand: measures, reports, applies the next proposal, persists', async () => {
    const target = new FakeTarget(initial);
    const persisted: EvolutionSnapshot[] = [];
    const records: GenerationRecord[] = [];
    const ctl = new EvolutionController(target, config(), { initial, persist: (s) => void persisted.push(s) });
    ctl.on('generation', (r: GenerationRecord) => records.push(r));
    expect(await ctl.step()).toBeNull(); // opens the first window
    for (let i = 0; i < 40; i++) await ctl.step();
    expect(records).toHaveLength(40);
    expect(persisted).toHaveLength(40);
    expect(records[0]).toMatchObject({ generation: 1, kind: 'baseline', genome: initial });
    expect(persisted.at(-1)!.engine.generation).toBe(40);
    const s = ctl.state();
    expect(s.generation).toBe(40);
    expect(s.bestFitness!).toBeGreaterThan(records[0]!.fitness!);
    expect(s.applied).toEqual(target.settings);
    // Every update carried a whole genome.
    for (const u of target.updates) expect(Object.keys(u).sort()).toEqual(['cpuLimit', 'cpuWeight', 'memoryLimit']);
    await ctl.stop();
    expect(target.settings).toEqual({ ...initial, ...s.best });
  });

  it('reverts a failed update to the whole best genome and records the failure', async () => {
    const target = new FakeTarget(initial);
    const ctl = new EvolutionController(target, config(), { initial });
    const records: GenerationRecord[] = [];
    ctl.on('generation', (r: GenerationRecord) => records.push(r));
    await ctl.step();
    target.failWhen = (s) => s.memoryLimit !== initial.memoryLimit;
    for (let i = 0; i < 30; i++) {
      await ctl.step();
      // Whatever happened, the target runs either the best genome or the one being measured.
      const state = ctl.state();
      const running = { cpuLimit: target.settings.cpuLimit, memoryLimit: target.settings.memoryLimit, cpuWeight: target.settings.cpuWeight };
      expect([state.best, state.current]).toContainEqual(running);
      expect(state.applied).toEqual(target.settings);
    }
    const failed = records.filter((r) => r.error !== undefined);
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) {
      expect(r.error).toMatch(/update failed: memory.max: EBUSY/);
      expect(r.fitness).toBeNull();
      expect(r.genome.memoryLimit).not.toBe(initial.memoryLimit);
    }
    expect(ctl.state().failures).toBe(failed.length);
    // Trials that only touched CPU or weight went through and were measured.
    expect(records.some((r) => r.kind === 'trial' && r.fitness !== null)).toBe(true);
  });

  it('continues after a restart from the persisted snapshot as if never interrupted', async () => {
    const run = async (interruptAt: number | undefined, generations: number) => {
      let target = new FakeTarget(initial);
      let snapshot: EvolutionSnapshot | undefined;
      const records: GenerationRecord[] = [];
      const make = (snap?: EvolutionSnapshot) => {
        const opts = { initial: { ...target.settings }, persist: (s: EvolutionSnapshot) => void (snapshot = JSON.parse(JSON.stringify(s))) };
        const ctl = new EvolutionController(target, config(), snap ? { ...opts, snapshot: snap } : opts);
        ctl.on('generation', (r: GenerationRecord) => records.push(r));
        return ctl;
      };
      let ctl = make();
      await ctl.step();
      while (records.length < generations) {
        if (records.length === interruptAt) {
          // The host restarts: the process and its controller are gone, the container's
          // settings and the persisted snapshot survive.
          await ctl.stop({ settle: false });
          target = Object.assign(new FakeTarget(target.settings), {});
          ctl = make(snapshot);
          await ctl.step();
          interruptAt = undefined;
        }
        await ctl.step();
      }
      return records.map((r) => JSON.parse(JSON.stringify(r)));
    };
    const straight = await run(undefined, 60);
    const interrupted = await run(23, 60);
    expect(interrupted).toEqual(straight);
  });

  it('runs on its timer, one generation per interval, and settles on the best genome when stopped', async () => {
    vi.useFakeTimers();
    const target = new FakeTarget(initial);
    const ctl = new EvolutionController(target, config(), { initial });
    const records: GenerationRecord[] = [];
    ctl.on('generation', (r: GenerationRecord) => records.push(r));
    ctl.start();
    expect(ctl.running).toBe(true);
    await vi.advanceTimersByTimeAsync(10_500);
    expect(records).toHaveLength(10);
    await ctl.stop();
    expect(ctl.running).toBe(false);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(records).toHaveLength(10);
    const best = ctl.state().best;
    expect(target.settings).toEqual({ ...initial, ...best });
  });

  it('finishes at the generation limit', async () => {
    vi.useFakeTimers();
    const target = new FakeTarget(initial);
    const cfg = EvolutionConfig.builder().generationInterval(100).maxGenerations(12).seed(3).build();
    const ctl = new EvolutionController(target, cfg, { initial, personality: Personality.Aggressive });
    const finished = new Promise<unknown>((resolve) => ctl.once('finished', resolve));
    ctl.start();
    await vi.advanceTimersByTimeAsync(5_000);
    const state = (await finished) as { generation: number; finished: boolean; best: Genome };
    expect(state).toMatchObject({ generation: 12, finished: true, running: false });
    expect(target.settings).toEqual({ ...initial, ...state.best });
  });

  it('reports sampling and fitness errors as events and keeps going', async () => {
    const target = new FakeTarget(initial);
    let calls = 0;
    const cfg = EvolutionConfig.builder()
      .fitnessFunction((m) => {
        if (++calls === 3) throw new Error('boom');
        return m.throughput;
      })
      .seed(1)
      .build();
    const ctl = new EvolutionController(target, cfg, { initial });
    const errors: Error[] = [];
    ctl.on('error', (e: Error) => errors.push(e));
    await ctl.step();
    const realSample = target.sample.bind(target);
    let sampled = 0;
    target.sample = async () => {
      if (++sampled === 4) throw new Error('cgroup gone');
      return realSample();
    };
    for (let i = 0; i < 10; i++) await ctl.step();
    expect(errors.map((e) => e.message)).toEqual(['boom', 'cgroup gone']);
    expect(ctl.state().history.some((r) => r.error === 'fitness function threw: boom')).toBe(true);
    expect(ctl.state().lastError).toBe('cgroup gone');
    expect(ctl.state().generation).toBeGreaterThan(5);
  });

  it('does not throw from the timer when nobody listens for errors', async () => {
    const target = new FakeTarget(initial);
    target.sample = async () => {
      throw new Error('no stats');
    };
    const ctl = new EvolutionController(target, config(), { initial });
    await expect(ctl.step()).resolves.toBeNull();
    expect(ctl.state().lastError).toBe('no stats');
  });

  it('persists a short history by default and the full one on request', async () => {
    const target = new FakeTarget(initial);
    let last: EvolutionSnapshot | undefined;
    const ctl = new EvolutionController(target, config(), { initial, persist: (s) => void (last = s) });
    for (let i = 0; i < 30; i++) await ctl.step();
    expect(last!.engine.history).toHaveLength(8);
    expect(last!.engine.history.at(-1)!.generation).toBe(29);
    expect(ctl.snapshot().engine.history).toHaveLength(29);
    expect(ctl.state().history).toHaveLength(29);
  });

  it('uses default bounds around the starting settings when none are configured', () => {
    const ctl = new EvolutionController(new FakeTarget(initial), EvolutionConfig.builder().build(), { initial });
    expect(Object.keys(ctl.state().stepSizes).sort()).toEqual(['cpuLimit', 'cpuWeight', 'memoryLimit']);
  });
});
