/** How boldly a personality's evolution explores, from the decision table. */
import type { Personality } from './personality.js';

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
