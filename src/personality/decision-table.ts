/**
 * Each decision a personality makes is a closed-form function of the traits, listed once in
 * DECISION_TABLE, which both the code and the README read, so the two cannot drift apart.
 */
import type { PersonalityTraits, TraitName } from './traits.js';

export interface DecisionRule {
  id: DecisionId;
  /** Which decision the rule belongs to. */
  decision: 'allocation' | 'scale-down' | 'restart' | 'evolution';
  /** The quantity the rule sets, as the README names it. */
  output: string;
  /** The rule in the notation the README uses: r, k, x, e, s for the five traits. */
  formula: string;
  increasesWith: readonly TraitName[];
  decreasesWith: readonly TraitName[];
  evaluate(t: PersonalityTraits): number;
}

export type DecisionId =
  | 'cpuPercentile'
  | 'memoryPercentile'
  | 'cpuProvisionFactor'
  | 'memoryProvisionFactor'
  | 'headroom'
  | 'cpuWeightFactor'
  | 'reservationFraction'
  | 'hardLimits'
  | 'saturationStep'
  | 'scaleDownDelayMs'
  | 'scaleDownStep'
  | 'deadband'
  | 'maxRetries'
  | 'initialBackoffMs'
  | 'backoffMultiplier'
  | 'maxBackoffMs'
  | 'initialStepSize'
  | 'trialRate';

/**
 * Risk tolerance sets how far past the observed demand a container provisions (the spec's
 * Aggressive over-provisions for performance); efficiency focus only trims the separate
 * headroom term. The provisioning factor spans 1..2 and headroom 0..0.3, so risk dominates:
 * Aggressive (risk 0.9, efficiency 0.9) still ends up far above Conservative (0.2, 0.7).
 */
export const DECISION_TABLE: readonly DecisionRule[] = [
  {
    id: 'cpuPercentile',
    decision: 'allocation',
    output: 'CPU demand percentile q_cpu',
    formula: '0.80 + 0.19·r',
    increasesWith: ['riskTolerance'],
    decreasesWith: [],
    evaluate: (t) => 0.8 + 0.19 * t.riskTolerance,
  },
  {
    id: 'memoryPercentile',
    decision: 'allocation',
    output: 'memory demand percentile q_mem',
    formula: '0.95 + 0.049·r',
    increasesWith: ['riskTolerance'],
    decreasesWith: [],
    evaluate: (t) => 0.95 + 0.049 * t.riskTolerance,
  },
  {
    id: 'cpuProvisionFactor',
    decision: 'allocation',
    output: 'CPU provisioning factor P_cpu',
    formula: '1 + r',
    increasesWith: ['riskTolerance'],
    decreasesWith: [],
    evaluate: (t) => 1 + t.riskTolerance,
  },
  {
    id: 'memoryProvisionFactor',
    decision: 'allocation',
    output: 'memory provisioning factor P_mem',
    formula: '1 + 0.5·r',
    increasesWith: ['riskTolerance'],
    decreasesWith: [],
    evaluate: (t) => 1 + 0.5 * t.riskTolerance,
  },
  {
    id: 'headroom',
    decision: 'allocation',
    output: 'headroom H',
    formula: '0.30·(1 − e)',
    increasesWith: [],
    decreasesWith: ['efficiencyFocus'],
    evaluate: (t) => 0.3 * (1 - t.efficiencyFocus),
  },
  {
    id: 'cpuWeightFactor',
    decision: 'allocation',
    output: 'CPU weight per core used (× 100)',
    formula: '2^(1 − 2·k)',
    increasesWith: [],
    decreasesWith: ['cooperation'],
    evaluate: (t) => 2 ** (1 - 2 * t.cooperation),
  },
  {
    id: 'reservationFraction',
    decision: 'allocation',
    output: 'memory reservation, fraction of median use',
    formula: '0.25 + 0.75·k',
    increasesWith: ['cooperation'],
    decreasesWith: [],
    evaluate: (t) => 0.25 + 0.75 * t.cooperation,
  },
  {
    id: 'hardLimits',
    decision: 'allocation',
    output: 'hard limits (1) or soft limits (0)',
    formula: 'k < 0.8 ? 1 : 0',
    increasesWith: [],
    decreasesWith: ['cooperation'],
    evaluate: (t) => (t.cooperation < 0.8 ? 1 : 0),
  },
  {
    id: 'saturationStep',
    decision: 'allocation',
    output: 'minimum growth when usage reaches the limit',
    formula: '1 + 0.5·r',
    increasesWith: ['riskTolerance'],
    decreasesWith: [],
    evaluate: (t) => 1 + 0.5 * t.riskTolerance,
  },
  {
    id: 'scaleDownDelayMs',
    decision: 'scale-down',
    output: 'scale-down delay since the last change (ms)',
    formula: '30 000 · 64^s',
    increasesWith: ['stability'],
    decreasesWith: [],
    evaluate: (t) => 30_000 * 64 ** t.stability,
  },
  {
    id: 'scaleDownStep',
    decision: 'scale-down',
    output: 'fraction of a decrease applied per decision',
    formula: '1 − 0.8·s',
    increasesWith: [],
    decreasesWith: ['stability'],
    evaluate: (t) => 1 - 0.8 * t.stability,
  },
  {
    id: 'deadband',
    decision: 'scale-down',
    output: 'relative change ignored (either way)',
    formula: '0.02 + 0.10·s',
    increasesWith: ['stability'],
    decreasesWith: [],
    evaluate: (t) => 0.02 + 0.1 * t.stability,
  },
  {
    id: 'maxRetries',
    decision: 'restart',
    output: 'restart retries',
    formula: 'max(1, round(2 + 8·r − 2·s))',
    increasesWith: ['riskTolerance'],
    decreasesWith: ['stability'],
    evaluate: (t) => Math.max(1, Math.round(2 + 8 * t.riskTolerance - 2 * t.stability)),
  },
  {
    id: 'initialBackoffMs',
    decision: 'restart',
    output: 'first backoff (ms)',
    formula: '500 · 4^(s − r)',
    increasesWith: ['stability'],
    decreasesWith: ['riskTolerance'],
    evaluate: (t) => 500 * 4 ** (t.stability - t.riskTolerance),
  },
  {
    id: 'backoffMultiplier',
    decision: 'restart',
    output: 'backoff multiplier',
    formula: '1.5 + s',
    increasesWith: ['stability'],
    decreasesWith: [],
    evaluate: (t) => 1.5 + t.stability,
  },
  {
    id: 'maxBackoffMs',
    decision: 'restart',
    output: 'backoff cap (ms)',
    formula: '10 000 · 16^s',
    increasesWith: ['stability'],
    decreasesWith: [],
    evaluate: (t) => 10_000 * 16 ** t.stability,
  },
  {
    id: 'initialStepSize',
    decision: 'evolution',
    output: 'initial mutation step (log scale)',
    formula: '0.05 + 0.30·x',
    increasesWith: ['exploration'],
    decreasesWith: [],
    evaluate: (t) => 0.05 + 0.3 * t.exploration,
  },
  {
    id: 'trialRate',
    decision: 'evolution',
    output: 'share of noisy generations spent on trials',
    formula: '0.40 + 0.40·x',
    increasesWith: ['exploration'],
    decreasesWith: [],
    evaluate: (t) => 0.4 + 0.4 * t.exploration,
  },
];

export type DecisionValues = Readonly<Record<DecisionId, number>>;

/** Every rule evaluated once, so a decision later costs a lookup. */
export function evaluateAll(t: PersonalityTraits): DecisionValues {
  const out = {} as Record<DecisionId, number>;
  for (const rule of DECISION_TABLE) out[rule.id] = rule.evaluate(t);
  return Object.freeze(out);
}
