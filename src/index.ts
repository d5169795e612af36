/** stratoswarm-runtime: the public API. */
export { Container } from './container/container.js';
export { signalName, signalNumber, SIGNALS } from './signals.js';
export type {
  ContainerEvents,
  ContainerStatus,
  ContainerStats,
  EvolutionOptions,
  ExecOptions,
  ExecProcess,
  ExecResult,
  ExitStatus,
  OperationOptions,
  ResourceUpdate,
  RuntimeEvent,
  StateChange,
} from './container/types.js';
export type { LogLine, LogOptions } from './container/logs.js';
export type { StatsPart } from './container/stats.js';
export type { ContainerStorage } from './container/storage.js';
export type { SpawnPlan, ExecPlan, ProcessPlan, ContainerPaths, NamespaceName, PlanSecurity, PlanUser, PlanVolume, PlanPlacement } from './plan/types.js';
export type { GpuInventory, GpuAssignment } from './gpu.js';
export type { NvmlDevice, NvmlInventory } from './kernel/native.js';
export type { NetDevCounters } from './kernel/host.js';
export type { FaultHook, ProvisionStep } from './parts.js';
export { PROVISION_STEPS } from './parts.js';
export type { ImageConfig, ImageRecord, ResolvedImage, PasswdEntry } from './images.js';
export { ContainerConfig, ContainerConfigBuilder, HardwareAffinity, HardwareAffinityBuilder, NumaNode } from './container/config.js';
export type { ContainerSpec, VolumeSpec, NetworkMode, ResourceSpec, HardwareAffinitySpec } from './container/config.js';
export { Runtime } from './runtime.js';
export type { RuntimeInit } from './runtime.js';
export { resolveOptions, DEFAULT_OPTIONS, ENVIRONMENT } from './config.js';
export type { RuntimeOptions, RuntimeEngine, LogLevel } from './config.js';
export { RuntimeError, ConfigError, ERROR_CODES, STEPS, fromNodeError } from './errors.js';
export type { ErrorCode, Step, FieldProblem } from './errors.js';
export { STATES, TRANSITIONS, canTransition } from './lifecycle.js';
export type { ContainerState } from './lifecycle.js';
export { ImageStore, BASE_IMAGE } from './images.js';
export { Personality } from './personality.js';
export type { PersonalityTraits, WorkloadRequest, ResourcePlan } from './personality.js';
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
export { allocateResources, restartPolicy, restartBackoffMs, evolutionParameters, DECISION_TABLE, decisionTableMarkdown } from './personality.js';
export type { RestartPolicy, EvolutionParameters } from './personality.js';
export { UsageHistory } from './usage-histogram.js';
export { EvolutionConfig, EvolutionConfigBuilder, EvolutionEngine, EvolutionController, MutationRate, defaultFitness, metricsBetween } from './evolution/index.js';
export type {
  EngineSnapshot,
  EngineState,
  EvolutionControllerOptions,
  EvolutionDefaults,
  EvolutionEngineOptions,
  EvolutionMetrics,
  EvolutionSnapshot,
  EvolutionState,
  EvolutionTarget,
  EvolutionTimers,
  FitnessFunction,
  GenerationKind,
  GenerationRecord,
  GeneBounds,
  Genome,
  ResourceReference,
  StatsReading,
} from './evolution/index.js';
export { BridgeNetwork } from './network/cni.js';
export { CgroupDriver, renderMappingTable } from './isolation/index.js';
export type { Resources, CgroupStats, CgroupDriverOptions, CgroupLayout, Controller, DeviceRule, BlockIoLimit, HugetlbLimit } from './isolation/index.js';
export type { BridgeNetworkOptions, Attachment, CniResult } from './network/cni.js';
