/**
 * What a Runtime is made of, as the container modules use it. Not part of the public API:
 * `Runtime` exposes options and operations; the kernel seam, the spawner and the cgroup
 * driver stay behind it (tests and the runtime's own modules reach them through
 * `runtimeParts()`).
 */
import { fromNodeError, type Step } from './errors.js';
import type { WarmPool } from './pool/pool.js';
import type { RuntimeOptions } from './config.js';
import type { RuntimeEvent } from './container/types.js';
import type { ContainerStorage } from './container/storage.js';
import type { GpuSetup } from './gpu/host.js';
import type { GpuInventory } from './gpu/inventory.js';
import type { GpuAssignmentStore } from './gpu/store.js';
import type { HostTopology } from './gpu/topology.js';
import type { IdRangeAllocator } from './idmap.js';
import type { ImageStore } from './image/images.js';
import type { CgroupDriver } from './isolation/driver.js';
import type { Kernel } from './kernel/kernel.js';
import type { Logger } from './logger.js';
import type { BridgeNetwork } from './network/cni.js';
import type { Spawner, SpawnerExit } from './spawner/client.js';
import type { StateStore } from './state.js';

/** What a reconciliation found and did. */
export interface ReconcileReport {
  /** Containers torn down: half-made by a process that died, from an earlier boot, or cgroups with no state. */
  removed: string[];
  /** State files that were not records, moved under quarantine/. */
  quarantined: string[];
}

/** What containers with network "bridge" are attached by (BridgeNetwork: the CNI plugins). */
export type NetworkAttacher = Pick<BridgeNetwork, 'add' | 'del' | 'setBandwidth'>;

/** The named steps of provisioning, in order; fault injection names them. */
export const PROVISION_STEPS = ['claim-name', 'state', 'id-range', 'storage', 'cgroups', 'spawn', 'network', 'watch'] as const;
export type ProvisionStep = (typeof PROVISION_STEPS)[number];

/** The named steps of the other operations: before the work of each (teardown: after remove's kill). */
export const OPERATION_STEPS = ['start', 'exec', 'update', 'stop', 'remove', 'teardown'] as const;
export type OperationStep = (typeof OPERATION_STEPS)[number];
export type FaultStep = ProvisionStep | OperationStep;

/**
 * Called before each named step of create (provisioning), start, exec, update, stop and
 * remove; a test makes it throw to fail that step, or kills the process there.
 */
export type FaultHook = (step: FaultStep) => void | Promise<void>;

/** Where each operation step's failures are reported. */
const OPERATION_ERROR_STEP: Record<OperationStep, Step> = { start: 'spawner', exec: 'spawner', update: 'cgroup', stop: 'signal', remove: 'cleanup', teardown: 'cleanup' };

/**
 * Runs the fault hook before operation step `step` of `what` ("start container web"): what
 * it throws fails the step as a system call failing there would (ENOSPC, EMFILE, EIO: a
 * RuntimeError naming the step and the errno).
 */
export async function atStep(parts: Pick<RuntimeParts, 'faults'>, step: OperationStep, what: string, containerId: string): Promise<void> {
  if (!parts.faults) return;
  try {
    await parts.faults(step);
  } catch (e) {
    const err = fromNodeError(e, OPERATION_ERROR_STEP[step], `${what}: step ${step}`);
    err.containerId = containerId;
    throw err;
  }
}

export interface RuntimeParts {
  readonly options: RuntimeOptions;
  readonly kernel: Kernel;
  readonly logger: Logger;
  readonly images: ImageStore;
  readonly state: StateStore;
  readonly spawner: Spawner;
  readonly cgroups: CgroupDriver;
  readonly idRanges: IdRangeAllocator;
  readonly network: NetworkAttacher;
  readonly storage: ContainerStorage;
  readonly faults: FaultHook | undefined;
  /** Containers created ahead of need (runtime.pool). */
  readonly pool: WarmPool;
  /** Ids this process is provisioning right now. */
  readonly creating: Set<string>;
  storageDir(id: string): string;
  gpus(): Promise<GpuInventory>;
  /** Which GPUs containers hold, under the state root. */
  readonly gpuAssignments: GpuAssignmentStore;
  /** How this runtime gives containers GPUs and CDI devices (for prepare). */
  gpuSetup(): GpuSetup;
  topology(inv?: GpuInventory): Promise<HostTopology>;
  /** Removes what crashed runtimes left (once per runtime before its first container). */
  reconcile(again?: boolean): Promise<ReconcileReport>;
  /** Calls `listener` when the init of container `id` exits; returns the unsubscribe. */
  watchExit(id: string, listener: (e: SpawnerExit) => void): Promise<() => void>;
  /** How many exit listeners are registered (leak checks). */
  exitListenerCount(): number;
  /** Hands a container's event to Runtime.events() readers. */
  publish(e: RuntimeEvent): void;
}
