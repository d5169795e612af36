/** The five traits in [0, 1]; kept apart so the decision table and the class can both use them without a cycle. */
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
