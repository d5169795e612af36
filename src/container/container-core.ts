/**
 * The state side of a Container: its record, events, exit tracking and the supervision and
 * autoscaling wired to its exits, its output. container.ts adds the operations.
 */
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { assertTransition, OperationQueue, type ContainerState } from '../lifecycle.js';
import { containerLogger, type Logger } from '../logger.js';
import type { RuntimeParts } from '../parts.js';
import type { ResourcePlan } from '../personality/allocate.js';
import { Runtime, runtimeParts } from '../runtime.js';
import { signalName } from '../signals.js';
import type { ContainerRecord } from '../state.js';
import type { SpawnerExit } from '../spawner/client.js';
import type { UsageHistory } from '../usage-histogram.js';
import { ContainerConfig } from './config.js';
import { isLive, type ContainerContext } from './context.js';
import { ContainerEvolution } from './evolve.js';
import { followFile } from './log-follow.js';
import { logLines, type LogLine, type LogOptions } from './logs.js';
import { readLogs, reconcileRecord, statusOf } from './records.js';
import { applyResources } from './resources.js';
import { Autoscaler, autoscaleGroup, type AutoscaleOptions } from './autoscale.js';
import { hostPressure } from './host-pressure.js';
import { Supervisor } from './supervise.js';
import type { StartInput } from './start.js';
import { StatsSampler } from './stats.js';
import { ExitTracker } from './watch.js';
import type { ContainerEvents, ContainerStatus, ExitStatus, OperationOptions, StateChange } from './types.js';

/** Hands a spawner exit to its container; module-level, so the subscription holds nothing of it. */
function deliverExit(c: ContainerCore, e: SpawnerExit): void {
  c['onExit'](e.exitCode, e.signal, e.finishedAt);
}

/** The events Runtime.events() carries (not EventEmitter's own newListener/removeListener). */
const PUBLISHED = new Set<string>(['state', 'exit', 'oom', 'generation', 'evolutionError', 'restart', 'restartsExhausted', 'autoscale'] satisfies (keyof ContainerEvents)[]);

export class ContainerCore extends EventEmitter<ContainerEvents> {
  readonly id: string;
  readonly runtime: Runtime;
  /** The container's own copy of its configuration: later changes to the caller's do not reach it. */
  readonly config: ContainerConfig;
  protected readonly parts: RuntimeParts;
  protected readonly rec: ContainerRecord;
  protected readonly log: Logger;
  protected readonly ctx: ContainerContext;
  protected readonly queue = new OperationQueue();
  protected readonly exits: ExitTracker;
  protected readonly sampler = new StatsSampler();
  protected lastPlan: ResourcePlan | undefined;
  /** What start() runs, compiled at create (absent for a container loaded from its record). */
  protected startInput: StartInput | undefined;
  protected readonly evolution: ContainerEvolution;
  readonly supervisor: Supervisor;
  /** Configured, or made while the container evolves (evolutionAutoscale). */
  protected autoscaler: Autoscaler | undefined;
  private autoscaleForEvolution = false;
  /** The cgroup's OOM-kill count when the init last exited. */
  private exitOomKills = 0;

  protected constructor(runtime: Runtime, rec: ContainerRecord, config: ContainerConfig) {
    super();
    this.runtime = runtime;
    this.parts = runtimeParts(runtime);
    this.rec = rec;
    this.id = rec.id;
    this.config = config;
    this.log = containerLogger(this.parts.logger, rec.id, rec.name);
    this.ctx = { parts: this.parts, rec, config, log: this.log };
    this.evolution = new ContainerEvolution(this.ctx, {
      update: (change, validated) => this.queue.run(() => applyResources(this.ctx, change, false, validated, true)),
      generation: (record) => this.emit('generation', record),
      error: (err) => this.emit('evolutionError', err),
      enabled: () => this.evolutionAutoscale(true),
      disabled: () => this.evolutionAutoscale(false),
    });
    this.exits = new ExitTracker(this as EventEmitter, this.parts, rec.id, () => isLive(this.rec.state));
    const as = config.spec.autoscale;
    if (as) this.autoscaler = this.makeAutoscaler(as);
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

  private makeAutoscaler(opts: AutoscaleOptions): Autoscaler {
    return new Autoscaler(
      this.ctx,
      opts,
      (ch) => this.queue.run(() => applyResources(this.ctx, ch, true)),
      (e) => {
        // Evolution proposes no less than a limit autoscale grew (an OOM kill proved the need),
        // until autoscale steps it back to the configured one.
        const conf = this.config.spec.resources;
        const gene = e.resource === 'memory' ? 'memoryLimit' : 'cpuLimit';
        const base = e.resource === 'memory' ? conf.memoryLimit : conf.cpuLimit;
        const shrinking = e.reason === 'scale-down' || e.reason === 'host-short';
        this.evolution.floor(gene, !shrinking || (base !== undefined && e.to > base) ? e.to : undefined);
        this.emit('autoscale', e);
      },
      { group: autoscaleGroup(this.parts), host: hostPressure(this.parts.kernel), evolved: () => this.evolution.genes() },
    );
  }

  /**
   * Autoscale is on while the container evolves unless the configuration says otherwise
   * (autoscale(false), or options of its own) or there is no limit to grow.
   */
  private evolutionAutoscale(on: boolean): void {
    const spec = this.config.spec;
    if (spec.autoscale !== undefined) return;
    if (on && !this.autoscaleForEvolution && (spec.resources.memoryLimit !== undefined || spec.resources.cpuLimit !== undefined)) {
      this.autoscaleForEvolution = true;
      this.autoscaler = this.makeAutoscaler({});
      if (this.rec.state === 'running') this.autoscaler.start();
    } else if (!on && this.autoscaleForEvolution) {
      this.autoscaleForEvolution = false;
      this.autoscaler?.stop();
      this.autoscaler = undefined;
    }
  }

  /** A restart gave the container a new init: it runs again, with a new exit to wait for. */
  protected async restarted(): Promise<void> {
    const rec = this.rec;
    const oomKilled = rec.oomKilled;
    rec.startedAt = new Date().toISOString();
    rec.finishedAt = undefined;
    rec.exitCode = undefined;
    rec.signal = undefined;
    rec.oomKilled = false;
    this.exits.rearm(true);
    this.transition('running');
    await this.watch();
    this.autoscaler?.start(this.exits.oomKillsAtStart);
    // Queued behind the restart this runs in: the growth is an update of its own.
    if (oomKilled) void this.autoscaler?.initOomKilled(this.exitOomKills);
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



  // ── events and state ─────────────────────────────────────────────────────

  protected transition(to: ContainerState): void {
    const from = this.rec.state;
    if (from === to) return;
    assertTransition(this.id, 'update', from, to);
    this.rec.state = to;
    if (to !== 'removed') this.parts.state.save(this.rec, to === 'stopped');
    this.emit('state', { id: this.id, from, to } satisfies StateChange);
  }

  /** Subscribes to the init's exit and catches an exit that happened before. */
  protected async watch(): Promise<void> {
    await this.exits.subscribe(this, deliverExit);
    const exit = this.parts.state.exit(this.id);
    if (exit && exit.pid === this.rec.pid) this.onExit(exit.exitCode >= 0 ? exit.exitCode : null, exit.signal || null, exit.finishedAt);
  }

  protected onExit(exitCode: number | null, signal: number | null, finishedAt: number): void {
    if (this.rec.state === 'stopped' || this.rec.state === 'removed' || this.rec.finishedAt) return;
    const kills = this.exits.oomKills();
    const oomKilled = kills > this.exits.oomKillsAtStart;
    this.exitOomKills = kills;
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
  protected async refresh(): Promise<void> {
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

  protected follow(path: string): Readable {
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
