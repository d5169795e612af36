/**
 * A Runtime binds the pieces one host agent uses: options (environment + explicit), the
 * kernel seam, the logger, the image store, the state store, the spawner of its state root,
 * the cgroup driver and the bridge network. `Runtime.default()` serves callers that pass
 * none. Only options and operations are public; the parts stay behind `runtimeParts()`.
 */
import { WarmPool } from './pool/pool.js';
import * as fs from 'node:fs';
import { EventEmitter, on } from 'node:events';
import { join } from 'node:path';
import { resolveOptions, type RuntimeOptions } from './config.js';
import type { RuntimeEvent } from './container/types.js';
import { hostStorage, type ContainerStorage } from './container/storage.js';
import { RuntimeError } from './errors.js';
import { CDI_SPEC_DIRS, CdiRegistry } from './gpu/cdi/registry.js';
import { discoverDriver, type DriverFiles, type GpuHostOptions, type GpuSetup } from './gpu/host.js';
import { gpuInventory, type GpuInventory } from './gpu/inventory.js';
import { DEFAULT_MPS_PIPE_DIR } from './gpu/quota.js';
import type { GpuAssignmentRecord } from './gpu/scheduler.js';
import { GpuAssignmentStore } from './gpu/store.js';
import { hostTopology, type HostTopology } from './gpu/topology.js';
import { IdRangeAllocator } from './idmap.js';
import { ImageStore } from './image/images.js';
import { CgroupDriver } from './isolation/driver.js';
import { readCgroupLayout } from './isolation/layout.js';
import { defaultKernel, NativeKernel, type Kernel } from './kernel/kernel.js';
import { createLogger, type Logger } from './logger.js';
import { BridgeNetwork } from './network/cni.js';
import type { FaultHook, NetworkAttacher, ReconcileReport, RuntimeParts } from './parts.js';
import { reconcileStateRoot } from './reconcile.js';
import { SpawnerClient, type Spawner, type SpawnerExit } from './spawner/client.js';
import { StateStore } from './state.js';

export interface RuntimeInit extends Partial<RuntimeOptions> {
  kernel?: Kernel;
  logger?: Logger;
  /** The spawner exits after this long without containers or clients (default 60 s). */
  spawnerIdleMs?: number;
  /** The spawner to use (default: the one of the state root, started on demand). */
  spawner?: Spawner;
  /** The cgroup driver (default: over the hierarchies this host mounts, under cgroupParent). */
  cgroups?: CgroupDriver;
  /** Where containers' own files are made (default: the host filesystem). */
  storage?: ContainerStorage;
  /** Called before each provisioning step: fault injection for tests. */
  faults?: FaultHook;
  /** NVML's library (default libnvidia-ml.so.1, or STRATOSWARM_NVML_LIBRARY). */
  nvmlLibrary?: string;
  /** Where GPUs and CDI devices come from (tests point these at fakes). */
  gpu?: GpuHostOptions;
  /** Attaches containers with network "bridge" (default: a BridgeNetwork over `bridge`). */
  network?: NetworkAttacher;
  /** The bridge for containers with network "bridge" (default ssbr0, 10.88.0.0/16). */
  bridge?: { name?: string; subnet?: string; pluginDirs?: string[] };
  env?: NodeJS.ProcessEnv;
}

type ExitListener = (e: SpawnerExit) => void;

const PARTS = new WeakMap<Runtime, Parts>();
/** The containers this process is provisioning now, whatever runtime does it. */
const CREATING = new Set<string>();

/** @internal The parts of a runtime, for the container modules and tests. */
export function runtimeParts(runtime: Runtime): Parts {
  const p = PARTS.get(runtime);
  if (!p) throw new RuntimeError('runtime is closed', { code: 'ESTATE', step: 'none' });
  return p;
}

/** @internal */
export class Parts implements RuntimeParts {
  readonly options: RuntimeOptions;
  readonly kernel: Kernel;
  readonly logger: Logger;
  readonly images: ImageStore;
  readonly state: StateStore;
  readonly spawner: Spawner;
  readonly idRanges: IdRangeAllocator;
  readonly network: NetworkAttacher;
  readonly storage: ContainerStorage;
  readonly faults: FaultHook | undefined;
  readonly bus = new EventEmitter();
  readonly pool: WarmPool = new WarmPool(this);
  private envPools = false;
  private cgroupDriver: CgroupDriver | undefined;
  private reconciled: Promise<ReconcileReport> | undefined;
  /** Per process, not per runtime: two runtimes of one process may share a state root. */
  readonly creating = CREATING;
  private readonly nvmlLibrary: string | undefined;
  private readonly gpuHost: GpuHostOptions;
  private driver: Promise<DriverFiles> | undefined;
  readonly gpuAssignments: GpuAssignmentStore;
  private exitListeners = new Map<string, Set<ExitListener>>();
  private unsubscribe: (() => void) | undefined;
  private subscribing: Promise<void> | undefined;

  constructor(init: RuntimeInit) {
    const { kernel, logger, spawnerIdleMs, env, bridge, nvmlLibrary, gpu, spawner, cgroups, storage, faults, network, ...explicit } = init;
    this.nvmlLibrary = nvmlLibrary ?? (env ?? process.env).STRATOSWARM_NVML_LIBRARY;
    const cdiDirs = (env ?? process.env).STRATOSWARM_CDI_SPEC_DIRS;
    this.gpuHost = { ...gpu, cdiSpecDirs: gpu?.cdiSpecDirs ?? (cdiDirs ? cdiDirs.split(':').filter(Boolean) : undefined) };
    this.options = Object.freeze(resolveOptions(explicit, env ?? process.env));
    this.kernel = kernel ?? defaultKernel();
    this.logger = logger ?? createLogger(this.options.logLevel);
    this.images = new ImageStore(this.options.imageRoot, this.options.registry, {
      insecureRegistries: this.options.insecureRegistries,
      authFile: this.options.registryAuthFile || undefined,
      users: () => this.state.list().map((r) => ({ id: r.id, ref: r.image.ref, layers: r.image.layers })),
    });
    this.state = new StateStore(this.options.stateRoot);
    this.network = network ?? new BridgeNetwork({
      bridge: bridge?.name,
      subnet: bridge?.subnet,
      pluginDirs: bridge?.pluginDirs,
      dataDir: join(this.options.stateRoot, 'cni'),
      kernel: this.kernel,
    });
    this.gpuAssignments = new GpuAssignmentStore(this.options.stateRoot, {
      processStartTime: (pid) => this.kernel.processStartTime(pid),
      containerExists: (id) => fs.existsSync(join(this.state.dir(id), 'state.json')),
    });
    this.idRanges = new IdRangeAllocator(this.options.stateRoot, (owner) => fs.existsSync(join(this.state.dir(owner), 'state.json')));
    this.spawner = spawner ?? new SpawnerClient({ stateRoot: this.options.stateRoot, kernel: this.kernel, idleMs: spawnerIdleMs });
    this.cgroupDriver = cgroups;
    this.storage = storage ?? hostStorage;
    this.faults = faults;
    // Runtime.events() iterators each add a listener; many is normal.
    this.bus.setMaxListeners(0);
  }

  /** The cgroup driver over this host's hierarchies, made on first use (reads mountinfo). */
  get cgroups(): CgroupDriver {
    if (!this.cgroupDriver) {
      const kernel = this.kernel;
      this.cgroupDriver = new CgroupDriver(kernel, readCgroupLayout(kernel), this.options.cgroupParent, {
        devicePrograms: { attachDeviceProgram: (dir, rules) => kernel.attachDeviceProgram(dir, rules) },
        placement: (id) => this.recordedCgroupPath(id),
      });
    }
    return this.cgroupDriver;
  }

  /** A container's own cgroup path as its record keeps it (OCI linux.cgroupsPath). */
  private recordedCgroupPath(id: string): string | undefined {
    try {
      return this.state.load(id).cgroupPath;
    } catch (e) {
      if (e instanceof RuntimeError && e.code === 'ENOTFOUND') return undefined;
      throw e;
    }
  }

  storageDir(id: string): string {
    return join(this.options.imageRoot, 'containers', id);
  }

  async gpus(): Promise<GpuInventory> {
    const inv = await gpuInventory(this.kernel, this.nvmlLibrary, this.gpuHost.devDir);
    // The nvidia engine injects the driver's files; they are looked up once per runtime.
    if (this.options.engine === 'nvidia') {
      this.driver ??= discoverDriver(this.kernel, inv.driverVersion, this.gpuHost);
      this.driverFiles = await this.driver;
    }
    return inv;
  }

  private driverFiles: DriverFiles | undefined;

  gpuSetup(): GpuSetup {
    const h = this.gpuHost;
    return {
      engine: this.options.engine,
      cdi: () => CdiRegistry.load(h.cdiSpecDirs ?? CDI_SPEC_DIRS),
      driver: this.driverFiles,
      devDir: h.devDir ?? '/dev',
      mpsPipeDir: h.mpsPipeDir ?? DEFAULT_MPS_PIPE_DIR,
      capsDir: h.nvidiaCapsDir,
      assigned: (id) => this.gpuAssignments.held(id),
    };
  }

  /** The host's CPUs, NUMA nodes and GPUs, for scheduling and runtime.topology(). */
  async topology(inv?: GpuInventory): Promise<HostTopology> {
    const gpus = inv ?? (await this.gpus());
    return hostTopology(gpus.devices, this.gpuHost.sysDir, this.gpuHost.pciDir);
  }

  /** The first use's reconciliation runs once; reconcile() on demand runs a new pass after any other. */
  reconcile(again = false): Promise<ReconcileReport> {
    if (this.reconciled && !again) return this.reconciled;
    const pass = (this.reconciled ?? Promise.resolve()).catch(() => undefined).then(() => reconcileStateRoot(this));
    this.reconciled = pass;
    void pass.then(() => this.startEnvironmentPools(), () => undefined);
    return pass;
  }

  async watchExit(id: string, listener: ExitListener): Promise<() => void> {
    let set = this.exitListeners.get(id);
    if (!set) this.exitListeners.set(id, (set = new Set()));
    set.add(listener);
    const release = () => {
      set.delete(listener);
      if (set.size === 0 && this.exitListeners.get(id) === set) this.exitListeners.delete(id);
    };
    if (!this.unsubscribe) {
      this.subscribing ??= this.spawner
        .onExit((e) => {
          for (const l of this.exitListeners.get(e.id) ?? []) l(e);
        })
        .then((u) => {
          this.unsubscribe = u;
        })
        .finally(() => {
          this.subscribing = undefined;
        });
      try {
        await this.subscribing;
      } catch (e) {
        release();
        throw e;
      }
    }
    return release;
  }

  /** STRATOSWARM_POOL: the shapes (an image with default settings) kept warm from first use. */
  private startEnvironmentPools(): void {
    if (this.envPools) return;
    this.envPools = true;
    for (const { image, size } of this.options.pool) {
      this.pool.configure({ image }, { size }).catch((e: unknown) => this.logger.warn({ err: e, image }, 'STRATOSWARM_POOL: could not fill the pool'));
    }
  }

  exitListenerCount(): number {
    let n = 0;
    for (const s of this.exitListeners.values()) n += s.size;
    return n;
  }

  publish(e: RuntimeEvent): void {
    this.bus.emit('event', e);
  }

  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.exitListeners.clear();
    this.spawner.close();
    this.bus.emit('close');
  }
}

export class Runtime {
  readonly options: Readonly<RuntimeOptions>;
  readonly logger: Logger;
  readonly images: ImageStore;
  /** Containers created ahead of need: `pool.configure(shape, { size })`, `pool.stats()`. */
  readonly pool: WarmPool;

  private static shared: Runtime | undefined;

  constructor(init: RuntimeInit = {}) {
    const parts = new Parts(init);
    PARTS.set(this, parts);
    this.options = parts.options;
    this.logger = parts.logger;
    this.images = parts.images;
    this.pool = parts.pool;
  }

  /** The runtime configured from the environment, created on first use. */
  static default(): Runtime {
    Runtime.shared ??= new Runtime();
    return Runtime.shared;
  }

  /**
   * Brings the state root back to what someone can act on (done once before this runtime's
   * first container; call it again any time): bad state files quarantined, containers from
   * an earlier boot or half-made by a process that died torn down, cgroups with no state
   * emptied and removed.
   */
  reconcile(): Promise<ReconcileReport> {
    return runtimeParts(this).reconcile(true);
  }

  /** The host's GPUs (through NVML when its library loads, else from /dev) and which containers hold them. */
  async gpus(): Promise<GpuInventory & { assignments: GpuAssignmentRecord[] }> {
    const parts = runtimeParts(this);
    const inv = await parts.gpus();
    const assignments = parts.gpuAssignments.list();
    const holding = (f: (a: GpuAssignmentRecord) => boolean) => assignments.filter(f).map((a) => a.containerId);
    return {
      ...inv,
      assignments,
      devices: inv.devices.map((d) => ({
        ...d,
        assignedTo: holding((a) => a.gpus.includes(d.index)),
        ...(d.migInstances ? { migInstances: d.migInstances.map((m) => ({ ...m, assignedTo: holding((a) => !!a.mig?.includes(m.id)) })) } : {}),
      })),
    };
  }

  /** NUMA nodes (CPUs, memory, distances) and GPUs (PCI bus, NUMA node, NVLink peers) of this host. */
  topology(): Promise<HostTopology> {
    return runtimeParts(this).topology();
  }

  /**
   * Every event of every container of this runtime (`state`, `exit`, `oom`, `generation`,
   * `evolutionError`) as they happen, until the runtime closes or `signal` aborts.
   */
  async *events(opts: { signal?: AbortSignal } = {}): AsyncGenerator<RuntimeEvent> {
    const parts = runtimeParts(this);
    const stop = new AbortController();
    const onClose = () => stop.abort();
    parts.bus.once('close', onClose);
    const abort = () => stop.abort();
    opts.signal?.addEventListener('abort', abort, { once: true });
    try {
      for await (const [e] of on(parts.bus, 'event', { signal: stop.signal })) yield e as RuntimeEvent;
    } catch (e) {
      if (!stop.signal.aborted) throw e;
      // The caller's abort is an error to the caller; the runtime closing just ends the stream.
      if (opts.signal?.aborted) throw opts.signal.reason ?? e;
    } finally {
      parts.bus.off('close', onClose);
      opts.signal?.removeEventListener('abort', abort);
    }
  }

  /**
   * Ends this runtime's use of its spawner. With `stopSpawner`, asks the spawner to exit
   * once no container is left (`force`: kill those left first); tests use it so that no
   * spawner outlives them.
   */
  async close(opts: { stopSpawner?: boolean; force?: boolean } = {}): Promise<void> {
    const parts = PARTS.get(this);
    if (!parts) return;
    await parts.pool.close();
    parts.close();
    if (opts.stopSpawner) await parts.spawner.shutdown(opts.force ?? false);
    if (Runtime.shared === this) Runtime.shared = undefined;
  }

  /** `await using runtime = new Runtime()`: closes it (containers keep running). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Requires root when this runtime drives the real kernel (a fake kernel needs none). */
  assertPrivileged(): void {
    if (runtimeParts(this).kernel instanceof NativeKernel) Runtime.assertPrivileged();
  }

  /** Requires root: every container operation needs it. */
  static assertPrivileged(): void {
    if (process.platform !== 'linux') {
      throw new RuntimeError('stratoswarm-runtime runs containers on Linux only', { code: 'EUNSUPPORTED', step: 'none' });
    }
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new RuntimeError('running containers needs root (namespaces, mounts, cgroups)', { code: 'EUNSUPPORTED', step: 'none', errno: 'EPERM' });
    }
  }
}
