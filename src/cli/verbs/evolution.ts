/**
 * `stratoswarm evolution <container>`: evolution state and fitness history, with a chart.
 * From the live controller when evolution runs in this process, else from the snapshot
 * persisted in the container's state record after each generation.
 */
import { plot } from 'asciichart';
import type { Command } from 'commander';
import type { EvolutionSnapshot, GenerationRecord, Genome } from '../../index.js';
import { action, findContainer } from '../context.js';
import { json, keyValues, print, table, withFormat, type OutputFormat } from '../format.js';
import { formatBytes } from '../units.js';

export interface EvolutionView {
  container: string;
  source: 'live' | 'persisted' | 'none';
  enabled: boolean;
  generation: number;
  trials: number;
  successes: number;
  failures: number;
  successRate: number;
  applied: Genome | null;
  best: Genome | null;
  bestFitness: number | null;
  history: readonly GenerationRecord[];
}

/** The persisted record (`record().evolution`) as a view; undefined when evolution never ran. */
export function persistedView(name: string, persisted: unknown): EvolutionView | undefined {
  const p = persisted as { snapshot?: EvolutionSnapshot; enabled?: boolean } | undefined;
  const e = p?.snapshot?.engine;
  if (!e) return undefined;
  const last = e.history[e.history.length - 1];
  return {
    container: name,
    source: 'persisted',
    enabled: !!p.enabled,
    generation: e.generation,
    trials: e.trials,
    successes: e.successes,
    failures: e.failures,
    successRate: e.successRate,
    applied: p.snapshot!.applied,
    best: last?.best ?? null,
    bestFitness: last?.bestFitness ?? null,
    history: e.history,
  };
}

const genome = (g: Genome | null) => (g ? Object.entries(g).map(([k, v]) => `${k}=${/memory/i.test(k) ? formatBytes(v) : Number(v.toPrecision(4))}`).join(' ') : '-');

/** The fitness of each generation as a terminal line chart (needs two measured points). */
export function fitnessChart(history: readonly GenerationRecord[], height = 8): string | undefined {
  const values = history.map((h) => h.fitness).filter((f): f is number => f !== null && Number.isFinite(f));
  if (values.length < 2) return undefined;
  return plot(values, { height, format: (x: number) => x.toFixed(3).padStart(9) });
}

export function registerEvolution(program: Command): void {
  withFormat(program.command('evolution').description("a container's evolution: state, best settings, fitness history").argument('<container>', 'name or id')).action(
    action(async (ctx, ref: string, flags: { format?: OutputFormat }) => {
      const c = await findContainer(ctx.runtime(), ref);
      const live = c.evolutionState();
      const view: EvolutionView = live
        ? { container: c.name, source: 'live', enabled: live.running, generation: live.generation, trials: live.trials, successes: live.successes, failures: live.failures, successRate: live.successRate, applied: live.applied, best: live.best, bestFitness: live.bestFitness, history: live.history }
        : (persistedView(c.name, c.record().evolution) ?? { container: c.name, source: 'none', enabled: false, generation: 0, trials: 0, successes: 0, failures: 0, successRate: 0, applied: null, best: null, bestFitness: null, history: [] });
      if (flags.format === 'json') return print(json(view));
      if (view.source === 'none') return print(`container ${c.name} has never evolved (run it with --evolve)`);
      const head = keyValues([
        ['Container', view.container],
        ['Source', view.source === 'live' ? 'live (this process)' : 'persisted snapshot'],
        ['Enabled', view.enabled ? 'yes' : 'no'],
        ['Generation', view.generation],
        ['Trials', `${view.trials} (${view.successes} better, ${view.failures} worse; success rate ${view.successRate.toFixed(2)})`],
        ['In force', genome(view.applied)],
        ['Best', `${genome(view.best)} (fitness ${view.bestFitness?.toFixed(4) ?? '-'})`],
      ]);
      const hist = table(
        ['GEN', 'KIND', 'FITNESS', 'ACCEPTED', 'STEP', 'GENOME'],
        view.history.map((h) => [h.generation, h.kind, h.fitness?.toFixed(4) ?? '-', h.accepted ? 'yes' : 'no', h.stepSize.toFixed(3), genome(h.genome)]),
      );
      const chart = fitnessChart(view.history);
      print([head, '', hist, ...(chart ? ['', 'fitness per generation:', chart] : [])].join('\n'));
    }),
  );
}
