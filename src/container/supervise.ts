/**
 * The restart supervisor: what happens when a container with a restart policy ends. The
 * policy is docker's (`no`, `on-failure`, `always`, `unless-stopped`); retries, first
 * backoff, multiplier and cap come from the personality's decision rules unless given. A
 * restart keeps the container: its id, name, writable layer, volumes, cgroups and limits,
 * id range and logs; only its init is new (and its bridge attachment, whose network
 * namespace died with the old one). Supervision lives in the host agent; a host agent that
 * dies leaves it to the next runtime on the same state root, which resumes it on first use.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { RuntimeParts } from '../parts.js';
import { encodeCreate } from '../plan/encode.js';
import { restartBackoffMs, restartPolicy, type RestartPolicy } from '../personality/restart.js';
import type { ContainerRecord } from '../state.js';
import type { ContainerConfig, RestartPolicyName } from './config.js';
import { prepareCreate, wantsGpus } from './prepare.js';
import { prepareContext } from './records.js';
import { encodeStartInput, sendStart } from './start.js';
import { ownDeviceNodes } from '../gpu/cdi/nodes.js';
import { runHooks } from '../gpu/hooks.js';
import { setUpInit } from './device-setup.js';
import { detachNetwork, forgetInit, killInit } from './teardown.js';
import type { ExitStatus } from './types.js';

/** What a container's record keeps of its restarts. */
export interface RestartRecord {
  /** Restarts so far. */
  count: number;
  /** Restarts since the container last ran long enough to count as healthy. */
  streak: number;
  lastAt?: string | undefined;
  /** stop() was called: only `always` brings it back, and only when a new runtime resumes. */
  manualStop?: boolean | undefined;
  /** The retries are spent: the container stays stopped (the terminal state of a crash loop). */
  exhausted?: boolean | undefined;
  /** The process whose timer will restart it. */
  owner?: { pid: number; startTime: string | undefined } | undefined;
}

export interface ResolvedRestart extends RestartPolicy {
  policy: RestartPolicyName;
}

export function restartRule(config: ContainerConfig): ResolvedRestart {
  const spec = config.spec.restart;
  const base = restartPolicy(config.spec.personality);
  return {
    policy: spec?.policy ?? 'no',
    maxRetries: spec?.maxRetries ?? base.maxRetries,
    initialBackoffMs: spec?.initialBackoffMs ?? base.initialBackoffMs,
    maxBackoffMs: spec?.maxBackoffMs ?? Math.max(base.maxBackoffMs, spec?.initialBackoffMs ?? 0),
    multiplier: spec?.multiplier ?? base.multiplier,
  };
}

/**
 * The delay before the next restart, or undefined when the container stays stopped.
 * `resumed`: a new runtime looks at a container nobody supervised (docker's daemon start:
 * `always` brings back even a manually stopped one).
 */
export function nextRestart(rule: ResolvedRestart, exit: ExitStatus, r: RestartRecord, resumed = false): { delayMs: number; attempt: number } | 'exhausted' | undefined {
  if (rule.policy === 'no' || r.exhausted) return undefined;
  if (r.manualStop && !(resumed && rule.policy === 'always')) return undefined;
  const failed = exit.exitCode !== 0 || exit.signal !== null;
  if (rule.policy === 'on-failure' && !failed) return undefined;
  const attempt = r.streak + 1;
  const delayMs = restartBackoffMs(rule, attempt);
  return delayMs === undefined ? 'exhausted' : { delayMs, attempt };
}

/** A run this long resets the streak: the container was healthy (docker uses 10 s). */
export function healthyRunMs(rule: ResolvedRestart): number {
  return Math.max(10_000, rule.maxBackoffMs);
}

/**
 * A new init for a stopped container, started with its process: the spawner forgets the old
 * one, the old exit record goes, the create and start requests are those of a cold create,
 * and the CDI hooks run again as for a cold create and start (the new init has new
 * namespaces). A failing create or start hook kills the new init and fails the restart.
 */
export async function respawn(parts: RuntimeParts, rec: ContainerRecord, config: ContainerConfig): Promise<void> {
  const gpus = wantsGpus(config) ? await parts.gpus() : undefined;
  const plan = prepareCreate(config, rec.id, prepareContext(parts, gpus));
  const start = encodeStartInput(rec.id, rec.name, { process: plan.process, lastCap: plan.lastCap });
  await forgetInit(parts, rec);
  if (rec.network) {
    await detachNetwork(parts, rec);
    rec.network = undefined;
  }
  fs.rmSync(join(parts.state.dir(rec.id), 'exit.json'), { force: true });
  const deviceNodes = plan.deviceNodes && (await ownDeviceNodes(plan.deviceNodes, join(rec.paths.storageDir, 'devices'), rec.idRange, (f, a) => parts.kernel.runProgram(f, a)));
  const reply = await parts.spawner.request(encodeCreate({ ...plan, deviceNodes }, { cgroupProcs: rec.cgroupProcs, idRange: rec.idRange }), `restart container ${rec.name}`);
  rec.pid = Number(reply[1]);
  rec.pidStartTime = parts.kernel.processStartTime(rec.pid);
  if (plan.network.mode === 'bridge') {
    const a = await parts.network.add(rec.id, `/proc/${rec.pid}/ns/net`, plan.network.bandwidthMbps);
    rec.network = { ip: a.ip, gateway: a.gateway, result: a.result, bandwidthMbps: plan.network.bandwidthMbps };
  }
  if (plan.hooks?.length) rec.hooks = plan.hooks;
  else delete rec.hooks;
  parts.state.save(rec);
  const state = { id: rec.id, pid: rec.pid, status: 'created' as const, bundle: rec.paths.storageDir };
  try {
    await setUpInit(parts, rec, plan);
    await runHooks(plan.hooks, 'startContainer', state);
  } catch (e) {
    await killInit(parts, rec).catch((err: unknown) => parts.logger.error({ container: rec.id, err }, 'killing a restarted init whose hook failed'));
    throw e;
  }
  await sendStart(parts, rec.id, rec.name, start);
  await runHooks(plan.hooks, 'poststart', { ...state, status: 'running' }).catch((e: unknown) => parts.logger.warn({ container: rec.id, err: e }, 'a poststart hook failed'));
}

/** What the supervisor needs of its container. */
export interface SupervisedContainer {
  readonly id: string;
  /** The Container object itself. */
  readonly object: object;
  readonly name: string;
  readonly config: ContainerConfig;
  record(): ContainerRecord;
  /** Runs `f` in the container's operation queue. */
  serialized<T>(f: () => Promise<T>): Promise<T>;
  /** After a respawn: the container is running again with a new init. */
  restarted(): Promise<void>;
  emit(event: 'restart', e: { id: string; count: number; attempt: number }): boolean;
  emit(event: 'restartsExhausted', e: { id: string; count: number }): boolean;
}

// Supervised containers stay referenced: a dropped Container object would otherwise be
// collected with its exit subscription, and nobody would restart it.
const SUPERVISED = new Set<Supervisor>();
// One pending restart per container in this process, whichever Container object saw the exit.
const PENDING = new Map<string, Supervisor>();

export class Supervisor {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly c: SupervisedContainer,
    private readonly parts: RuntimeParts,
  ) {
    // From the start: a load in this process finds this object, and it is not collected.
    if (this.rule.policy !== 'no' && !supervisedObject(parts, c.id)) SUPERVISED.add(this);
  }

  get object(): object {
    return this.c.object;
  }

  holds(parts: RuntimeParts, id: string): boolean {
    return parts.options.stateRoot === this.parts.options.stateRoot && id === this.c.id;
  }

  private get key(): string {
    return `${this.parts.options.stateRoot}\0${this.c.id}`;
  }

  private get rule(): ResolvedRestart {
    return restartRule(this.c.config);
  }

  private state(): RestartRecord {
    const rec = this.c.record() as ContainerRecord & { restarts?: RestartRecord };
    return (rec.restarts ??= { count: 0, streak: 0 });
  }

  /** The container's init ended (`resumed`: seen by a runtime other than the one that ran it). */
  onExit(exit: ExitStatus, resumed = false): void {
    const rule = this.rule;
    if (rule.policy === 'no') return;
    const rec = this.c.record();
    const r = this.state();
    const ran = rec.startedAt && rec.finishedAt ? Date.parse(rec.finishedAt) - Date.parse(rec.startedAt) : 0;
    if (ran >= healthyRunMs(rule)) r.streak = 0;
    const next = nextRestart(rule, exit, r, resumed);
    if (next === undefined) return this.release();
    if (next === 'exhausted') {
      r.exhausted = true;
      this.save();
      this.parts.logger.warn({ container: this.c.id, restarts: r.count }, `container ${this.c.name}: restart retries (${rule.maxRetries}) spent; it stays stopped`);
      this.c.emit('restartsExhausted', { id: this.c.id, count: r.count });
      return this.release();
    }
    const other = PENDING.get(this.key);
    if (other && other !== this) return;
    PENDING.set(this.key, this);
    r.owner = { pid: process.pid, startTime: this.parts.kernel.processStartTime(process.pid) };
    this.save();
    SUPERVISED.add(this);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.restart(next.attempt).catch((e: unknown) => this.parts.logger.error({ err: e, container: this.c.id }, 'restart failed'));
    }, next.delayMs);
    // A host agent with nothing else to do may exit: the next runtime resumes supervision.
    this.timer.unref();
  }

  /** stop() by the user: no restart (until a new runtime resumes an `always` container). */
  stopped(): void {
    if (this.rule.policy === 'no') return;
    this.state().manualStop = true;
    this.cancel();
  }

  /** start() by the user: supervision begins afresh. */
  started(): void {
    if (this.rule.policy === 'no') return;
    const r = this.state();
    r.manualStop = undefined;
    r.exhausted = undefined;
    r.streak = 0;
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.release();
  }

  private release(): void {
    SUPERVISED.delete(this);
    if (PENDING.get(this.key) === this) PENDING.delete(this.key);
  }

  private save(): void {
    try {
      this.parts.state.save(this.c.record());
    } catch (e) {
      this.parts.logger.error({ err: e, container: this.c.id }, 'could not save the restart state');
    }
  }

  private async restart(attempt: number): Promise<void> {
    await this.c.serialized(async () => {
      const rec = this.c.record();
      if (PENDING.get(this.key) === this) PENDING.delete(this.key);
      if (rec.state !== 'stopped' || this.timer) return; // removed, started by hand, or rescheduled
      const r = this.state();
      r.count++;
      r.streak++;
      r.lastAt = new Date().toISOString();
      try {
        await respawn(this.parts, rec, this.c.config);
      } catch (e) {
        this.parts.logger.error({ err: e, container: this.c.id, attempt }, `restart of container ${this.c.name} failed`);
        this.save();
        // A restart that could not even start counts as a failed run.
        this.onExit({ exitCode: null, signal: null, oomKilled: false });
        return;
      }
      await this.c.restarted();
      this.parts.logger.info({ container: this.c.id, attempt, restarts: r.count }, 'container restarted');
      this.c.emit('restart', { id: this.c.id, count: r.count, attempt });
    });
  }
}

/** Whether another live process supervises this record (its restart timer is pending there). */
export function supervisedElsewhere(parts: RuntimeParts, rec: ContainerRecord, alive: (pid: number, startTime: string | undefined) => boolean): boolean {
  const owner = (rec as ContainerRecord & { restarts?: RestartRecord }).restarts?.owner;
  if (!owner) return false;
  if (owner.pid === process.pid && owner.startTime === parts.kernel.processStartTime(process.pid)) return false;
  return alive(owner.pid, owner.startTime);
}

/** The Container object that supervises container `id` in this process, if one does. */
export function supervisedObject(parts: RuntimeParts, id: string): object | undefined {
  for (const s of SUPERVISED) if (s.holds(parts, id)) return s.object;
  return undefined;
}

const RESUMED = new WeakMap<RuntimeParts, Promise<void>>();

/**
 * Once per runtime, on first use: containers with a restart policy that nobody supervises
 * any more (their supervisor process died) are loaded, which sees the exits that happened
 * meanwhile, and supervised from here: a restart is scheduled as the policy says.
 */
export async function resumeSupervision(
  parts: RuntimeParts,
  alive: (pid: number, startTime: string | undefined) => boolean,
  load: (id: string) => Promise<{ supervisor: Supervisor; record(): ContainerRecord }>,
): Promise<void> {
  let p = RESUMED.get(parts);
  if (!p) RESUMED.set(parts, (p = resumeAll(parts, alive, load)));
  return p;
}

async function resumeAll(
  parts: RuntimeParts,
  alive: (pid: number, startTime: string | undefined) => boolean,
  load: (id: string) => Promise<{ supervisor: Supervisor; record(): ContainerRecord }>,
): Promise<void> {
  for (const rec of parts.state.list()) {
    const policy = (rec.config as { restart?: { policy?: string } }).restart?.policy;
    if (!policy || policy === 'no' || rec.pool || rec.restarts?.exhausted || rec.state === 'creating') continue;
    if (supervisedElsewhere(parts, rec, alive)) continue;
    try {
      const wasStopped = rec.state === 'stopped';
      const c = await load(rec.id);
      const now = c.record();
      // A live record whose init died was seen as an exit by the load; one stopped before
      // is looked at here, as docker's daemon does at its start.
      if (wasStopped && now.state === 'stopped') {
        c.supervisor.onExit({ exitCode: now.exitCode ?? null, signal: now.signal ? String(now.signal) : null, oomKilled: !!now.oomKilled }, true);
      }
    } catch (e) {
      parts.logger.warn({ err: e, container: rec.id }, 'could not resume the supervision of a container');
    }
  }
}
