/** Personalities and the decisions they drive: the public names, each from the module that defines it. */
export { TRAIT_NAMES, type PersonalityTraits, type PersonalityTraitsView, type TraitName } from './traits.js';
export { DECISION_TABLE, type DecisionId, type DecisionRule, type DecisionValues } from './decision-table.js';
export { Personality } from './personality.js';
export {
  DEFAULT_CPU_CORES,
  DEFAULT_MEMORY_BYTES,
  DEFAULT_PIDS,
  allocateResources,
  type ResourcePlan,
  type WorkloadRequest,
} from './allocate.js';
export { restartBackoffMs, restartPolicy, type RestartPolicy } from './restart.js';
export { evolutionParameters, type EvolutionParameters } from './evolution-parameters.js';
export { decisionTableMarkdown } from './markdown.js';
export { UsageHistory } from '../usage-histogram.js';
export type { UsageSample, UsageHistoryOptions, UsageHistoryJSON } from '../usage-histogram.js';
