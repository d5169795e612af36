/**
 * The engine's plain data: the records it reports and the snapshot it persists. Archive
 * entries and pending proposals live here because a snapshot carries them verbatim.
 */
import type { GeneBounds, Genome } from './genes.js';
import type { PlateauState } from './plateau.js';

export type GenerationKind = 'baseline' | 'remeasure' | 'trial';

export interface GenerationRecord {
  /** 1 for the first generation. */
  generation: number;
  /** baseline: the starting genome's first measurement; remeasure: the incumbent again; trial: a mutation. */
  kind: GenerationKind;
  genome: Genome;
  /** null when the generation failed. */
  fitness: number | null;
  /** A trial that became the new best genome. */
  accepted: boolean;
  best: Genome;
  /** Running mean of the best genome's recent measurements. */
  bestFitness: number | null;
  /** Geometric mean of the genes' step sizes after this generation. */
  stepSize: number;
  /** Estimated relative measurement noise (standard deviation / mean), once known. */
  noise: number | null;
  error?: string;
}

export interface ArchiveEntry {
  id: number;
  x: number[];
  genome: Genome;
  fitness: number[];
  measuredAt: number;
}

export interface Pending {
  kind: GenerationKind;
  genome: Genome;
  entryId: number; // the measured entry, or the parent of a trial
  x: number[];
  step: number[] | null;
  mirrored: boolean;
}

export interface EngineSnapshot {
  version: 1;
  genes: Array<{ name: string } & Required<GeneBounds>>;
  mutationRate: { kind: 'adaptive' | 'fixed'; rate?: number };
  trialRate: number;
  maxGenerations: number | null;
  historyLimit: number;
  rng: number[];
  sigma: number[];
  archive: ArchiveEntry[];
  nextId: number;
  pending: Pending | null;
  mirror: { parentId: number; step: number[] } | null;
  credit: number;
  noise: { sum: number; weight: number };
  generation: number;
  trials: number;
  successes: number;
  failures: number;
  successRate: number;
  /** Absent in snapshots from before flat regions were detected: not on a plateau. */
  plateau?: PlateauState;
  history: GenerationRecord[];
}

export interface EngineState {
  generation: number;
  finished: boolean;
  /** The genome awaiting a report, if any. */
  current: Genome | null;
  best: Genome;
  bestFitness: number | null;
  stepSizes: Record<string, number>;
  successRate: number;
  noise: number | null;
  trials: number;
  successes: number;
  failures: number;
  history: readonly GenerationRecord[];
}
