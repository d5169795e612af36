/**
 * The engine's tuning constants and its archive of incumbents: a newcomer joins the archive
 * beside the genomes it beat, and the leader is whichever has the highest running mean.
 */
import type { Genome } from './genes.js';
import type { ArchiveEntry, GenerationRecord, Pending } from './records.js';

/** Incumbents kept with their running means; a lucky newcomer falls back behind them. */
export const ARCHIVE_SIZE = 4;
/** Measurements per incumbent in its running mean; older ones age out so drift shows. */
export const MEASUREMENT_WINDOW = 8;
/** Relative noise below which measurements count as exact and re-measuring is skipped. */
export const NOISE_FLOOR = 0.002;
/** In exact mode, re-measure an incumbent this many generations old, to notice drift. */
export const STALE_AFTER = 25;
/** Memory of the noise estimate, in measurements. */
export const NOISE_DECAY = 0.95;
/** Chance that a trial mutates a given gene (at least one always mutates). */
export const GENE_MUTATION_PROBABILITY = 0.5;
/** Step growth on success; the shrink on failure is its fourth root, which settles the success rate at 1/5. */
export const STEP_UP = Math.exp(0.4);
export const STEP_DOWN = Math.exp(-0.1);

export const mean = (a: readonly number[]): number => {
  let s = 0;
  for (const v of a) s += v;
  return s / a.length;
};

export function sameGenome(a: Genome | null | undefined, b: Genome | null | undefined): boolean {
  if (!a || !b) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

export function copyEntry(e: ArchiveEntry): ArchiveEntry {
  return { id: e.id, x: e.x.slice(), genome: { ...e.genome }, fitness: e.fitness.slice(), measuredAt: e.measuredAt };
}

export function copyPending(p: Pending): Pending {
  return { kind: p.kind, genome: { ...p.genome }, entryId: p.entryId, x: p.x.slice(), step: p.step && p.step.slice(), mirrored: p.mirrored };
}

export function freezeRecord(r: GenerationRecord): GenerationRecord {
  Object.freeze(r.genome);
  Object.freeze(r.best);
  return Object.freeze(r);
}

export function evictWorst(archive: ArchiveEntry[], keepIndex: number): void {
  let worst = -1;
  for (let i = 0; i < archive.length; i++) {
    if (i === keepIndex) continue;
    const e = archive[i]!;
    if (worst < 0 || score(e) < score(archive[worst]!)) worst = i;
  }
  if (worst >= 0) archive.splice(worst, 1);
}

export function score(e: ArchiveEntry): number {
  return e.fitness.length === 0 ? Number.NEGATIVE_INFINITY : mean(e.fitness);
}

export function leader(archive: readonly ArchiveEntry[]): ArchiveEntry {
  let best = archive[0]!;
  let bestScore = score(best);
  for (let i = 1; i < archive.length; i++) {
    const s = score(archive[i]!);
    if (s > bestScore) {
      best = archive[i]!;
      bestScore = s;
    }
  }
  return best;
}

export function entry(archive: readonly ArchiveEntry[], id: number): ArchiveEntry | undefined {
  return archive.find((e) => e.id === id);
}
