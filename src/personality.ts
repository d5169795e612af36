/**
 * Personalities: five traits in [0, 1] that drive every resource decision a container makes
 * on its own. Each decision is a closed-form function of the traits, listed once in
 * DECISION_TABLE, which both the code and the README read, so the two cannot drift apart.
 */
import { ConfigError, Problems, RuntimeError } from './errors.js';
import { UsageHistory } from './usage-histogram.js';

export { UsageHistory } from './usage-histogram.js';
export type { UsageSample, UsageHistoryOptions, UsageHistoryJSON } from './usage-histogram.js';

export const TRAIT_NAMES = ['riskTolerance', 'cooperation', 'exploration', 'efficiencyFocus', 'stability'] as const;
export type TraitName = (typeof TRAIT_NAMES)[number];

export interface PersonalityTraits {
  riskTolerance: number;
  cooperation: number;
  exploration: number;
  efficiencyFocus: number;
  stability: number;
}

/** The traits as `traits()` returns them: `explorationRate` is the spec's name for `exploration`. */
export type PersonalityTraitsView = Readonly<PersonalityTraits> & { readonly explorationRate: number };

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

function evaluateAll(t: PersonalityTraits): DecisionValues {
  const out = {} as Record<DecisionId, number>;
  for (const rule of DECISION_TABLE) out[rule.id] = rule.evaluate(t);
  return Object.freeze(out);
}

export class Personality {
  static readonly Conservative = new Personality('Conservative', {
    riskTolerance: 0.2,
    cooperation: 0.6,
    exploration: 0.3,
    efficiencyFocus: 0.7,
    stability: 0.9,
  });
  static readonly Aggressive = new Personality('Aggressive', {
    riskTolerance: 0.9,
    cooperation: 0.3,
    exploration: 0.8,
    efficiencyFocus: 0.9,
    stability: 0.4,
  });
  static readonly Balanced = new Personality('Balanced', {
    riskTolerance: 0.5,
    cooperation: 0.7,
    exploration: 0.5,
    efficiencyFocus: 0.6,
    stability: 0.7,
  });
  static readonly Explorer = new Personality('Explorer', {
    riskTolerance: 0.7,
    cooperation: 0.5,
    exploration: 0.95,
    efficiencyFocus: 0.4,
    stability: 0.3,
  });
  static readonly Cooperative = new Personality('Cooperative', {
    riskTolerance: 0.4,
    cooperation: 0.95,
    exploration: 0.4,
    efficiencyFocus: 0.5,
    stability: 0.6,
  });

  static readonly presets: readonly Personality[] = Object.freeze([
    Personality.Conservative,
    Personality.Aggressive,
    Personality.Balanced,
    Personality.Explorer,
    Personality.Cooperative,
  ]);

  readonly name: string;
  /** Every rule of DECISION_TABLE evaluated once, so a decision costs a few multiplications. */
  readonly decisions: DecisionValues;
  private readonly view: PersonalityTraitsView;

  private constructor(name: string, t: PersonalityTraits) {
    this.name = name;
    const traits: PersonalityTraits = {
      riskTolerance: t.riskTolerance,
      cooperation: t.cooperation,
      exploration: t.exploration,
      efficiencyFocus: t.efficiencyFocus,
      stability: t.stability,
    };
    this.view = Object.freeze({ ...traits, explorationRate: traits.exploration });
    this.decisions = evaluateAll(traits);
  }

  /**
   * A personality with the given traits, each in [0, 1]. `explorationRate` is accepted in
   * place of `exploration`. Throws a ConfigError naming every missing or invalid trait.
   */
  static custom(traits: Partial<PersonalityTraits> & { explorationRate?: number }, name = 'Custom'): Personality {
    const problems = new Problems();
    const given = { ...traits } as Record<string, unknown>;
    if (given.exploration === undefined && given.explorationRate !== undefined) given.exploration = given.explorationRate;
    for (const key of TRAIT_NAMES) {
      const v = given[key];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
        problems.add(key, v === undefined ? 'missing; expected a number in [0, 1]' : `expected a number in [0, 1], got ${JSON.stringify(v)}`);
      }
    }
    if (typeof name !== 'string' || name.trim() === '') problems.add('name', 'expected a non-empty string');
    problems.throwIfAny('invalid personality traits');
    return new Personality(name, given as unknown as PersonalityTraits);
  }

  /** A preset by name, case-insensitively. */
  static byName(name: string): Personality {
    const p = Personality.presets.find((x) => x.name.toLowerCase() === String(name).trim().toLowerCase());
    if (!p) {
      throw new ConfigError('invalid personality', [
        { field: 'personality', problem: `expected one of ${Personality.presets.map((x) => x.name).join(', ')}, got ${JSON.stringify(name)}` },
      ]);
    }
    return p;
  }

  static fromJSON(json: { name: string; traits: PersonalityTraits }): Personality {
    const preset = Personality.presets.find((p) => p.name === json?.name);
    if (preset && TRAIT_NAMES.every((k) => preset.view[k] === json.traits?.[k])) return preset;
    return Personality.custom(json?.traits ?? {}, json?.name ?? 'Custom');
  }

  traits(): PersonalityTraitsView {
    return this.view;
  }

  toJSON(): { name: string; traits: PersonalityTraits } {
    const { explorationRate: _alias, ...traits } = this.view;
    return { name: this.name, traits };
  }

  toString(): string {
    return this.name;
  }
}

// ---------------------------------------------------------------------------------------
// Resource allocation

export interface WorkloadRequest {
  /** Cores. */
  cpu?: number;
  /** Bytes. */
  memory?: number;
  gpus?: number;
  pids?: number;
}

export interface ResourcePlan {
  /** Cores, fractional: cpu.max quota / period. */
  cpuLimit: number;
  /** cgroup v2 cpu.weight, 1..10000. */
  cpuWeight: number;
  /** Bytes: memory.max with hard limits, memory.high without. */
  memoryLimit: number;
  /** Bytes: memory.low. */
  memoryReservation: number;
  pidsLimit: number;
  gpuCount: number;
  /**
   * true: enforce cpuLimit and memoryLimit as hard caps (cpu.max, memory.max).
   * false: the container shares instead; memoryLimit becomes a reclaim threshold
   * (memory.high) and contention is settled by cpuWeight and memoryReservation.
   */
  hardLimits: boolean;
  /** When any value of the plan last changed; the scale-down delay counts from here. */
  updatedAtMs?: number;
}

const MIB = 1024 * 1024;
const PAGE = 4096;
/** Used when the workload neither asks for a resource nor has a history of using it. */
export const DEFAULT_CPU_CORES = 1;
export const DEFAULT_MEMORY_BYTES = 256 * MIB;
export const DEFAULT_PIDS = 256;
const MIN_CPU_CORES = 0.01;
const MIN_MEMORY_BYTES = 16 * MIB;
/** Samples' worth of history at which observation and request weigh the same. */
const CONFIDENCE_SAMPLES = 30;
/** Usage at or above this fraction of the current limit means the limit hides the demand. */
const SATURATION = 0.9;

const okAmount = (v: unknown): boolean => v === undefined || (typeof v === 'number' && v >= 0 && v < Number.POSITIVE_INFINITY);
const okCount = (v: unknown): boolean => v === undefined || (typeof v === 'number' && v >= 0 && Number.isSafeInteger(v));

function validateWorkload(w: WorkloadRequest): void {
  // The common, valid case allocates nothing: decisions run often and must stay cheap.
  if (w && okAmount(w.cpu) && okAmount(w.memory) && okCount(w.gpus) && okCount(w.pids)) return;
  const problems = new Problems();
  for (const key of ['cpu', 'memory', 'gpus', 'pids'] as const) {
    const v = w?.[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      problems.add(`workload.${key}`, `expected a non-negative number, got ${JSON.stringify(v)}`);
    } else if ((key === 'gpus' || key === 'pids') && !Number.isInteger(v)) {
      problems.add(`workload.${key}`, `expected an integer, got ${v}`);
    }
  }
  problems.throwIfAny('invalid workload request');
}

/**
 * The demand to plan for: the request until the history has enough evidence, then more
 * and more the observed percentile.
 */
function demand(requested: number | undefined, observed: number | undefined, confidence: number, fallback: number): number {
  if (requested === undefined || requested === 0) return observed ?? requested ?? fallback;
  if (observed === undefined) return requested;
  return confidence * observed + (1 - confidence) * requested;
}

/**
 * Hysteresis: increases apply at once (a short container is worse than a wasteful one),
 * decreases wait out the delay and then close only part of the gap, and changes inside
 * the deadband are ignored both ways so noise never moves a limit.
 */
function settle(target: number, current: number | undefined, d: DecisionValues, canScaleDown: boolean): number {
  if (current === undefined || !(current > 0)) return target;
  if (Math.abs(target - current) <= d.deadband * current) return current;
  if (target > current) return target;
  if (!canScaleDown) return current;
  return current + d.scaleDownStep * (target - current);
}

/**
 * The resource plan for a workload. Pure when `nowMs` is given (it defaults to the newest
 * usage sample's time, then the clock): the same arguments give the same plan, and the
 * cost does not depend on how many samples or containers there are.
 */
export function allocateResources(
  personality: Personality,
  workload: WorkloadRequest = {},
  usage?: UsageHistory,
  current?: ResourcePlan,
  nowMs?: number,
): ResourcePlan {
  validateWorkload(workload);
  const d = personality.decisions;
  const now = nowMs ?? usage?.latestMs ?? Date.now();
  const n = usage ? usage.effectiveSamples(now) : 0;
  const confidence = n / (n + CONFIDENCE_SAMPLES);
  const seen = usage !== undefined && n > 0;

  const cpuHigh = seen ? usage.cpuPercentile(d.cpuPercentile) : undefined;
  const cpuMid = seen ? usage.cpuPercentile(0.5) : undefined;
  const memHigh = seen ? usage.memoryPercentile(d.memoryPercentile) : undefined;
  const memMid = seen ? usage.memoryPercentile(0.5) : undefined;

  const grow = 1 + d.headroom;
  let cpuLimit = demand(workload.cpu, cpuHigh, confidence, DEFAULT_CPU_CORES) * d.cpuProvisionFactor * grow;
  let memoryLimit = demand(workload.memory, memHigh, confidence, DEFAULT_MEMORY_BYTES) * d.memoryProvisionFactor * grow;
  // A container pinned at its limit shows usage equal to the limit, not its demand; only
  // growing past the limit reveals how much more it wants.
  if (current && cpuHigh !== undefined && cpuHigh >= SATURATION * current.cpuLimit) {
    cpuLimit = Math.max(cpuLimit, current.cpuLimit * d.saturationStep);
  }
  if (current && memHigh !== undefined && memHigh >= SATURATION * current.memoryLimit) {
    memoryLimit = Math.max(memoryLimit, current.memoryLimit * d.saturationStep);
  }
  let cpuWeight = 100 * demand(workload.cpu, cpuMid, confidence, DEFAULT_CPU_CORES) * d.cpuWeightFactor;
  let memoryReservation = demand(workload.memory, memMid, confidence, DEFAULT_MEMORY_BYTES) * d.reservationFraction;

  const lastChange = current?.updatedAtMs ?? Number.NEGATIVE_INFINITY;
  const canScaleDown = now - lastChange >= d.scaleDownDelayMs;
  cpuLimit = settle(cpuLimit, current?.cpuLimit, d, canScaleDown);
  memoryLimit = settle(memoryLimit, current?.memoryLimit, d, canScaleDown);
  cpuWeight = settle(cpuWeight, current?.cpuWeight, d, canScaleDown);
  memoryReservation = settle(memoryReservation, current?.memoryReservation, d, canScaleDown);

  cpuLimit = Math.max(MIN_CPU_CORES, Math.ceil(cpuLimit * 1000) / 1000);
  memoryLimit = Math.max(MIN_MEMORY_BYTES, Math.ceil(memoryLimit / PAGE) * PAGE);
  memoryReservation = Math.min(memoryLimit, Math.ceil(memoryReservation / PAGE) * PAGE);
  cpuWeight = Math.min(10_000, Math.max(1, Math.round(cpuWeight)));
  // Process counts and GPUs are not observed, and a GPU cannot be shared, so both are what
  // the workload asks for; only the pids default scales with risk.
  const pidsLimit = workload.pids || Math.ceil(DEFAULT_PIDS * d.cpuProvisionFactor);
  const gpuCount = workload.gpus ?? 0;
  const hardLimits = d.hardLimits === 1;

  const plan: ResourcePlan = { cpuLimit, cpuWeight, memoryLimit, memoryReservation, pidsLimit, gpuCount, hardLimits, updatedAtMs: now };
  if (
    current &&
    current.updatedAtMs !== undefined &&
    current.cpuLimit === cpuLimit &&
    current.cpuWeight === cpuWeight &&
    current.memoryLimit === memoryLimit &&
    current.memoryReservation === memoryReservation &&
    current.pidsLimit === pidsLimit &&
    current.gpuCount === gpuCount &&
    current.hardLimits === hardLimits
  ) {
    plan.updatedAtMs = current.updatedAtMs;
  }
  return plan;
}

// ---------------------------------------------------------------------------------------
// Restart policy

export interface RestartPolicy {
  maxRetries: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
}

export function restartPolicy(personality: Personality): RestartPolicy {
  const d = personality.decisions;
  return {
    maxRetries: d.maxRetries,
    initialBackoffMs: Math.round(d.initialBackoffMs),
    maxBackoffMs: Math.round(d.maxBackoffMs),
    multiplier: d.backoffMultiplier,
  };
}

/**
 * How long to wait before restart attempt `attempt` (1 for the first restart), or
 * undefined once the policy's retries are spent.
 */
export function restartBackoffMs(policy: RestartPolicy, attempt: number): number | undefined {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RuntimeError(`restart attempt must be an integer >= 1, got ${attempt}`, { code: 'EINVAL' });
  }
  if (attempt > policy.maxRetries) return undefined;
  return Math.round(Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (attempt - 1)));
}

// ---------------------------------------------------------------------------------------
// Evolution parameters

export interface EvolutionParameters {
  /** Initial mutation step: standard deviation of a gene's change, in log units. */
  initialStepSize: number;
  /** When measurements are noisy, the share of generations that try a new genome (the rest re-measure the incumbent). */
  trialRate: number;
}

export function evolutionParameters(personality: Personality): EvolutionParameters {
  const d = personality.decisions;
  return { initialStepSize: d.initialStepSize, trialRate: d.trialRate };
}

// ---------------------------------------------------------------------------------------
// README rendering

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
