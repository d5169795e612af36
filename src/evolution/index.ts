/**
 * Evolution: a container tunes its own live-updatable resource settings (the genome) by
 * trying a mutation per generation, measuring it, and keeping what scores better.
 *
 * The public names of the evolution modules, for the package entry and outside users; the
 * modules themselves import from each other directly, never through here.
 */
export { MutationRate } from './rate.js';
export { DEFAULT_GENES, defaultBounds } from './genes.js';
export type { GeneBounds, Genome } from './genes.js';
export type { EngineSnapshot, EngineState, GenerationKind, GenerationRecord } from './records.js';
export { EvolutionEngine } from './engine.js';
export type { EvolutionEngineOptions } from './engine.js';
export { defaultFitness, metricsBetween, resourceCost } from './metrics.js';
export type { EvolutionMetrics, FitnessFunction, ResourceReference, StatsReading } from './metrics.js';
export { DEFAULT_GENERATION_INTERVAL_MS, EvolutionConfig, EvolutionConfigBuilder } from './config.js';
export type { EvolutionDefaults } from './config.js';
export { coalescingTimers } from './timers.js';
export { GenerationScheduler, gridFor } from './scheduler.js';
export type { EvolutionTimers } from './timers.js';
export { EvolutionController } from './controller.js';
export type { EvolutionControllerOptions, EvolutionSnapshot, EvolutionState, EvolutionTarget } from './controller.js';
