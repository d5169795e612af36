/** `stratoswarm personalities`: the presets' traits and the decision each trait drives. */
import type { Command } from 'commander';
import { DECISION_TABLE, decisionTableMarkdown, Personality } from '../../index.js';
import { action } from '../context.js';
import { json, print, table, withFormat, type OutputFormat } from '../format.js';

const SYMBOL: Record<string, string> = { riskTolerance: 'r', cooperation: 'k', exploration: 'x', efficiencyFocus: 'e', stability: 's' };

function value(id: string, v: number): string {
  if (id === 'hardLimits') return v === 1 ? 'hard' : 'soft';
  if (id.endsWith('Ms')) return v >= 60_000 ? `${(v / 60_000).toFixed(1)} min` : v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
  return Number(v.toFixed(3)).toString();
}

export function registerPersonalities(program: Command): void {
  withFormat(program.command('personalities').description('the personality presets, their traits and the decision table').option('--markdown', 'print the tables as markdown (as the README has them)')).action(
    action(async (_ctx, flags: { markdown?: boolean; format?: OutputFormat }) => {
      const presets = Personality.presets;
      if (flags.format === 'json') {
        return print(
          json({
            personalities: presets.map((p) => ({ name: p.name, traits: p.traits(), decisions: p.decisions })),
            decisions: DECISION_TABLE.map(({ evaluate: _e, ...rule }) => rule),
          }),
        );
      }
      if (flags.markdown) return print(decisionTableMarkdown());
      const traits = table(
        ['PERSONALITY', 'RISK (r)', 'COOPERATION (k)', 'EXPLORATION (x)', 'EFFICIENCY (e)', 'STABILITY (s)'],
        presets.map((p) => {
          const t = p.traits();
          return [p.name, t.riskTolerance, t.cooperation, t.exploration, t.efficiencyFocus, t.stability];
        }),
      );
      const decisions = table(
        ['DECISION', 'OUTPUT', 'FORMULA', 'RISES', 'FALLS', ...presets.map((p) => p.name.toUpperCase())],
        DECISION_TABLE.map((r) => [
          r.decision,
          r.output,
          r.formula,
          r.increasesWith.map((t) => SYMBOL[t]).join(',') || '-',
          r.decreasesWith.map((t) => SYMBOL[t]).join(',') || '-',
          ...presets.map((p) => value(r.id, p.decisions[r.id])),
        ]),
      );
      print(`${traits}\n\n${decisions}`);
    }),
  );
}
