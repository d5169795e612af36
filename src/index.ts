/** stratoswarm-runtime: the public API. */
export { Container, signalName, signalNumber } from './container/container.js';
export type { ContainerStatus, ExitStatus, ExecOptions, ExecResult, StateChange } from './container/container.js';
export { ContainerConfig, ContainerConfigBuilder } from './container/config.js';
export type { ContainerSpec, VolumeSpec, NetworkMode, ResourceSpec } from './container/config.js';
export { HardwareAffinity, HardwareAffinityBuilder, NumaNode } from './container/hardware-affinity.js';
export type { HardwareAffinitySpec, NodeCpuLookup } from './container/hardware-affinity.js';
export { Runtime } from './runtime.js';
export type { RuntimeInit } from './runtime.js';
export { resolveOptions, DEFAULT_OPTIONS, ENVIRONMENT } from './config.js';
export type { RuntimeOptions, RuntimeEngine, LogLevel } from './config.js';
export { RuntimeError, ConfigError, ERROR_CODES, STEPS, fromNodeError } from './errors.js';
export type { ErrorCode, Step, FieldProblem } from './errors.js';
export { STATES, TRANSITIONS, canTransition } from './lifecycle.js';
export type { ContainerState } from './lifecycle.js';
export { ImageStore, BASE_IMAGE } from './images.js';
export { Personality } from './personality/personality.js';
export type { PersonalityTraits } from './personality/traits.js';
export type { WorkloadRequest, ResourcePlan } from './personality/allocate.js';
export {
  SecurityProfile,
  SecurityProfileBuilder,
  defaultSeccompProfile,
  defaultSeccompTemplate,
  parseOciSeccomp,
  securityReport,
  DEFAULT_CAPABILITIES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  CAPABILITY_NAMES,
} from './secure-runtime/index.js';
export type { SecurityOptions, SecurityReport, SeccompProfile, CompiledSecurity } from './secure-runtime/index.js';
export { allocateResources } from './personality/allocate.js';
export { restartPolicy, restartBackoffMs, type RestartPolicy } from './personality/restart.js';
export { evolutionParameters, type EvolutionParameters } from './personality/evolution-parameters.js';
export { DECISION_TABLE } from './personality/decision-table.js';
export { decisionTableMarkdown } from './personality/markdown.js';
export { UsageHistory } from './usage-histogram.js';
export { EvolutionConfig, EvolutionConfigBuilder, EvolutionEngine, EvolutionController, MutationRate, defaultFitness, metricsBetween } from './evolution.js';
export type { EvolutionMetrics, EvolutionState, FitnessFunction, Genome, GeneBounds } from './evolution.js';
export type { EvolutionOptions, ContainerStats, ResourceUpdate } from './container/container.js';
export { BridgeNetwork } from './network/cni.js';
export { CgroupDriver, renderMappingTable } from './isolation/index.js';
export type { Resources, CgroupStats } from './isolation/index.js';
