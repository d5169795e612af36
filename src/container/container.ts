/**
 * Container: the lifecycle of one agent container — its operations and their order (the
 * record, events and exit tracking are container-core.ts). It delegates the work:
 * prepare.ts compiles the SpawnPlan, provision.ts carries it out (or pool.ts hands out a
 * parked container), start.ts, exec.ts, resources.ts, stats.ts and evolve.ts do the rest.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { RuntimeError } from '../errors.js';
import { EvolutionConfig } from '../evolution/config.js';
import type { EvolutionState } from '../evolution/controller.js';
import { assertOperation, type ContainerState } from '../lifecycle.js';
import { atStep } from '../parts.js';
import { allocateResources, type ResourcePlan, type WorkloadRequest } from '../personality/allocate.js';
import { Runtime, runtimeParts } from '../runtime.js';
import type { SecurityReport } from '../secure-runtime/report.js';
import { signalNumber } from '../signals.js';
import { isSameProcess, newContainerId, type ContainerRecord } from '../state.js';
import { ContainerConfig, type ResourceSpec } from './config.js';
import { isLive, resourcesOf } from './context.js';
import { abortError, planExec, runExec, spawnExec } from './exec.js';
import { inspectSecurity } from './records.js';
import { prepareCreate, wantsGpus } from './prepare.js';
import * as fs from 'node:fs';
import { cgroupPids, containerGpuUsage } from '../gpu/accounting.js';
import { runHooks } from '../gpu/hooks.js';
import { releaseNetDevices, setUpInit } from './device-setup.js';
import { reserveGpus } from '../gpu/host.js';
import type { GpuInventory } from '../gpu/inventory.js';
import { provision } from './provision.js';
import { findRecord, listStatuses, prepareContext, settledCreate } from './records.js';
import { applyResources, planUpdate } from './resources.js';
import { resumeSupervision, supervisedObject } from './supervise.js';
import { encodeStartInput, sendStart, startInputOf } from './start.js';
import type { StatsPart } from './stats.js';
import { teardown } from './teardown.js';
import { attachContainer, type TerminalSession } from './terminal.js';
import type { MigrateOptions, MigrationResult } from '../checkpoint/restore.js';
import type { ContainerStats, ContainerStatus, EvolutionOptions, ExecOptions, ExecProcess, ExecResult, ExitStatus, OperationOptions, ResourceUpdate } from './types.js';
import { ContainerCore } from './container-core.js';
import { checkpoint, type CheckpointOptions, type CheckpointResult } from '../checkpoint/checkpoint.js';
import type { CheckpointManifest } from '../checkpoint/files.js';
import { migrateContainer } from '../checkpoint/migrate.js';
import type { RestoreOptions } from '../checkpoint/restore.js';
import { provisionFromCheckpoint } from './from-checkpoint.js';

interface Handle extends OperationOptions {
  runtime?: Runtime;
}

export class Container extends ContainerCore {
  private constructor(runtime: Runtime, rec: ContainerRecord, config: ContainerConfig) {
    super(runtime, rec, config);
  }

  /**
   * Prepares a container (image layers, writable layer, cgroups, namespaces, mounts) up to
   * the point just before its command runs, as OCI `create` does. start() runs the command.
   * The plan is compiled first, so bad input fails before anything exists; a failure or an
   * abort later undoes every step already done.
   */
  static async create(config: ContainerConfig, handle: Handle = {}): Promise<Container> {
    const runtime = handle.runtime ?? Runtime.default();
    runtime.assertPrivileged();
    const parts = runtimeParts(runtime);
    const own = config.clone();
    if (handle.signal?.aborted) throw abortError(handle.signal, `create container ${own.name}`);
    await parts.reconcile();
    void Container.resume(runtime);
    const gpus = wantsGpus(own) ? await parts.gpus() : undefined;
    const id = newContainerId();
    // The GPUs are chosen and recorded first (under the state root's lock), so two creates
    // never get the same one; whatever fails after gives them back.
    const reserved = await reserveGpus(parts, id, own, gpus);
    try {
      return await Container.createWith(runtime, parts, own, id, gpus, handle, !!reserved);
    } catch (e) {
      if (reserved) parts.gpuAssignments.release(id);
      throw e;
    }
  }

  private static async createWith(runtime: Runtime, parts: ReturnType<typeof runtimeParts>, own: ContainerConfig, id: string, gpus: GpuInventory | undefined, handle: Handle, reserved: boolean): Promise<Container> {
    const plan = prepareCreate(own, id, prepareContext(parts, gpus));
    const pooled = await parts.pool.take(plan, own);
    if (pooled) {
      const c = new Container(runtime, pooled.rec, own);
      c.startInput = pooled.start;
      await c.watch();
      c.log.info({ pid: pooled.rec.pid }, 'container created (from the warm pool)');
      return c;
    }
    // Encoded now: a process the spawner could not take fails the create, leaving nothing.
    const start = encodeStartInput(plan.id, own.name, { process: plan.process, lastCap: plan.lastCap });
    let c: Container | undefined;
    const { rec } = await provision(parts, {
      plan,
      config: own.toJSON(),
      resources: { ...own.spec.resources },
      signal: handle.signal,
      watch: async (r) => {
        c = new Container(runtime, r, own);
        c.startInput = start;
        await c.watch();
        return () => c!.exits.unsubscribe();
      },
    });
    // Only a create that reserved GPUs has a reservation to make its own (and a lock to take).
    if (reserved) parts.gpuAssignments.confirm(rec.id);
    if (plan.hooks?.length || plan.netDevices?.length || plan.intelRdt) {
      try {
        await setUpInit(parts, rec, plan);
      } catch (e) {
        await teardown(parts, rec, `create container ${own.name}`).catch((err: unknown) => parts.logger.error({ container: rec.id, err }, 'undoing a create whose device setup or hook failed'));
        throw e;
      }
    }
    c!.transition('created');
    c!.log.info({ pid: rec.pid }, 'container created');
    return c!;
  }

  /** Loads a container by id (or name) from the state root, possibly written by another process. */
  static async load(idOrName: string, handle: Handle = {}): Promise<Container> {
    const runtime = handle.runtime ?? Runtime.default();
    await Container.resume(runtime);
    const parts = runtimeParts(runtime);
    const rec = findRecord(parts, idOrName);
    // A container this process supervises is one object: its pending restart updates it.
    return (supervisedObject(parts, rec.id) as Container | undefined) ?? Container.fromRecord(runtime, rec);
  }

  private static async fromRecord(runtime: Runtime, rec: ContainerRecord): Promise<Container> {
    const config = ContainerConfig.fromSpec(rec.config as never, (rec.config as { hardwareAffinity?: never }).hardwareAffinity);
    const c = new Container(runtime, rec, config);
    await c.refresh();
    return c;
  }

  /** Supervision of restart-policy containers whose supervisor died, once per runtime. */
  private static resume(runtime: Runtime): Promise<void> {
    const parts = runtimeParts(runtime);
    return resumeSupervision(parts, (pid, st) => isSameProcess(parts.kernel, pid, st), (id) => Container.fromRecord(runtime, parts.state.load(id))).catch((e: unknown) =>
      parts.logger.warn({ err: e }, 'resuming restart supervision failed'),
    );
  }

  /** Every container under the runtime's state root, as records (no spawner needed). */
  static async list(handle: Handle = {}): Promise<ContainerStatus[]> {
    return listStatuses(runtimeParts(handle.runtime ?? Runtime.default()));
  }

  /** Runs the container's command. An abort before the start message is sent leaves it created. */
  start(opts: OperationOptions = {}): Promise<void> {
    return this.queue.run(async () => {
      assertOperation(this.name, 'start', this.rec.state);
      if (opts.signal?.aborted) throw abortError(opts.signal, `start container ${this.name}`);
      await atStep(this.parts, 'start', `start container ${this.name}`, this.id);
      this.supervisor.started();
      try {
        const input = this.startInput ?? (await startInputOf(this.parts, this.config, this.id));
        const hookState = { id: this.id, pid: this.rec.pid, status: 'created' as const, bundle: this.rec.paths.storageDir };
        await runHooks(this.rec.hooks, 'startContainer', hookState);
        await sendStart(this.parts, this.id, this.name, input);
        await runHooks(this.rec.hooks, 'poststart', { ...hookState, status: 'running' }).catch((e: unknown) => this.log.warn({ err: e }, 'a poststart hook failed'));
        this.startInput = undefined;
      } catch (e) {
        if (e instanceof RuntimeError) e.containerId = this.id;
        throw e;
      }
      this.rec.startedAt = new Date().toISOString();
      if (this.rec.state === 'created') this.transition('running');
      this.autoscaler?.start(this.exits.oomKillsAtStart);
      this.log.info('container started');
      // STRATOSWARM_EVOLUTION_ENABLED: containers evolve with the default configuration
      // unless the host agent enables evolution itself.
      if (this.runtime.options.evolutionEnabled && !this.evolution.active && this.rec.state === 'running') {
        await this.evolution.enable(EvolutionConfig.fromDefaults(this.runtime.options));
      }
    });
  }

  /** Sends a signal to the container's init. */
  kill(signal: string | number = 'SIGKILL'): Promise<void> {
    return this.queue.run(() => this.signal(signal));
  }

  private async signal(signal: string | number): Promise<void> {
    const sig = signalNumber(signal);
    const s = this.rec.state;
    if (!isLive(s)) throw new RuntimeError(`kill container ${this.name}: it is ${s}, not running`, { code: 'ESTATE', step: 'signal', containerId: this.id });
    try {
      await this.parts.spawner.request(['kill', this.id, String(sig)], `kill container ${this.name}`);
    } catch (e) {
      // Lost the race with the exit: the container is stopping anyway.
      if (e instanceof RuntimeError && e.code === 'ESTATE') return;
      throw e;
    }
    // A frozen task acts on a signal only once thawed.
    if (s === 'paused') await this.parts.cgroups.thaw(this.id);
  }

  /** The image's StopSignal, while the image is still in the store. */
  private imageStopSignal(): string | undefined {
    try {
      return this.parts.images.resolve(this.rec.image.ref).config.stopSignal;
    } catch {
      return undefined;
    }
  }

  /**
   * Stops the container: its image's StopSignal (SIGTERM when it names none), then SIGKILL
   * once `timeoutMs` (default 10 s) has passed.
   * Stopping a stopped container does nothing. No timer outlives the call.
   */
  stop(opts: { timeoutMs?: number; signal?: string | number } = {}): Promise<ExitStatus> {
    return this.queue.run(async () => {
      this.supervisor.stopped();
      if (this.rec.state === 'stopped') return this.exits.exited;
      assertOperation(this.name, 'stop', this.rec.state);
      const timeoutMs = opts.timeoutMs ?? 10_000;
      await atStep(this.parts, 'stop', `stop container ${this.name}`, this.id);
      const stopSignal = opts.signal ?? this.imageStopSignal() ?? 'SIGTERM';
      await this.signal(stopSignal);
      const grace = new AbortController();
      const graceful = await Promise.race([
        this.wait().then(() => true),
        delay(timeoutMs, false, { signal: grace.signal }).catch(() => true),
      ]).finally(() => grace.abort());
      if (!graceful && (this.rec.state as ContainerState) !== 'stopped') {
        this.log.warn({ timeoutMs, stopSignal }, 'container ignored its stop signal; sending SIGKILL');
        await this.signal('SIGKILL');
      }
      return this.wait();
    });
  }

  /**
   * Dumps the running container with CRIU into a checkpoint directory (see Checkpoint and
   * restore). Unless `leaveRunning`, the container ends with the dump, as with `docker
   * checkpoint create`, and is not restarted by its restart policy; a failed dump leaves it
   * running as it was.
   */
  checkpoint(opts: CheckpointOptions = {}): Promise<CheckpointResult> {
    return this.queue.run(async () => {
      if (this.rec.state !== 'running') {
        throw new RuntimeError(`checkpoint container ${this.name}: it is ${this.rec.state}, not running`, { code: 'ESTATE', step: 'checkpoint', containerId: this.id });
      }
      if (!opts.leaveRunning) this.supervisor.stopped();
      try {
        const r = await checkpoint(this.parts, this.rec, opts);
        if (!opts.leaveRunning) await this.wait();
        this.log.info({ path: r.path, frozenMs: r.frozenMs, leaveRunning: !!opts.leaveRunning }, 'container checkpointed');
        return r;
      } catch (e) {
        if (!opts.leaveRunning) this.supervisor.started();
        throw e;
      }
    });
  }

  /**
   * A running container from a checkpoint directory: the same processes, memory and open
   * files, in fresh namespaces and cgroups with the limits the checkpointed one had. A
   * failure leaves nothing behind.
   */
  static async restore(path: string, opts: RestoreOptions & Handle = {}): Promise<Container> {
    return Container.restoreVerified(path, opts, undefined);
  }

  private static async restoreVerified(path: string, opts: RestoreOptions & Handle, verified: CheckpointManifest | undefined): Promise<Container> {
    const runtime = opts.runtime ?? Runtime.default();
    runtime.assertPrivileged();
    const { container: c, rec } = await provisionFromCheckpoint(runtimeParts(runtime), path, opts, verified, async (r, own) => {
      const container = new Container(runtime, r, own);
      await container.watch();
      return { container, unwatch: () => container.exits.unsubscribe() };
    });
    c.transition('created');
    c.transition('running');
    c.log.info({ pid: rec.pid, from: path }, 'container restored');
    return c;
  }

  /**
   * Moves the running container to the runtime `target` (another state and image root, and
   * cgroup parent); `through` puts a transport (a TCP connection to another node) on its way.
   * Its memory is pre-dumped while it runs where the kernel tracks dirty pages, then it is
   * frozen for the final dump; once the target runs it, it is removed here. If anything fails
   * before that, it is thawed and runs on here as it was.
   */
  migrate(target: Runtime, opts: MigrateOptions = {}): Promise<MigrationResult> {
    return this.queue.run(async () => {
      if (this.rec.state !== 'running') throw new RuntimeError(`migrate container ${this.name}: it is ${this.rec.state}, not running`, { code: 'ESTATE', step: 'checkpoint', containerId: this.id });
      const r = await migrateContainer(this.parts, this.rec, runtimeParts(target), opts, {
        restore: (dir, manifest) => Container.restoreVerified(dir, { runtime: target, name: opts.name ?? this.name }, manifest),
        // The target runs it: the source (held frozen) goes, as remove() takes it.
        retire: async () => {
          this.supervisor.cancel();
          await this.disableEvolution({ settle: false });
          await this.parts.spawner.request(['kill', this.id, '9'], `migrate container ${this.name}`).catch(() => undefined);
          await this.parts.cgroups.thaw(this.id);
          await this.wait();
          this.exits.unsubscribe();
          await teardown(this.parts, this.rec, `migrate container ${this.name}`);
          this.transition('removed');
        },
      });
      this.log.info({ to: target.options.stateRoot, downtimeMs: r.downtimeMs }, 'container migrated');
      return r;
    });
  }

  /** Freezes every process of the container (cgroup freezer). */
  pause(): Promise<void> {
    return this.queue.run(async () => {
      assertOperation(this.name, 'pause', this.rec.state);
      await this.parts.cgroups.freeze(this.id);
      this.transition('paused');
    });
  }

  resume(): Promise<void> {
    return this.queue.run(async () => {
      assertOperation(this.name, 'resume', this.rec.state);
      await this.parts.cgroups.thaw(this.id);
      this.transition('running');
    });
  }

  /** Removes it and everything it had (processes, cgroups, layers, logs, state, listeners); running needs `force`. */
  remove(opts: { force?: boolean } = {}): Promise<void> {
    return this.queue.run(async () => {
      if (this.rec.state === 'creating') await this.settleCreate();
      const s = this.rec.state;
      if (s === 'removed') return;
      this.supervisor.cancel();
      this.autoscaler?.stop();
      if ((s === 'running' || s === 'paused') && !opts.force) {
        throw new RuntimeError(`remove container ${this.name}: cannot go from ${s} to removed; stop it first or pass { force: true }`, { code: 'ESTATE', step: 'state', containerId: this.id });
      }
      await atStep(this.parts, 'remove', `remove container ${this.name}`, this.id);
      await this.disableEvolution({ settle: false });
      if (isLive(s)) {
        // CDI network devices go back to the host while the container's namespace exists.
        await releaseNetDevices(this.parts, this.rec).catch((e: unknown) => this.log.warn({ err: e }, 'moving network devices back failed'));
        await this.signal('SIGKILL');
        await this.wait();
      }
      await atStep(this.parts, 'teardown', `remove container ${this.name}`, this.id);
      this.exits.unsubscribe();
      await teardown(this.parts, this.rec, `remove container ${this.name}`);
      this.transition('removed');
      this.log.info('container removed');
    });
  }

  /** A create another live process is still making: waits for it to end (records.ts). */
  private async settleCreate(): Promise<void> {
    const now = await settledCreate(this.parts, this.rec);
    if (!now) return;
    Object.assign(this.rec, now);
    await this.refresh();
  }

  /** `await using c = await Container.create(...)`: removes it, force included. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove({ force: true });
  }

  /** Runs a further process inside the running container and collects its output. */
  async exec(command: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    await atStep(this.parts, 'exec', `exec in container ${this.name}`, this.id);
    return runExec(this.parts, this.id, this.name, planExec(this.ctx, command, opts), opts);
  }

  /** Starts a further process whose stdin, stdout and stderr are Node streams (binary-safe). */
  async execStream(command: string[], opts: Omit<ExecOptions, 'stdin' | 'timeoutMs'> = {}): Promise<ExecProcess> {
    const size = typeof opts.terminal === 'object' ? opts.terminal : undefined;
    return spawnExec(this.parts, this.id, this.name, planExec(this.ctx, command, opts), { signal: opts.signal, size });
  }

  /** The terminal of a container made with `terminal(true)`: its output, input, window size; `detach()` leaves it running. */
  attach(): Promise<TerminalSession> {
    return attachContainer(this.ctx);
  }

  /** The resource settings in force. */
  get resources(): ResourceSpec {
    return resourcesOf(this.ctx);
  }

  /** Changes limits in place, all or nothing (a failed write restores the rest); `null` removes a limit. */
  update(changes: ResourceUpdate): Promise<void> {
    return this.queue.run(async () => {
      await atStep(this.parts, 'update', `update container ${this.name}`, this.id);
      await applyResources(this.ctx, changes, true);
    });
  }

  /** Usage and limits from its cgroups and network interfaces; feeds the usage history personalities plan from. */
  async stats(opts: { only?: readonly StatsPart[] } = {}): Promise<ContainerStats> {
    const out = this.sampler.sample(this.ctx, opts.only);
    // Its GPUs' usage from NVML's process accounting, for a container that holds GPUs.
    const held = !opts.only || opts.only.includes('gpu') ? this.parts.gpuAssignments.held(this.id) : undefined;
    if (held) out.gpu = containerGpuUsage(await this.parts.gpus(), held.gpus, cgroupPids(this.rec.cgroupProcs, (f) => fs.readFileSync(f, 'utf8')));
    return out;
  }

  /** What its personality allocates for `workload`, from the request and observed usage; `apply` puts it in force. */
  async allocateResources(workload: WorkloadRequest = {}, opts: { apply?: boolean } = {}): Promise<ResourcePlan> {
    const plan = allocateResources(this.config.spec.personality, workload, this.usage, this.lastPlan, Date.now());
    if (opts.apply) await this.update(planUpdate(plan));
    this.lastPlan = plan;
    return plan;
  }

  /** The confinement its init really has, read back from the kernel (capabilities, seccomp, id maps, mounts). */
  securityReport(): Promise<SecurityReport> {
    return inspectSecurity(this.ctx);
  }

  /**
   * Lets the container tune its own live-updatable settings (cpuLimit, memoryLimit,
   * cpuWeight, or the genes `config` gives bounds for) toward `config`'s fitness: each
   * generation measures the settings in force, then applies the next proposal with update().
   * Emits 'generation' with each record. The state persists with the container: after a
   * host restart, enabling evolution again continues where it was.
   */
  enableEvolution(config: EvolutionConfig, opts: EvolutionOptions = {}): Promise<void> {
    return this.evolution.enable(config, opts);
  }

  /** Stops evolving; by default the best settings found are put in force. */
  disableEvolution(opts: { settle?: boolean } = {}): Promise<void> {
    return this.evolution.disable(opts);
  }

  /** Generation, current and best genome and fitness history; undefined when evolution never ran. */
  evolutionState(): EvolutionState | undefined {
    return this.evolution.state();
  }

}
