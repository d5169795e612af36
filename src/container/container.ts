/**
 * Container: the lifecycle of one agent container. It holds the state, the events and the
 * order of operations, and delegates the work: prepare.ts compiles the SpawnPlan,
 * provision.ts carries it out, exec.ts, resources.ts, stats.ts and evolve.ts do the rest.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { RuntimeError } from '../errors.js';
import { EvolutionConfig } from '../evolution/config.js';
import type { EvolutionState } from '../evolution/controller.js';
import { assertOperation, assertTransition, OperationQueue, type ContainerState } from '../lifecycle.js';
import { containerLogger, type Logger } from '../logger.js';
import type { RuntimeParts } from '../parts.js';
import { allocateResources, type ResourcePlan, type WorkloadRequest } from '../personality/allocate.js';
import { Runtime, runtimeParts } from '../runtime.js';
import type { SecurityReport } from '../secure-runtime/report.js';
import { signalName, signalNumber } from '../signals.js';
import { isSameProcess, newContainerId, type ContainerRecord } from '../state.js';
import type { SpawnerExit } from '../spawner/client.js';
import type { UsageHistory } from '../usage-histogram.js';
import { ContainerConfig, type ResourceSpec } from './config.js';
import { isLive, resourcesOf, type ContainerContext } from './context.js';
import { ContainerEvolution } from './evolve.js';
import { abortError, planExec, runExec, spawnExec } from './exec.js';
import { inspectSecurity } from './records.js';
import { followFile } from './log-follow.js';
import { logLines, type LogLine, type LogOptions } from './logs.js';
import { prepareCreate, wantsGpus } from './prepare.js';
import { provision } from './provision.js';
import { findRecord, listStatuses, prepareContext, readLogs, reconcileRecord, statusOf } from './records.js';
import { applyResources, planUpdate } from './resources.js';
import { Autoscaler } from './autoscale.js';
import { Supervisor, resumeSupervision, supervisedObject } from './supervise.js';
import { encodeStartInput, sendStart, startInputOf, type StartInput } from './start.js';
import { StatsSampler, type StatsPart } from './stats.js';
import { teardown } from './teardown.js';
import { attachContainer, type TerminalSession } from './terminal.js';
import { ExitTracker } from './watch.js';
import type { ContainerEvents, ContainerStats, ContainerStatus, EvolutionOptions, ExecOptions, ExecProcess, ExecResult, ExitStatus, OperationOptions, ResourceUpdate, StateChange } from './types.js';

/** Hands a spawner exit to its container; module-level, so the subscription holds nothing of it. */
function deliverExit(c: Container, e: SpawnerExit): void {
  c['onExit'](e.exitCode, e.signal, e.finishedAt);
}

/** The events Runtime.events() carries (not EventEmitter's own newListener/removeListener). */
const PUBLISHED = new Set<string>(['state', 'exit', 'oom', 'generation', 'evolutionError', 'restart', 'restartsExhausted', 'autoscale'] satisfies (keyof ContainerEvents)[]);

interface Handle extends OperationOptions {
  runtime?: Runtime;
}

export class Container extends EventEmitter<ContainerEvents> {
  readonly id: string;
  readonly runtime: Runtime;
  /** The container's own copy of its configuration: later changes to the caller's do not reach it. */
  readonly config: ContainerConfig;
  private readonly parts: RuntimeParts;
  private readonly rec: ContainerRecord;
  private readonly log: Logger;
  private readonly ctx: ContainerContext;
  private readonly queue = new OperationQueue();
  private readonly exits: ExitTracker;
  private readonly sampler = new StatsSampler();
  private lastPlan: ResourcePlan | undefined;
  /** What start() runs, compiled at create (absent for a container loaded from its record). */
  private startInput: StartInput | undefined;
  private readonly evolution: ContainerEvolution;
  readonly supervisor: Supervisor;
  private readonly autoscaler: Autoscaler | undefined;

  private constructor(runtime: Runtime, rec: ContainerRecord, config: ContainerConfig) {
    super();
    this.runtime = runtime;
    this.parts = runtimeParts(runtime);
    this.rec = rec;
    this.id = rec.id;
    this.config = config;
    this.log = containerLogger(this.parts.logger, rec.id, rec.name);
    this.ctx = { parts: this.parts, rec, config, log: this.log };
    this.evolution = new ContainerEvolution(this.ctx, {
      update: (change) => this.queue.run(() => applyResources(this.ctx, change, false)),
      generation: (record) => this.emit('generation', record),
      error: (err) => this.emit('evolutionError', err),
    });
    this.exits = new ExitTracker(this as EventEmitter, this.parts, rec.id, () => isLive(this.rec.state));
    const as = config.spec.autoscale;
    this.autoscaler = as
      ? new Autoscaler(this.ctx, as, (ch) => this.queue.run(() => applyResources(this.ctx, ch, true)), (e) => this.emit('autoscale', e))
      : undefined;
    this.supervisor = new Supervisor(
      {
        id: this.id,
        name: this.rec.name,
        object: this,
        config,
        record: () => this.rec,
        serialized: (f) => this.queue.run(f),
        restarted: () => this.restarted(),
        emit: (event: 'restart' | 'restartsExhausted', e: never) => this.emit(event, e),
      },
      this.parts,
    );
  }

  /** A restart gave the container a new init: it runs again, with a new exit to wait for. */
  private async restarted(): Promise<void> {
    const rec = this.rec;
    rec.startedAt = new Date().toISOString();
    rec.finishedAt = undefined;
    rec.exitCode = undefined;
    rec.signal = undefined;
    rec.oomKilled = false;
    this.exits.rearm();
    this.transition('running');
    await this.watch();
    this.autoscaler?.start();
  }

  get name(): string {
    return this.rec.name;
  }
  get state(): ContainerState {
    return this.rec.state;
  }
  get pid(): number | undefined {
    return this.rec.pid;
  }
  /** The container's address on the bridge (network "bridge"), else undefined. */
  get ip(): string | undefined {
    return this.rec.network?.ip;
  }
  /** Decaying history of observed usage, fed by stats(); personalities plan from it. */
  get usage(): UsageHistory {
    return this.sampler.usage;
  }
  /** @internal The state record, for tests and the runtime's own tools. */
  record(): Readonly<ContainerRecord> {
    return this.rec;
  }

  override emit<K extends keyof ContainerEvents>(event: K, ...args: ContainerEvents[K]): boolean {
    if (PUBLISHED.has(event)) this.parts.publish({ type: event, id: this.id, name: this.name, data: args[0] } as never);
    return (EventEmitter.prototype.emit as (e: string, ...a: unknown[]) => boolean).call(this, event, ...args);
  }

  // ── creation ──────────────────────────────────────────────────────────────

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
    const plan = prepareCreate(own, newContainerId(), prepareContext(parts, gpus));
    // Encoded now: a process the spawner could not take fails the create, leaving nothing.
    const start = encodeStartInput(plan.id, own.name, { process: plan.process, lastCap: plan.lastCap });
    const pooled = await parts.pool.take(plan, own);
    if (pooled) {
      const c = new Container(runtime, pooled.rec, own);
      c.startInput = pooled.start;
      await c.watch();
      c.log.info({ pid: pooled.rec.pid }, 'container created (from the warm pool)');
      return c;
    }
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

  // ── events and state ─────────────────────────────────────────────────────

  private transition(to: ContainerState): void {
    const from = this.rec.state;
    if (from === to) return;
    assertTransition(this.id, 'update', from, to);
    this.rec.state = to;
    if (to !== 'removed') this.parts.state.save(this.rec, to === 'stopped');
    this.emit('state', { id: this.id, from, to } satisfies StateChange);
  }

  /** Subscribes to the init's exit and catches an exit that happened before. */
  private async watch(): Promise<void> {
    await this.exits.subscribe(this, deliverExit);
    const exit = this.parts.state.exit(this.id);
    if (exit && exit.pid === this.rec.pid) this.onExit(exit.exitCode >= 0 ? exit.exitCode : null, exit.signal || null, exit.finishedAt);
  }

  private onExit(exitCode: number | null, signal: number | null, finishedAt: number): void {
    if (this.rec.state === 'stopped' || this.rec.state === 'removed' || this.rec.finishedAt) return;
    const kills = this.exits.oomKills();
    const oomKilled = kills > 0;
    this.exits.oom.set(false);
    this.rec.exitCode = signal ? null : exitCode;
    this.rec.signal = signal;
    this.rec.oomKilled = oomKilled;
    this.rec.finishedAt = new Date(finishedAt || Date.now()).toISOString();
    if (this.rec.state === 'creating') return; // create() reports this itself
    this.evolution.abandon();
    try {
      this.transition('stopped');
    } catch (e) {
      // This runs from the spawner's exit event: a failed save (the state removed by another
      // process, a full disk) is logged, never thrown into the host agent's event loop.
      this.log.error({ err: e }, 'could not record the exit');
      this.rec.state = 'stopped';
    }
    const status: ExitStatus = { exitCode: this.rec.exitCode, signal: signalName(signal), oomKilled };
    this.log.info(status, 'container exited');
    this.exits.oom.check(kills);
    // An init exits once: nothing more will come on the subscription.
    this.exits.unsubscribe();
    this.autoscaler?.stop();
    this.emit('exit', status);
    this.exits.resolve(status);
    this.supervisor.onExit(status);
  }

  /** Brings a loaded record up to date with the spawner's and the kernel's view. */
  private async refresh(): Promise<void> {
    const rec = this.rec;
    if (rec.state === 'stopped') {
      this.exits.resolve({ exitCode: rec.exitCode ?? null, signal: signalName(rec.signal), oomKilled: !!rec.oomKilled });
      return;
    }
    if (rec.state === 'removed' || rec.state === 'creating') return;
    const now = await reconcileRecord(this.parts, rec, this.log);
    if (now.exited) {
      this.onExit(now.exited.exitCode, now.exited.signal, now.exited.finishedAt);
      return;
    }
    await this.watch();
    if (rec.state === 'running') this.autoscaler?.start();
  }

  async status(): Promise<ContainerStatus> {
    return statusOf(this.rec);
  }

  /**
   * Resolves once, when the container's init has exited (the same result for every caller).
   * `signal` abandons the wait (the container is not affected).
   */
  wait(opts: OperationOptions = {}): Promise<ExitStatus> {
    if (this.rec.state === 'stopped' || this.rec.state === 'removed') return this.exits.exited;
    return this.exits.wait(opts.signal, `wait for container ${this.name}`);
  }

  // ── operations ───────────────────────────────────────────────────────────

  /** Runs the container's command. An abort before the start message is sent leaves it created. */
  start(opts: OperationOptions = {}): Promise<void> {
    return this.queue.run(async () => {
      assertOperation(this.name, 'start', this.rec.state);
      if (opts.signal?.aborted) throw abortError(opts.signal, `start container ${this.name}`);
      this.supervisor.started();
      await this.parts.faults?.('start');
      try {
        const input = this.startInput ?? (await startInputOf(this.parts, this.config, this.id));
        await sendStart(this.parts, this.id, this.name, input);
        this.startInput = undefined;
      } catch (e) {
        if (e instanceof RuntimeError) e.containerId = this.id;
        throw e;
      }
      this.rec.startedAt = new Date().toISOString();
      if (this.rec.state === 'created') this.transition('running');
      this.autoscaler?.start();
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
      await this.parts.faults?.('stop');
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
      const s = this.rec.state;
      if (s === 'removed') return;
      this.supervisor.cancel();
      this.autoscaler?.stop();
      if ((s === 'running' || s === 'paused') && !opts.force) {
        throw new RuntimeError(`remove container ${this.name}: cannot go from ${s} to removed; stop it first or pass { force: true }`, { code: 'ESTATE', step: 'state', containerId: this.id });
      }
      await this.parts.faults?.('remove');
      await this.disableEvolution({ settle: false });
      if (isLive(s)) {
        await this.signal('SIGKILL');
        await this.wait();
      }
      await this.parts.faults?.('teardown');
      this.exits.unsubscribe();
      await teardown(this.parts, this.rec, `remove container ${this.name}`);
      this.transition('removed');
      this.log.info('container removed');
    });
  }

  /** `await using c = await Container.create(...)`: removes it, force included. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove({ force: true });
  }

  /** Runs a further process inside the running container and collects its output. */
  async exec(command: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    await this.parts.faults?.('exec');
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
      await this.parts.faults?.('update');
      await applyResources(this.ctx, changes, true);
    });
  }

  /** Usage and limits from its cgroups and network interfaces; feeds the usage history personalities plan from. */
  async stats(opts: { only?: readonly StatsPart[] } = {}): Promise<ContainerStats> {
    return this.sampler.sample(this.ctx, opts.only);
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

  private follow(path: string): Readable {
    return this.exits.retainWhile(followFile(path, this.exits.exited));
  }

  /** The container's stdout, from the start, following it until the container exits. */
  get stdout(): Readable {
    return this.follow(this.rec.paths.stdoutLog);
  }

  get stderr(): Readable {
    return this.follow(this.rec.paths.stderrLog);
  }

  /** What the container wrote so far, as text. */
  logs(): { stdout: string; stderr: string };
  /** The container's output as timestamped lines (`docker logs` with follow, since, tail). */
  logs(opts: LogOptions): AsyncIterableIterator<LogLine>;
  logs(opts?: LogOptions): { stdout: string; stderr: string } | AsyncIterableIterator<LogLine> {
    const paths = this.rec.paths;
    return opts ? logLines({ stdout: paths.stdoutLog, stderr: paths.stderrLog }, this.exits.exited, opts) : readLogs(paths);
  }
}
