/**
 * Personalities: five traits in [0, 1] that drive every resource decision a container makes
 * on its own. The presets are the spec's; custom ones are validated here.
 */
import { ConfigError, Problems } from '../errors.js';
import { evaluateAll, type DecisionValues } from './decision-table.js';
import { TRAIT_NAMES, type PersonalityTraits, type PersonalityTraitsView } from './traits.js';

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
