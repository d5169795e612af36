/**
 * Container: the lifecycle of one agent container. It holds state, events and the order of
 * operations; the kernel work happens in the spawner (namespaces, mounts, exec) and the
 * isolation module (cgroups), reached through the Runtime.
 */
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import { Socket } from 'node:net';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { RuntimeError, fromNodeError } from '../errors.js';
import type { ResolvedImage } from '../images.js';
import { assertOperation, assertTransition, OperationQueue, type ContainerState } from '../lifecycle.js';
import type { Logger } from '../logger.js';
import { containerLogger } from '../logger.js';
import { compileCreatePlan, compileExecPlan, type PlanPlacement, type PlanSecurity, type PlanUser, type PlanVolume } from '../plan.js';
import { Runtime } from '../runtime.js';
import { isSameProcess, newContainerId, processStartTime, type ContainerRecord } from '../state.js';
import { ContainerConfig, type ResourceSpec } from './config.js';
import { blockDeviceFor, UNLIMITED, type CgroupStats, type Controller, type Resources } from '../isolation/index.js';
import { allocateResources, type ResourcePlan, type WorkloadRequest } from '../personality.js';
import { UsageHistory } from '../usage-histogram.js';
import { EvolutionConfig, EvolutionController, metricsBetween, type EvolutionSnapshot, type EvolutionState, type Genome, type StatsReading } from '../evolution.js';
import { availableParallelism } from 'node:os';
import { followFile } from './logs.js';
import { resolveSecurity, userNamespaceOf } from './security.js';
import { assignGpus } from '../gpu.js';
import { securityReport, type SecurityReport } from '../secure-runtime/index.js';

export interface ContainerStatus {
  id: string;
  name: string;
  state: ContainerState;
  pid: number | undefined;
  exitCode: number | null | undefined;
  signal: string | null | undefined;
  oomKilled: boolean;
  createdAt: Date;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
}

export interface ExitStatus {
  exitCode: number | null;
  /** The signal that ended the process, by name ("SIGKILL"), or null. */
  signal: string | null;
  oomKilled: boolean;
}

export interface ExecOptions {
  env?: Record<string, string>;
  workingDir?: string;
  user?: string | number;
  stdin?: string | Buffer;
  /** Kill the process (SIGKILL) if it runs longer than this. */
  timeoutMs?: number;
}

export interface ExecResult {
  pid: number;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Resource settings for update(): numbers set a limit, null removes it. */
export type ResourceUpdate = { [K in keyof ResourceSpec]?: ResourceSpec[K] | null };

export interface ContainerStats extends CgroupStats {
  /** When the sample was taken (ms since the epoch). */
  timestamp: number;
  /** Average cores used since the previous stats() call (undefined on the first). */
  cpuCores?: number;
  network?: { rxBytes: number; txBytes: number; rxPackets: number; txPackets: number };
}

export interface EvolutionOptions {
  /**
   * The workload's own cumulative work counter (items processed, requests served...). With
   * it, a generation's throughput is work per second; without, CPU-seconds per second.
   */
  workDone?: () => number | Promise<number>;
  /** Start over instead of continuing from the state persisted with the container. */
  restart?: boolean;
}

export interface StateChange {
  id: string;
  from: ContainerState;
  to: ContainerState;
}

interface Handle {
  runtime?: Runtime;
}

/** How often an evolving container's state file is rewritten at most. */
const PERSIST_EVERY_MS = 60_000;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9,
  SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGCHLD: 17, SIGCONT: 18,
  SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGWINCH: 28,
};

export function signalNumber(sig: string | number): number {
  if (typeof sig === 'number') {
    if (!Number.isInteger(sig) || sig < 1 || sig > 64) throw new RuntimeError(`invalid signal ${sig}`, { code: 'EINVAL', step: 'signal' });
    return sig;
  }
  const name = sig.toUpperCase().startsWith('SIG') ? sig.toUpperCase() : `SIG${sig.toUpperCase()}`;
  const n = SIGNALS[name];
  if (n === undefined) throw new RuntimeError(`unknown signal "${sig}"`, { code: 'EINVAL', step: 'signal' });
  return n;
}

export function signalName(n: number | null | undefined): string | null {
  if (!n) return null;
  return Object.entries(SIGNALS).find(([, v]) => v === n)?.[0] ?? `SIG${n}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class Container extends EventEmitter {
  readonly id: string;
  readonly runtime: Runtime;
  readonly config: ContainerConfig;
  protected rec: ContainerRecord;
  protected readonly log: Logger;
  private readonly queue = new OperationQueue();
  private exited: Promise<ExitStatus>;
  private resolveExit!: (s: ExitStatus) => void;
  private stopWatching: (() => void) | undefined;
  /** Decaying history of observed usage, fed by stats(); personalities plan from it. */
  readonly usage = new UsageHistory();
  private lastCpuSample: { usageNs: number; t: number } | undefined;
  private lastPlan: ResourcePlan | undefined;
  private evolution: EvolutionController | undefined;

  protected constructor(runtime: Runtime, rec: ContainerRecord, config: ContainerConfig) {
    super();
    this.runtime = runtime;
    this.rec = rec;
    this.id = rec.id;
    this.config = config;
    this.log = containerLogger(runtime.logger, rec.id, rec.name);
    this.exited = new Promise((r) => (this.resolveExit = r));
    // Nobody has to wait() for a container: an unobserved exit is not an error.
    this.exited.catch(() => undefined);
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

  /** @internal */
  record(): Readonly<ContainerRecord> {
    return this.rec;
  }

  // ── creation ──────────────────────────────────────────────────────────────

  /**
   * Prepares a container (image layers, writable layer, cgroups, namespaces, mounts) up to
   * the point just before its command runs, as OCI `create` does. start() runs the command.
   */
  static async create(config: ContainerConfig, handle: Handle = {}): Promise<Container> {
    const runtime = handle.runtime ?? Runtime.default();
    runtime.assertPrivileged();
    const spec = config.spec;
    await runtime.reconcile();
    // Everything that can be checked without touching the system is checked first, so
    // most bad input fails before anything exists to clean up.
    const image = runtime.images.resolve(spec.image);
    const user = resolveUser(runtime, image, spec.user ?? image.config.user);
    const volumes = checkVolumes(spec.volumes);
    const security = resolveSecurity(runtime, spec.security, user);
    const affinity = config.hardwareAffinity()?.spec;
    const gpuRequest = {
      ...spec.resources,
      gpuDevices: spec.resources.gpuDevices ?? (affinity?.gpuDevice !== undefined ? [affinity.gpuDevice] : undefined),
    };
    const wantsGpus = !!gpuRequest.gpuCount || !!gpuRequest.gpuDevices?.length;
    const gpus = wantsGpus ? assignGpus(gpuRequest, '/dev', undefined, runtime.gpus()) : undefined;

    const id = newContainerId();
    const stateDir = runtime.state.dir(id);
    const storageDir = runtime.storageDir(id);
    const paths = {
      stateDir,
      storageDir,
      rootfs: join(storageDir, 'rootfs'),
      upper: join(storageDir, 'upper'),
      work: join(storageDir, 'work'),
      stdoutLog: join(storageDir, 'stdout.log'),
      stderrLog: join(storageDir, 'stderr.log'),
    };
    const userns = userNamespaceOf(spec.security);
    const namespaces = ['pid', 'mnt', 'uts', 'ipc', 'cgroup', ...(spec.network === 'host' ? [] : ['net']), ...(userns.enabled ? ['user'] : [])];
    const rec: ContainerRecord = {
      version: 1,
      id,
      name: spec.name,
      state: 'creating',
      config: config.toJSON(),
      image: { ref: image.ref, layers: image.layers },
      createdAt: new Date().toISOString(),
      paths,
      cgroupProcs: [],
      namespaces,
      resources: { ...spec.resources },
    };
    const c = new Container(runtime, rec, config);
    const holder = runtime.state.claimName(spec.name, id);
    if (holder !== undefined) {
      throw new RuntimeError(`create container "${spec.name}": the name is in use by ${holder}`, { code: 'EEXIST', step: 'config', containerId: holder });
    }
    try {
      // The storage dir keeps host users out; the upper dir's mode becomes the mode of the
      // container's "/", which every user inside must be able to traverse.
      for (const d of [stateDir, paths.rootfs, paths.work]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
      fs.mkdirSync(paths.upper, { mode: 0o755 });
      fs.chmodSync(paths.upper, 0o755);
      fs.writeFileSync(paths.stdoutLog, '', { mode: 0o640 });
      fs.writeFileSync(paths.stderrLog, '', { mode: 0o640 });
      runtime.state.save(rec);
      let planUserns: { uidMap: string; gidMap: string; stagingDirs: string[] } | undefined;
      if (userns.enabled) {
        const range = runtime.idRanges.allocate(id);
        rec.idRange = range;
        runtime.state.save(rec);
        const map = `0 ${range.hostId} ${Math.min(userns.size, range.size)}`;
        const stagingDirs = image.layerPaths.map((_, i) => join(storageDir, 'lower', String(i)));
        for (const d of stagingDirs) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
        // The upper dir is the container's own: its owner is the container's root, so "/"
        // inside is root's, as it is in the image.
        fs.chownSync(paths.upper, range.hostId, range.hostId);
        planUserns = { uidMap: map, gidMap: map, stagingDirs };
      }
      const limits = cgroupResources(config.spec.resources, config, storageDir);
      if (gpus) limits.devices = gpus.rules;
      rec.cgroupProcs = runtime.cgroups.create(id, limits).procsFiles;
      const env = buildEnv(image, spec.env, spec.hostname ?? id.slice(0, 12), user);
      const argv = [...(spec.command ?? image.config.cmd), ...spec.args];
      if (argv.length === 0) throw new RuntimeError('the image has no default command and none was given', { code: 'EINVAL', step: 'config' });
      const fields = compileCreatePlan({
        stateDir,
        rootfs: paths.rootfs,
        lowerDirs: image.layerPaths,
        upperDir: paths.upper,
        workDir: paths.work,
        stdout: paths.stdoutLog,
        stderr: paths.stderrLog,
        network: spec.network,
        hostname: spec.hostname ?? id.slice(0, 12),
        volumes,
        user,
        env,
        cwd: spec.workingDir ?? image.config.workingDir ?? '/',
        argv,
        searchPath: searchPath(env),
        security,
        cgroupProcs: rec.cgroupProcs,
        lastCap: runtime.lastCap(),
        userns: planUserns,
        devices: gpus?.deviceNodes,
        placement: placementOf(config),
      });
      const reply = await runtime.spawner.request(['create', id, ...(fields as string[])], `create container ${spec.name}`);
      rec.pid = Number(reply[1]);
      rec.pidStartTime = processStartTime(rec.pid);
      if (spec.network === 'bridge') {
        const bw = spec.resources.networkBandwidth;
        const a = await runtime.network.add(id, `/proc/${rec.pid}/ns/net`, bw);
        rec.network = { ip: a.ip, gateway: a.gateway, result: a.result, bandwidthMbps: bw };
        runtime.state.save(rec);
      }
      await c.watch();
      c.transition('created');
      c.log.info({ pid: rec.pid }, 'container created');
      return c;
    } catch (e) {
      const err = e instanceof RuntimeError ? e : fromNodeError(e, 'config', `create container ${spec.name}`);
      err.containerId = id;
      await c.destroy().catch((cleanupError: unknown) => c.log.error({ err: cleanupError }, 'cleanup after a failed create'));
      throw err;
    }
  }

  /** Loads a container by id (or name) from the state root, possibly written by another process. */
  static async load(idOrName: string, handle: Handle = {}): Promise<Container> {
    const runtime = handle.runtime ?? Runtime.default();
    let rec: ContainerRecord;
    if (/^[a-f0-9]{32}$/.test(idOrName)) rec = runtime.state.load(idOrName);
    else {
      const owner = runtime.state.nameOwner(idOrName);
      const found = owner && /^[a-f0-9]{32}$/.test(owner) ? runtime.state.load(owner) : runtime.state.list().find((r) => r.name === idOrName);
      if (!found) throw new RuntimeError(`no container named "${idOrName}"`, { code: 'ENOTFOUND', step: 'state' });
      rec = found;
    }
    const config = ContainerConfig.fromSpec(rec.config as never, (rec.config as { hardwareAffinity?: never }).hardwareAffinity);
    const c = new Container(runtime, rec, config);
    await c.reconcile();
    return c;
  }

  /** Every container under the runtime's state root, as records (no spawner needed). */
  static async list(handle: Handle = {}): Promise<ContainerStatus[]> {
    const runtime = handle.runtime ?? Runtime.default();
    const out: ContainerStatus[] = [];
    for (const r of runtime.state.list()) {
      const exit = runtime.state.exit(r.id);
      let state = r.state;
      if ((state === 'running' || state === 'paused' || state === 'created') && (exit || !isSameProcess(r.pid, r.pidStartTime))) state = 'stopped';
      out.push(statusOf({ ...r, state, exitCode: exit ? (exit.signal ? null : exit.exitCode) : r.exitCode, signal: exit?.signal ?? r.signal }));
    }
    return out;
  }

  // ── events and state ─────────────────────────────────────────────────────

  private transition(to: ContainerState): void {
    const from = this.rec.state;
    if (from === to) return;
    assertTransition(this.id, 'update', from, to);
    this.rec.state = to;
    if (to !== 'removed') this.runtime.state.save(this.rec);
    this.emit('state', { id: this.id, from, to } satisfies StateChange);
  }

  /** Subscribes to the init's exit and catches an exit that happened before. */
  private async watch(): Promise<void> {
    this.stopWatching ??= await this.runtime.watchExit(this.id, (e) => {
      this.onExit(e.exitCode, e.signal, e.finishedAt);
    });
    const exit = this.runtime.state.exit(this.id);
    if (exit && exit.pid === this.rec.pid) this.onExit(exit.exitCode >= 0 ? exit.exitCode : null, exit.signal || null, exit.finishedAt);
  }

  private onExit(exitCode: number | null, signal: number | null, finishedAt: number): void {
    if (this.rec.state === 'stopped' || this.rec.state === 'removed' || this.rec.finishedAt) {
      return;
    }
    let oomKilled = false;
    try {
      oomKilled = this.runtime.cgroups.oomKills(this.id) > 0;
    } catch {
      // The cgroup may already be gone when the exit is seen late; no OOM was recorded then.
    }
    this.rec.exitCode = signal ? null : exitCode;
    this.rec.signal = signal;
    this.rec.oomKilled = oomKilled;
    this.rec.finishedAt = new Date(finishedAt || Date.now()).toISOString();
    if (this.rec.state === 'creating') return; // create() reports this itself
    if (this.evolution) {
      const c = this.evolution;
      this.evolution = undefined;
      void c.stop({ settle: false });
    }
    this.transition('stopped');
    const status: ExitStatus = { exitCode: this.rec.exitCode, signal: signalName(signal), oomKilled };
    this.log.info(status, 'container exited');
    if (oomKilled) this.emit('oom', { id: this.id });
    this.emit('exit', status);
    this.resolveExit(status);
  }

  /** Brings a loaded record up to date with the spawner's and the kernel's view. */
  private async reconcile(): Promise<void> {
    if (this.rec.state === 'stopped') {
      this.resolveExit({ exitCode: this.rec.exitCode ?? null, signal: signalName(this.rec.signal), oomKilled: !!this.rec.oomKilled });
      return;
    }
    if (this.rec.state === 'removed' || this.rec.state === 'creating') return;
    const exit = this.runtime.state.exit(this.id);
    if (exit || !isSameProcess(this.rec.pid, this.rec.pidStartTime)) {
      // Exited while nobody watched: the spawner wrote exit.json. Without it (the spawner
      // died too) the exit code is unknown.
      if (exit) this.onExit(exit.exitCode >= 0 ? exit.exitCode : null, exit.signal || null, exit.finishedAt);
      else this.onExit(null, null, Date.now());
      return;
    }
    // Alive, but perhaps its spawner died and a new one does not know it: the new one adopts
    // it (through a pidfd, checked against the recorded start time) to signal and watch it.
    const known = await this.runtime.spawner.request(['status', this.id], `status of container ${this.name}`);
    if (known[1] === 'unknown') {
      await this.runtime.spawner.request(
        ['adopt', this.id, String(this.rec.pid), this.rec.pidStartTime ?? '', this.rec.paths.stateDir],
        `adopt container ${this.name}`,
      );
      this.log.warn('adopted from a spawner that is gone: its exit code will not be known');
    }
    await this.watch();
  }

  async status(): Promise<ContainerStatus> {
    return statusOf(this.rec);
  }

  /** Resolves once, when the container's init has exited (the same result for every caller). */
  wait(): Promise<ExitStatus> {
    if (this.rec.state === 'stopped' || this.rec.state === 'removed') return this.exited;
    // Like a child process, an awaited container keeps the host agent's event loop alive.
    this.runtime.spawner.hold(1);
    return this.exited.finally(() => this.runtime.spawner.hold(-1));
  }

  // ── operations ───────────────────────────────────────────────────────────

  /** Runs the container's command. */
  start(): Promise<void> {
    return this.queue.run(async () => {
      assertOperation(this.name, 'start', this.rec.state);
      try {
        await this.runtime.spawner.request(['start', this.id], `start container ${this.name}`);
      } catch (e) {
        if (e instanceof RuntimeError) e.containerId = this.id;
        throw e;
      }
      this.rec.startedAt = new Date().toISOString();
      if (this.rec.state === 'created') this.transition('running');
      this.log.info('container started');
      // STRATOSWARM_EVOLUTION_ENABLED: containers evolve with the default configuration
      // unless the host agent enables evolution itself.
      if (this.runtime.options.evolutionEnabled && !this.evolution && this.rec.state === 'running') {
        await this.enableEvolution(EvolutionConfig.fromDefaults(this.runtime.options));
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
    if (s !== 'created' && s !== 'running' && s !== 'paused') {
      throw new RuntimeError(`kill container ${this.name}: it is ${s}, not running`, { code: 'ESTATE', step: 'signal', containerId: this.id });
    }
    try {
      await this.runtime.spawner.request(['kill', this.id, String(sig)], `kill container ${this.name}`);
    } catch (e) {
      // Lost the race with the exit: the container is stopping anyway.
      if (e instanceof RuntimeError && e.code === 'ESTATE') return;
      throw e;
    }
    // A frozen task acts on a signal only once thawed.
    if (s === 'paused') await this.runtime.cgroups.thaw(this.id);
  }

  /**
   * Stops the container: SIGTERM, then SIGKILL once `timeoutMs` (default 10 s) has passed.
   * Stopping a stopped container does nothing.
   */
  stop(opts: { timeoutMs?: number; signal?: string | number } = {}): Promise<ExitStatus> {
    return this.queue.run(async () => {
      if (this.rec.state === 'stopped') return this.exited;
      assertOperation(this.name, 'stop', this.rec.state);
      const timeoutMs = opts.timeoutMs ?? 10_000;
      await this.signal(opts.signal ?? 'SIGTERM');
      const graceful = await Promise.race([this.wait().then(() => true), sleep(timeoutMs).then(() => false)]);
      if (!graceful && (this.rec.state as ContainerState) !== 'stopped') {
        this.log.warn({ timeoutMs }, 'container ignored SIGTERM; sending SIGKILL');
        await this.signal('SIGKILL');
      }
      return this.wait();
    });
  }

  /** Freezes every process of the container (cgroup freezer). */
  pause(): Promise<void> {
    return this.queue.run(async () => {
      assertOperation(this.name, 'pause', this.rec.state);
      await this.runtime.cgroups.freeze(this.id);
      this.transition('paused');
    });
  }

  resume(): Promise<void> {
    return this.queue.run(async () => {
      assertOperation(this.name, 'resume', this.rec.state);
      await this.runtime.cgroups.thaw(this.id);
      this.transition('running');
    });
  }

  /**
   * Removes the container and everything it had: processes, cgroups, writable layer, logs
   * and state. A running container needs `force` (it is killed first).
   */
  remove(opts: { force?: boolean } = {}): Promise<void> {
    return this.queue.run(async () => {
      const s = this.rec.state;
      if (s === 'removed') return;
      if ((s === 'running' || s === 'paused') && !opts.force) {
        throw new RuntimeError(`remove container ${this.name}: cannot go from ${s} to removed; stop it first or pass { force: true }`, {
          code: 'ESTATE',
          step: 'state',
          containerId: this.id,
        });
      }
      await this.disableEvolution({ settle: false });
      if (s === 'created' || s === 'running' || s === 'paused') {
        await this.signal('SIGKILL');
        await this.wait();
      }
      await this.destroy();
      this.transition('removed');
      this.log.info('container removed');
    });
  }

  /** Removes every trace of the container; safe to call at any point of its life. */
  private async destroy(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        errors.push(e);
      }
    };
    if (this.rec.pid && this.rec.state === 'creating') {
      // A create that failed after the spawner made the init: make sure it is gone.
      await attempt(async () => {
        await this.runtime.spawner.request(['kill', this.id, '9'], 'cleanup').catch(() => undefined);
        for (let i = 0; i < 100 && !this.runtime.state.exit(this.id) && isSameProcess(this.rec.pid, this.rec.pidStartTime); i++) await sleep(10);
      });
    }
    if (this.rec.network) {
      const n = this.rec.network;
      const alive = isSameProcess(this.rec.pid, this.rec.pidStartTime);
      await attempt(() => this.runtime.network.del(this.id, alive ? `/proc/${this.rec.pid}/ns/net` : '', n.result as never, n.bandwidthMbps));
    }
    await attempt(() => this.runtime.spawner.request(['forget', this.id], 'cleanup').catch((e: unknown) => {
      if (!(e instanceof RuntimeError && e.code === 'ENOSPAWNER')) throw e;
    }));
    this.stopWatching?.();
    this.stopWatching = undefined;
    await attempt(() => this.runtime.cgroups.destroy(this.id));
    await attempt(() => fs.rmSync(this.rec.paths.storageDir, { recursive: true, force: true }));
    if (this.rec.idRange) await attempt(() => this.runtime.idRanges.release(this.rec.idRange!, this.id));
    await attempt(() => this.runtime.state.remove(this.id));
    await attempt(() => this.runtime.state.releaseName(this.rec.name, this.id));
    if (errors.length > 0) {
      const first = errors[0];
      throw first instanceof RuntimeError ? first.wrap(`remove container ${this.name}`) : fromNodeError(first, 'cleanup', `remove container ${this.name}`);
    }
  }

  /** Runs a further process inside the running container: its namespaces, cgroups and confinement. */
  async exec(command: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.rec.state !== 'running') {
      throw new RuntimeError(`exec in container ${this.name}: it is ${this.rec.state}, not running`, { code: 'ESTATE', step: 'setns', containerId: this.id });
    }
    if (command.length === 0 || command.some((a) => typeof a !== 'string' || a.includes('\0'))) {
      throw new RuntimeError('exec: command must be a non-empty list of strings without NUL bytes', { code: 'EINVAL', step: 'config' });
    }
    const spec = this.config.spec;
    const image = this.runtime.images.resolve(this.rec.image.ref);
    const user = resolveUser(this.runtime, image, opts.user !== undefined ? String(opts.user) : spec.user ?? image.config.user);
    const security = resolveSecurity(this.runtime, spec.security, user);
    const env = buildEnv(image, { ...spec.env, ...(opts.env ?? {}) }, spec.hostname ?? this.id.slice(0, 12), user);
    const fields = compileExecPlan({
      user,
      env,
      cwd: opts.workingDir ?? spec.workingDir ?? image.config.workingDir ?? '/',
      argv: command,
      searchPath: searchPath(env),
      security,
      cgroupProcs: this.rec.cgroupProcs,
      lastCap: this.runtime.lastCap(),
      namespaces: this.rec.namespaces,
      placement: placementOf(this.config),
    });
    const k = this.runtime.kernel;
    const stdin = k.pipe();
    const stdout = k.pipe();
    const stderr = k.pipe();
    const toChild = [stdin[0], stdout[1], stderr[1]];
    let started: Awaited<ReturnType<Runtime['spawner']['exec']>>;
    try {
      started = await this.runtime.spawner.exec(['exec', this.id, ...(fields as string[])], toChild, `exec in container ${this.name}`);
    } catch (e) {
      for (const fd of [...stdin, ...stdout, ...stderr]) k.close(fd);
      if (e instanceof RuntimeError) e.containerId = this.id;
      throw e;
    } finally {
      // The child has its copies now (or there is no child).
      for (const fd of toChild) k.close(fd);
    }
    const collect = (fd: number) =>
      new Promise<string>((resolve) => {
        const chunks: Buffer[] = [];
        const s = new Socket({ fd, readable: true, writable: false });
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('error', () => resolve(Buffer.concat(chunks).toString('utf8')));
        s.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      });
    const out = collect(stdout[0]);
    const err = collect(stderr[0]);
    const input = new Socket({ fd: stdin[1], readable: false, writable: true });
    input.on('error', () => undefined);
    input.end(opts.stdin ?? '');
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        void this.execKill(started.pid);
      }, opts.timeoutMs);
    }
    const exit = await started.exit.finally(() => clearTimeout(timer));
    return { pid: started.pid, exitCode: exit.exitCode, signal: signalName(exit.signal), stdout: await out, stderr: await err };
  }

  private async execKill(pid: number): Promise<void> {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }

  /** The resource settings in force. */
  get resources(): ResourceSpec {
    return { ...((this.rec.resources ?? this.config.spec.resources) as ResourceSpec) };
  }

  /**
   * Changes resource limits in place, all or nothing: if one write fails, every value
   * already written is restored and the error says which write failed. Works while the
   * container is created, running or paused. `null` removes a limit.
   */
  update(changes: ResourceUpdate): Promise<void> {
    return this.queue.run(() => this.applyResources(changes, true));
  }

  /** update(); evolution passes save = false and persists with its own, less frequent, saves. */
  private async applyResources(changes: ResourceUpdate, save: boolean): Promise<void> {
    {
      const s = this.rec.state;
      if (s !== 'created' && s !== 'running' && s !== 'paused') {
        throw new RuntimeError(`update container ${this.name}: it is ${s}`, { code: 'ESTATE', step: 'state', containerId: this.id });
      }
      const before = this.resources;
      const after: ResourceSpec = { ...before };
      for (const [k, v] of Object.entries(changes) as [keyof ResourceSpec, unknown][]) {
        if (v === null) delete after[k];
        else if (v !== undefined) (after as Record<string, unknown>)[k] = v;
      }
      // The same validation as at build time, naming each bad field.
      const spec = this.config.spec;
      ContainerConfig.fromSpec({ ...spec, personality: spec.personality, resources: after } as never);
      if ((changes.gpuCount !== undefined || changes.gpuDevices !== undefined) && JSON.stringify(after.gpuDevices) !== JSON.stringify(before.gpuDevices)) {
        throw new RuntimeError(`update container ${this.name}: GPUs are assigned at create and cannot change while it exists`, { code: 'EUNSUPPORTED', step: 'config', containerId: this.id });
      }
      const delta = resourceDelta(changes, after, this.rec.paths.storageDir);
      this.runtime.cgroups.update(this.id, delta);
      if (changes.networkBandwidth !== undefined && after.networkBandwidth !== before.networkBandwidth) {
        const n = this.rec.network;
        if (!n) {
          this.runtime.cgroups.update(this.id, resourceDelta(changes, before, this.rec.paths.storageDir, true));
          throw new RuntimeError(`update container ${this.name}: networkBandwidth needs network "bridge"`, { code: 'EINVAL', step: 'config', containerId: this.id });
        }
        try {
          n.result = await this.runtime.network.setBandwidth(this.id, `/proc/${this.rec.pid}/ns/net`, n.result as never, before.networkBandwidth, after.networkBandwidth);
          n.bandwidthMbps = after.networkBandwidth;
        } catch (e) {
          this.runtime.cgroups.update(this.id, resourceDelta(changes, before, this.rec.paths.storageDir, true));
          throw e;
        }
      }
      this.rec.resources = { ...after };
      if (save) this.runtime.state.save(this.rec);
      this.log.debug({ changes }, 'resources updated');
    }
  }

  /**
   * Usage and limits from the container's cgroups (CPU time and throttling, memory, OOM
   * kills, pids, block I/O) and its network interfaces. Each call also feeds the usage
   * history that allocateResources() plans from.
   */
  async stats(opts: { only?: readonly ('cpu' | 'memory' | 'pids' | 'blockIo' | 'network')[] } = {}): Promise<ContainerStats> {
    const s = this.rec.state;
    if (s !== 'created' && s !== 'running' && s !== 'paused') {
      throw new RuntimeError(`stats of container ${this.name}: it is ${s}`, { code: 'ESTATE', step: 'state', containerId: this.id });
    }
    const now = Date.now();
    const only = opts.only;
    const controllers = only?.flatMap((k): Controller[] => (k === 'cpu' ? ['cpu', 'cpuacct'] : k === 'blockIo' ? ['blkio'] : k === 'network' ? [] : [k]));
    const cg = this.runtime.cgroups.stats(this.id, controllers);
    const out: ContainerStats = { ...cg, timestamp: now };
    if (cg.cpu) {
      if (this.lastCpuSample && now > this.lastCpuSample.t) {
        out.cpuCores = (cg.cpu.usageNs - this.lastCpuSample.usageNs) / 1e6 / (now - this.lastCpuSample.t);
      }
      this.lastCpuSample = { usageNs: cg.cpu.usageNs, t: now };
    }
    if (this.rec.pid && this.config.spec.network !== 'host' && (!only || only.includes('network'))) out.network = readNetDev(this.rec.pid);
    if (out.cpuCores !== undefined || cg.memory) {
      this.usage.add({ timestampMs: now, cpuCores: out.cpuCores ?? 0, memoryBytes: cg.memory?.currentBytes ?? 0 });
    }
    return out;
  }

  /**
   * The resources this container's personality allocates for a workload, from the request
   * and the usage observed through stats(). With `apply`, the plan is put in force with
   * update().
   */
  async allocateResources(workload: WorkloadRequest = {}, opts: { apply?: boolean } = {}): Promise<ResourcePlan> {
    const plan = allocateResources(this.config.spec.personality, workload, this.usage, this.lastPlan, Date.now());
    if (opts.apply) {
      await this.update({
        cpuLimit: plan.hardLimits ? Math.max(0.01, Math.round(plan.cpuLimit * 100) / 100) : null,
        cpuWeight: Math.max(1, Math.min(10000, Math.round(plan.cpuWeight))),
        // Soft limits (a cooperative personality): no cap, only the reservation it keeps
        // under pressure (soft limit / memory.low).
        memoryLimit: plan.hardLimits ? Math.max(4 * 1024 * 1024, Math.ceil(plan.memoryLimit / 4096) * 4096) : null,
        memoryReservation: plan.memoryReservation > 0 ? Math.ceil(plan.memoryReservation / 4096) * 4096 : null,
        pidsLimit: plan.pidsLimit,
      });
    }
    this.lastPlan = plan;
    return plan;
  }

  /**
   * The confinement the container's init really has, read back from the kernel: capability
   * sets, no_new_privs, seccomp mode and filters, id maps, namespaces, read-only mounts.
   */
  async securityReport(): Promise<SecurityReport> {
    const s = this.rec.state;
    if ((s !== 'created' && s !== 'running' && s !== 'paused') || !isSameProcess(this.rec.pid, this.rec.pidStartTime)) {
      throw new RuntimeError(`security report of container ${this.name}: it is ${s}, no init to inspect`, { code: 'ESTATE', step: 'state', containerId: this.id });
    }
    return securityReport(this.rec.pid!);
  }

  /**
   * Lets the container tune its own live-updatable settings (cpuLimit, memoryLimit,
   * cpuWeight, or the genes `config` gives bounds for) toward `config`'s fitness: each
   * generation measures the settings in force through stats(), then applies the next
   * proposal with update(). Emits 'generation' with each record. The state persists with
   * the container: after a host restart, enabling evolution again continues where it was.
   */
  async enableEvolution(config: EvolutionConfig, opts: EvolutionOptions = {}): Promise<void> {
    if (this.rec.state !== 'running' && this.rec.state !== 'created') {
      throw new RuntimeError(`enable evolution of container ${this.name}: it is ${this.rec.state}`, { code: 'ESTATE', step: 'state', containerId: this.id });
    }
    if (this.evolution) await this.disableEvolution({ settle: false });
    const current = this.resources;
    const wanted = Object.keys(config.bounds).length > 0 ? Object.keys(config.bounds) : ['cpuLimit', 'cpuWeight', ...(current.memoryLimit ? ['memoryLimit'] : [])];
    const defaults: Genome = { cpuLimit: availableParallelism(), cpuWeight: 100, memoryLimit: current.memoryLimit ?? 1024 ** 3 };
    const initial: Genome = {};
    for (const g of wanted) {
      const v = (current as Record<string, unknown>)[g];
      initial[g] = typeof v === 'number' ? v : (defaults[g] ?? 0);
    }
    const persisted = this.rec.evolution as { snapshot?: EvolutionSnapshot } | undefined;
    let lastSave = 0;
    let prev: StatsReading | undefined;
    const read = async (): Promise<StatsReading> => {
      const u = this.runtime.cgroups.usage(this.id);
      const reading: StatsReading = { timestampMs: Date.now(), cpuUsageUsec: u.cpuNs / 1000, memoryBytes: u.memoryBytes };
      if (opts.workDone) reading.workDone = await opts.workDone();
      return reading;
    };
    const controller = new EvolutionController(
      {
        update: async (settings) => {
          const r = settings as Record<string, number>;
          const change: ResourceUpdate = {};
          for (const [k, v] of Object.entries(r)) (change as Record<string, number>)[k] = k === 'cpuLimit' ? Math.max(0.01, Math.round(v * 1000) / 1000) : Math.round(v);
          await this.queue.run(() => this.applyResources(change, false));
        },
        sample: async () => {
          const cur = await read();
          const last = prev ?? cur;
          prev = cur;
          const res = this.resources;
          return metricsBetween(last, cur, { cpuLimit: res.cpuLimit ?? availableParallelism(), memoryLimit: res.memoryLimit ?? 1024 ** 3 });
        },
      },
      config,
      {
        initial,
        personality: this.config.spec.personality,
        snapshot: opts.restart ? undefined : persisted?.snapshot,
        persist: (snapshot) => {
          // Every generation updates the record; the file is written at most once a minute
          // (and when evolution stops): a host restart loses at most that much progress,
          // and a hundred containers on 1-second generations do not write 100 files a second.
          this.rec.evolution = { snapshot, enabled: true };
          const now = Date.now();
          if (this.rec.state !== 'removed' && now - lastSave >= PERSIST_EVERY_MS) {
            lastSave = now;
            this.runtime.state.save(this.rec);
          }
        },
      },
    );
    controller.on('generation', (record) => this.emit('generation', record));
    controller.on('error', (err) => {
      this.log.warn({ err }, 'evolution generation failed');
      this.emit('evolutionError', err);
    });
    this.evolution = controller;
    controller.start();
    this.log.info({ initial, resumed: !!persisted?.snapshot && !opts.restart }, 'evolution enabled');
  }

  /** Stops evolving; by default the best settings found are put in force. */
  async disableEvolution(opts: { settle?: boolean } = {}): Promise<void> {
    const c = this.evolution;
    if (!c) return;
    this.evolution = undefined;
    const settle = (opts.settle ?? true) && (this.rec.state === 'running' || this.rec.state === 'paused' || this.rec.state === 'created');
    await c.stop({ settle });
    if (this.rec.state !== 'removed') {
      this.rec.evolution = { ...(this.rec.evolution as object), snapshot: c.snapshot(), enabled: false };
      this.runtime.state.save(this.rec);
    }
  }

  /** Generation, current and best genome and fitness history; undefined when evolution never ran. */
  evolutionState(): EvolutionState | undefined {
    return this.evolution?.state();
  }

  /** The container's stdout, from the start, following it until the container exits. */
  get stdout(): Readable {
    return followFile(this.rec.paths.stdoutLog, this.exited);
  }

  get stderr(): Readable {
    return followFile(this.rec.paths.stderrLog, this.exited);
  }

  /** What the container wrote so far. */
  logs(): { stdout: string; stderr: string } {
    const read = (p: string) => {
      try {
        return fs.readFileSync(p, 'utf8');
      } catch {
        return '';
      }
    };
    return { stdout: read(this.rec.paths.stdoutLog), stderr: read(this.rec.paths.stderrLog) };
  }
}

function statusOf(r: ContainerRecord): ContainerStatus {
  return {
    id: r.id,
    name: r.name,
    state: r.state,
    pid: r.state === 'running' || r.state === 'paused' || r.state === 'created' ? r.pid : undefined,
    exitCode: r.exitCode,
    signal: r.signal === undefined ? undefined : signalName(r.signal),
    oomKilled: !!r.oomKilled,
    createdAt: new Date(r.createdAt),
    startedAt: r.startedAt ? new Date(r.startedAt) : undefined,
    finishedAt: r.finishedAt ? new Date(r.finishedAt) : undefined,
  };
}

/** Resolves "uid[:gid]" or "name[:group]" against the image's account files. */
export function resolveUser(runtime: Runtime, image: ResolvedImage, user: string): PlanUser {
  const [u, g] = user.split(':') as [string, string | undefined];
  const { users, groups } = runtime.images.accounts(image);
  let uid: number;
  let gid: number;
  let name: string | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const entry = users.find((x) => x.uid === uid);
    name = entry?.name;
    gid = entry?.gid ?? uid;
  } else {
    const entry = users.find((x) => x.name === u);
    if (!entry) {
      throw new RuntimeError(`user "${u}" not found in the image's /etc/passwd`, { code: 'ENOTFOUND', step: 'user', path: '/etc/passwd' });
    }
    uid = entry.uid;
    gid = entry.gid;
    name = entry.name;
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const grp = groups.find((x) => x.name === g);
      if (!grp) throw new RuntimeError(`group "${g}" not found in the image's /etc/group`, { code: 'ENOTFOUND', step: 'user', path: '/etc/group' });
      gid = grp.gid;
    }
  }
  const extra = name ? groups.filter((x) => x.members.includes(name!)).map((x) => x.gid) : [];
  return { uid, gid, groups: [...new Set([gid, ...extra])] };
}

function checkVolumes(volumes: readonly { source: string; target: string; readOnly?: boolean }[]): PlanVolume[] {
  return volumes.map((v, i) => {
    let st: fs.Stats;
    try {
      st = fs.statSync(v.source);
    } catch (e) {
      throw fromNodeError(e, 'volume', `volumes[${i}]: source \`${v.source}\``);
    }
    return { source: v.source, target: posix.normalize(v.target), readOnly: !!v.readOnly, isFile: !st.isDirectory() };
  });
}

function buildEnv(image: ResolvedImage, extra: Record<string, string>, hostname: string, user: PlanUser): string[] {
  const env = new Map<string, string>();
  env.set('PATH', DEFAULT_PATH);
  for (const kv of image.config.env) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  env.set('HOSTNAME', hostname);
  if (!env.has('HOME')) env.set('HOME', user.uid === 0 ? '/root' : '/');
  for (const [k, v] of Object.entries(extra)) env.set(k, v);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

function searchPath(env: string[]): string {
  return env.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
}

/** CPU affinity and memory policy from the configuration's hardware affinity. */
function placementOf(config: ContainerConfig): PlanPlacement | undefined {
  const a = config.hardwareAffinity();
  if (!a) return undefined;
  return { cpus: a.cpus(), mempolicy: a.memoryPolicy() };
}

/** The cgroup changes for an update: only the fields named in `changes`, `null` → unlimited. */
function resourceDelta(changes: ResourceUpdate, target: ResourceSpec, storageDir: string, revert = false): Resources {
  const out: Resources = {};
  const pick = <K extends 'cpuLimit' | 'cpuWeight' | 'memoryLimit' | 'memorySwap' | 'memoryReservation' | 'pidsLimit'>(k: K) => {
    if (changes[k] === undefined) return;
    const v = target[k];
    (out as Record<string, unknown>)[k] = v === undefined ? (k === 'cpuWeight' ? 100 : UNLIMITED) : v;
  };
  for (const k of ['cpuLimit', 'cpuWeight', 'memoryLimit', 'memorySwap', 'memoryReservation', 'pidsLimit'] as const) pick(k);
  if (changes.memorySwap !== undefined && out.memoryLimit === undefined) out.memoryLimit = target.memoryLimit ?? UNLIMITED;
  if (changes.cpusetCpus !== undefined && target.cpusetCpus !== undefined) out.cpusetCpus = target.cpusetCpus;
  if (changes.cpusetMems !== undefined && target.cpusetMems !== undefined) out.cpusetMems = target.cpusetMems;
  if (changes.diskIops !== undefined || changes.diskBps !== undefined) {
    const iops = target.diskIops ?? UNLIMITED;
    const bps = target.diskBps ?? UNLIMITED;
    out.blockIo = [{
      device: blockDeviceFor(storageDir),
      ...(changes.diskIops !== undefined || revert ? { readIops: iops, writeIops: iops } : {}),
      ...(changes.diskBps !== undefined || revert ? { readBps: bps, writeBps: bps } : {}),
    }];
  }
  return out;
}

/** Interface counters of the init's network namespace (all but loopback). */
function readNetDev(pid: number): ContainerStats['network'] {
  try {
    const text = fs.readFileSync(`/proc/${pid}/net/dev`, 'utf8');
    const total = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 };
    for (const line of text.split('\n').slice(2)) {
      const [name, rest] = line.split(':');
      if (!rest || name!.trim() === 'lo') continue;
      const f = rest.trim().split(/\s+/).map(Number);
      total.rxBytes += f[0]!;
      total.rxPackets += f[1]!;
      total.txBytes += f[8]!;
      total.txPackets += f[9]!;
    }
    return total;
  } catch {
    return undefined;
  }
}

/** The cgroup limits for a container's resource settings (the mapping is src/isolation/mapping.ts). */
function cgroupResources(r: ResourceSpec, config: ContainerConfig, storageDir: string): Resources {
  const affinity = config.hardwareAffinity()?.cpuset();
  const out: Resources = {
    cpuLimit: r.cpuLimit,
    cpuWeight: r.cpuWeight,
    memoryLimit: r.memoryLimit,
    memorySwap: r.memorySwap,
    memoryReservation: r.memoryReservation,
    pidsLimit: r.pidsLimit,
    cpusetCpus: r.cpusetCpus ?? affinity?.cpus,
    cpusetMems: r.cpusetMems ?? affinity?.mems,
  };
  if (r.diskIops !== undefined || r.diskBps !== undefined) {
    // The device that holds the container's writable layer, where its disk I/O lands.
    out.blockIo = [{ device: blockDeviceFor(storageDir), readIops: r.diskIops, writeIops: r.diskIops, readBps: r.diskBps, writeBps: r.diskBps }];
  }
  return out;
}

export type { PlanSecurity };
