/** README rendering of the decision table. */
import { DECISION_TABLE, type DecisionId } from './decision-table.js';
import { Personality } from './personality.js';
import type { TraitName } from './traits.js';

function formatValue(id: DecisionId, v: number): string {
  if (id === 'hardLimits') return v === 1 ? 'hard' : 'soft';
  if (id.endsWith('Ms')) return v >= 60_000 ? `${(v / 60_000).toFixed(1)} min` : v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
  if (id === 'maxRetries') return String(v);
  return Number(v.toFixed(3)).toString();
}

const TRAIT_SYMBOL: Record<TraitName, string> = {
  riskTolerance: 'r',
  cooperation: 'k',
  exploration: 'x',
  efficiencyFocus: 'e',
  stability: 's',
};

/** The decision table as markdown, with each preset's value, for the README. */
export function decisionTableMarkdown(): string {
  const presets = Personality.presets;
  const head = `| Decision | Output | Formula | Rises with | Falls with | ${presets.map((p) => p.name).join(' | ')} |`;
  const sep = `|${' --- |'.repeat(5 + presets.length)}`;
  const rows = DECISION_TABLE.map((rule) => {
    const up = rule.increasesWith.map((t) => TRAIT_SYMBOL[t]).join(', ') || '—';
    const down = rule.decreasesWith.map((t) => TRAIT_SYMBOL[t]).join(', ') || '—';
    const values = presets.map((p) => formatValue(rule.id, p.decisions[rule.id]));
    return `| ${rule.decision} | ${rule.output} | \`${rule.formula}\` | ${up} | ${down} | ${values.join(' | ')} |`;
  });
  const traitsHead = `| Personality | Risk tolerance (r) | Cooperation (k) | Exploration (x) | Efficiency focus (e) | Stability (s) |`;
  const traitRows = presets.map((p) => {
    const t = p.traits();
    return `| ${p.name} | ${t.riskTolerance} | ${t.cooperation} | ${t.exploration} | ${t.efficiencyFocus} | ${t.stability} |`;
  });
  return [traitsHead, '| --- | --- | --- | --- | --- | --- |', ...traitRows, '', head, sep, ...rows].join('\n');
}
