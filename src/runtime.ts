/**
 * A Runtime binds the pieces one host agent uses: options (environment + explicit), the
 * kernel seam, the logger, the image store, the state store, the spawner of its state root,
 * and the cgroup driver. `Runtime.default()` serves callers that pass none.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { resolveOptions, type RuntimeOptions } from './config.js';
import { RuntimeError } from './errors.js';
import { ImageStore } from './images.js';
import { defaultKernel, NativeKernel, type Kernel } from './kernel/kernel.js';
import { createLogger, type Logger } from './logger.js';
import { SpawnerClient, type Spawner, type SpawnerExit } from './spawner/client.js';
import { IdRangeAllocator } from './idmap.js';
import { gpuInventory, type GpuInventory } from './gpu.js';
import { CgroupDriver, readCgroupLayout } from './isolation/index.js';
import { BridgeNetwork } from './network/cni.js';
import { StateStore } from './state.js';

export interface RuntimeInit extends Partial<RuntimeOptions> {
  kernel?: Kernel;
  logger?: Logger;
  /** The spawner exits after this long without containers or clients (default 60 s). */
  spawnerIdleMs?: number;
  /** The spawner to use (default: the one of the state root, started on demand). */
  spawner?: Spawner;
  /** NVML's library (default libnvidia-ml.so.1, or STRATOSWARM_NVML_LIBRARY). */
  nvmlLibrary?: string;
  /** The bridge for containers with network "bridge" (default ssbr0, 10.88.0.0/16). */
  bridge?: { name?: string; subnet?: string; pluginDirs?: string[] };
  env?: NodeJS.ProcessEnv;
}

type ExitListener = (e: SpawnerExit) => void;

export class Runtime {
  readonly options: RuntimeOptions;
  readonly kernel: Kernel;
  readonly logger: Logger;
  readonly images: ImageStore;
  readonly state: StateStore;
  readonly spawner: Spawner;
  private cgroupDriver: CgroupDriver | undefined;
  private reconciled: Promise<string[]> | undefined;
  readonly idRanges: IdRangeAllocator;
  readonly network: BridgeNetwork;
  private readonly nvmlLibrary: string | undefined;
  private exitListeners = new Map<string, Set<ExitListener>>();
  private unsubscribe: (() => void) | undefined;
  private subscribing: Promise<void> | undefined;
  private lastCapCache: number | undefined;

  private static shared: Runtime | undefined;

  constructor(init: RuntimeInit = {}) {
    const { kernel, logger, spawnerIdleMs, env, bridge, nvmlLibrary, spawner, ...explicit } = init;
    this.nvmlLibrary = nvmlLibrary ?? (env ?? process.env).STRATOSWARM_NVML_LIBRARY;
    this.options = resolveOptions(explicit, env ?? process.env);
    this.kernel = kernel ?? defaultKernel();
    this.logger = logger ?? createLogger(this.options.logLevel);
    this.images = new ImageStore(this.options.imageRoot, this.options.registry);
    this.state = new StateStore(this.options.stateRoot);
    this.network = new BridgeNetwork({
      bridge: bridge?.name,
      subnet: bridge?.subnet,
      pluginDirs: bridge?.pluginDirs,
      dataDir: join(this.options.stateRoot, 'cni'),
    });
    this.idRanges = new IdRangeAllocator(this.options.stateRoot, (owner) => fs.existsSync(join(this.state.dir(owner), 'state.json')));
    this.spawner = spawner ?? new SpawnerClient({ stateRoot: this.options.stateRoot, kernel: this.kernel, idleMs: spawnerIdleMs });
  }

  /** The runtime configured from the environment, created on first use. */
  static default(): Runtime {
    Runtime.shared ??= new Runtime();
    return Runtime.shared;
  }

  /**
   * The cgroup driver, over the hierarchies this host mounts (v1, v2 or both), under the
   * configured parent. Created on first use.
   */
  get cgroups(): CgroupDriver {
    if (!this.cgroupDriver) {
      const kernel = this.kernel;
      this.cgroupDriver = new CgroupDriver(kernel, readCgroupLayout(kernel), this.options.cgroupParent, {
        devicePrograms: { attachDeviceProgram: (dir, rules) => kernel.attachDeviceProgram(dir, rules) },
      });
    }
    return this.cgroupDriver;
  }

  set cgroups(driver: CgroupDriver) {
    this.cgroupDriver = driver;
  }

  /**
   * Once per runtime, before its first container: removes the cgroups of containers that no
   * longer exist (left by a crash of an earlier runtime). Returns the ids removed.
   */
  reconcile(): Promise<string[]> {
    this.reconciled ??= (async () => {
      const known = new Set(this.state.ids());
      const removed: string[] = [];
      for (const id of this.cgroups.list()) {
        if (known.has(id)) continue;
        try {
          await this.cgroups.destroy(id);
          removed.push(id);
        } catch (e) {
          this.logger.warn({ err: e, container: id }, 'could not remove the cgroups of a container that no longer exists');
        }
      }
      if (removed.length) this.logger.info({ removed }, 'removed cgroups of containers that no longer exist');
      return removed;
    })();
    return this.reconciled;
  }

  /** The host's GPUs, through NVML when its library loads, else from /dev. */
  async gpus(): Promise<GpuInventory> {
    return gpuInventory(this.kernel, this.nvmlLibrary);
  }

  /** Where a container's writable layer, work dir, mount point and logs live. */
  storageDir(id: string): string {
    return join(this.options.imageRoot, 'containers', id);
  }

  /** The highest capability number this kernel knows (bounding-set drops go up to it). */
  lastCap(): number {
    if (this.lastCapCache === undefined) {
      try {
        this.lastCapCache = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
      } catch {
        this.lastCapCache = 40;
      }
    }
    return this.lastCapCache;
  }

  /** Calls `listener` when the init of container `id` exits. */
  async watchExit(id: string, listener: ExitListener): Promise<() => void> {
    let set = this.exitListeners.get(id);
    if (!set) this.exitListeners.set(id, (set = new Set()));
    set.add(listener);
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
      await this.subscribing;
    }
    return () => {
      set.delete(listener);
      if (set.size === 0) this.exitListeners.delete(id);
    };
  }

  /**
   * Ends this runtime's use of its spawner. With `stopSpawner`, asks the spawner to exit
   * once no container is left (`force`: kill those left first); tests use it so that no
   * spawner outlives them.
   */
  async close(opts: { stopSpawner?: boolean; force?: boolean } = {}): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.exitListeners.clear();
    this.spawner.close();
    if (opts.stopSpawner) await this.spawner.shutdown(opts.force ?? false);
    if (Runtime.shared === this) Runtime.shared = undefined;
  }

  /** Requires root when this runtime drives the real kernel (a fake kernel needs none). */
  assertPrivileged(): void {
    if (this.kernel instanceof NativeKernel) Runtime.assertPrivileged();
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
