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
export type { TerminalSession } from './container/terminal.js';
export type { LogLine, LogOptions } from './container/logs.js';
export type { StatsPart } from './container/stats.js';
export type { ContainerStorage } from './container/storage.js';
export type { SpawnPlan, ExecPlan, ProcessPlan, ContainerPaths, NamespaceName, PlanSecurity, PlanUser, PlanVolume, PlanPlacement } from './plan/types.js';
export type { GpuInventory, GpuAssignment } from './gpu/inventory.js';
export type { GpuAssignmentRecord, GpuStrategy } from './gpu/scheduler.js';
export type { HostTopology, GpuTopology, NumaNodeInfo } from './gpu/topology.js';
export type { ContainerGpuUsage } from './gpu/accounting.js';
export type { CdiSpec, CdiEdits, CdiDeviceNode, CdiMount, CdiHook } from './gpu/cdi/spec.js';
export type { NvmlDevice, NvmlInventory } from './kernel/native.js';
export type { NetDevCounters } from './kernel/host.js';
export type { FaultHook, FaultStep, OperationStep, ProvisionStep, ReconcileReport } from './parts.js';
export { PROVISION_STEPS, OPERATION_STEPS } from './parts.js';
export type { ImageConfig } from './image/config.js';
export type { ImageRecord, ResolvedImage, RefRecord } from './image/store.js';
export type { PasswdEntry, ImageStoreOptions } from './image/images.js';
export type { ImageReference } from './image/reference.js';
export type { PullOptions, PullProgress, PullResult, LayerState } from './image/pull.js';
export type { ImportOptions, Imported } from './image/layout.js';
export type { ImageSummary, ImageUser, PruneResult, DiskUsage } from './image/manage.js';
export type { Credentials } from './image/auth.js';
export type { Platform } from './image/media.js';
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
export { ImageStore } from './image/images.js';
export { BASE_IMAGE } from './image/base.js';
export { parseReference, formatReference, familiarReference } from './image/reference.js';
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
export { CgroupDriver, detectCgroups, renderMappingTable } from './isolation/index.js';
export type { Resources, CgroupStats, CgroupDriverOptions, CgroupLayout, DetectOptions, Controller, DeviceRule, BlockIoLimit, HugetlbLimit } from './isolation/index.js';
export type { BridgeNetworkOptions, Attachment, CniResult } from './network/cni.js';
export type { CheckpointOptions, CheckpointResult } from './checkpoint/checkpoint.js';
export type { RestoreOptions } from './checkpoint/restore.js';
export type { CheckpointManifest } from './checkpoint/files.js';
export type { MigrateOptions, MigrationResult } from './checkpoint/restore.js';
export { exportCheckpoint, importCheckpoint } from './checkpoint/migrate.js';
