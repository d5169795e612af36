/**
 * The OCI runtime operations (create, start, state, kill, delete, pause, resume, ps,
 * update) over the library's parts: the bundle is translated (config.ts), compiled to a
 * SpawnPlan (plan.ts), provisioned as any container is, and parked before its process
 * runs; start sends the process. The engine's own id names the container; the record's
 * `config.oci` keeps what the OCI verbs need (bundle, annotations, hooks, the encoded start).
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import { assertTransition, type ContainerState } from '../lifecycle.js';
import { provision } from '../container/provision.js';
import { teardown } from '../container/teardown.js';
import { CPU_PERIOD_US, validateResources, type Resources } from '../isolation/resources.js';
import type { RuntimeParts } from '../parts.js';
import { encodeStart } from '../plan/encode.js';
import { Runtime, runtimeParts } from '../runtime.js';
import { localKeepers, type Keepers } from './keepers.js';
import { signalNumber } from '../signals.js';
import { isSameProcess, type ContainerRecord } from '../state.js';
import type { WireField } from '../spawner/wire.js';
import { resourceField } from './config-linux.js';
import { translateConfig, type HookName, type OciHook, type OciTranslation } from './config.js';
import { runHooks } from './hooks.js';
import { checkOciId, internalId, ociPlan } from './plan.js';
import { cgroupHierarchies, idMap, ownBoundingSet, pathKind } from './host.js';
import { applySysctls } from './sysctl.js';
import { personalityResources } from './personality.js';
import { EVOLUTION_ANNOTATION, evolutionStatus } from './evolution-annotation.js';

export const OCI_VERSION = '1.1.0';

export type OciStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** The spec's State: what `state` prints and what hooks read on stdin. */
export interface OciState {
  ociVersion: string;
  id: string;
  status: OciStatus;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

interface OciData {
  id: string;
  bundle: string;
  annotations: Record<string, string>;
  hooks: OciTranslation['hooks'];
  /** The start request, encoded at create (buffers as base64). */
  start: (string | { b64: string })[];
  personality?: string | undefined;
  restart?: string | undefined;
  cgroupsPath?: string | undefined;
  /** The runtime's cgroup parent at create (STRATOSWARM_CGROUP_PARENT): where a later process finds its cgroups. */
  cgroupParent?: string | undefined;
  /** The process left for the engine to wait for (native/oci/keeper.c). */
  keeperPid?: number | undefined;
  /** The container's seccomp program (base64), which exec'd processes get too. */
  seccomp?: string | undefined;
  lastCap: number;
}

export interface CreateOptions {
  pidFile?: string | undefined;
  consoleSocket?: string | undefined;
  /** The fds the process gets as stdin, stdout, stderr (the engine's pipes). */
  stdio: number[];
}

const fieldsOut = (f: WireField[]) => f.map((x) => (typeof x === 'string' ? x : { b64: x.toString('base64') }));
const fieldsIn = (f: OciData['start']) => f.map((x) => (typeof x === 'string' ? x : Buffer.from(x.b64, 'base64')));

/** A bundle's config.json, read and translated; its root must be a directory. */
export function readBundle(bundle: string): { t: ReturnType<typeof translateConfig>; config: unknown } {
  const configPath = join(bundle, 'config.json');
  let config: unknown;
  try {
    config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new RuntimeError(`read \`${configPath}\`: ${(e as Error).message}`, { code: 'EINVAL', step: 'config', path: configPath });
  }
  const t = translateConfig(bundle, config, { cgroupHierarchies, deviceExists: (p) => fs.existsSync(p), pathKind, idMap, boundingSet: ownBoundingSet });
  if (!fs.existsSync(t.rootfs) || !fs.statSync(t.rootfs).isDirectory()) throw new RuntimeError(`root.path: \`${t.rootfs}\` is not a directory`, { code: 'EINVAL', step: 'config', path: t.rootfs });
  return { t, config };
}

export class OciRuntime {
  readonly runtime: Runtime;
  readonly parts: RuntimeParts;

  /**
   * `warn` hears what the runtime leaves out or lets fail and goes on (the spec's warnings):
   * the CLI writes it to --log, or to stderr without one.
   */
  constructor(
    readonly root: string,
    env: NodeJS.ProcessEnv = process.env,
    readonly keepers: Keepers = localKeepers,
    readonly warn: (message: string) => void = (m) => process.stderr.write(`stratoswarm-oci: warning: ${m}\n`),
  ) {
    this.runtime = new Runtime({
      stateRoot: root,
      imageRoot: join(root, 'storage'),
      cgroupParent: env.STRATOSWARM_CGROUP_PARENT || 'stratoswarm',
      logLevel: 'silent',
      env: {},
    });
    this.parts = runtimeParts(this.runtime);
  }

  close(): Promise<void> {
    return this.runtime.close();
  }

  record(ociId: string): ContainerRecord {
    checkOciId(ociId);
    try {
      return this.parts.state.load(internalId(ociId));
    } catch (e) {
      if (e instanceof RuntimeError && e.code === 'ENOTFOUND') throw new RuntimeError(`container "${ociId}" does not exist`, { code: 'ENOTFOUND', step: 'state' });
      throw e;
    }
  }

  static data(rec: ContainerRecord): OciData {
    return (rec.config as { oci: OciData }).oci;
  }

  status(rec: ContainerRecord): OciStatus {
    if (rec.state === 'creating') return 'creating';
    const alive = !this.parts.state.exit(rec.id) && isSameProcess(this.parts.kernel, rec.pid, rec.pidStartTime);
    if (!alive) return 'stopped';
    return rec.state === 'created' || rec.state === 'running' || rec.state === 'paused' ? rec.state : 'stopped';
  }

  private stateOf(rec: ContainerRecord): OciState {
    const d = OciRuntime.data(rec);
    const status = this.status(rec);
    // An evolving container's generation and settings in force come with its annotations.
    const annotations = d.annotations[EVOLUTION_ANNOTATION] !== undefined ? { ...d.annotations, ...evolutionStatus(rec) } : d.annotations;
    return {
      ociVersion: OCI_VERSION,
      id: d.id,
      status,
      ...(status !== 'stopped' && rec.pid ? { pid: rec.pid } : {}),
      bundle: d.bundle,
      ...(Object.keys(annotations).length ? { annotations } : {}),
    };
  }

  state(ociId: string): OciState {
    return this.stateOf(this.record(ociId));
  }

  async create(ociId: string, bundle: string, opts: CreateOptions): Promise<OciState> {
    checkOciId(ociId);
    const { t, config } = readBundle(bundle);
    for (const w of t.warnings) this.warn(w);
    if (t.process.terminal && !opts.consoleSocket) throw new RuntimeError('process.terminal: a terminal needs --console-socket', { code: 'EINVAL', step: 'config' });
    if (fs.existsSync(join(this.parts.state.dir(internalId(ociId)), 'state.json'))) throw new RuntimeError(`container "${ociId}" already exists`, { code: 'EEXIST', step: 'config' });
    const plan = ociPlan(ociId, t, { kernel: this.parts.kernel, stateDir: (id) => this.parts.state.dir(id), storageDir: (id) => this.parts.storageDir(id), cgroupParent: this.parts.cgroups.parent });
    const start = encodeStart(plan.id, plan.process, plan.lastCap, `create container ${ociId}`);
    await this.parts.reconcile();
    // The allocation a personality made is part of the state engines read back.
    const annotations = { ...t.annotations };
    if (t.personality) annotations['io.stratoswarm.allocation'] = JSON.stringify(personalityResources(t.personality, t.resources).plan);
    const data: OciData = { id: ociId, bundle, annotations, hooks: t.hooks, start: fieldsOut(start), personality: t.personality, restart: t.restart, cgroupsPath: t.cgroupsPath, cgroupParent: this.parts.cgroups.parent, seccomp: plan.process.security.seccomp?.bpf.toString('base64'), lastCap: plan.lastCap };
    let pty: { master: number; slave: number; path: string } | undefined;
    if (t.process.terminal) pty = this.parts.kernel.openPty(t.process.user.uid, t.process.user.gid);
    let rec: ContainerRecord | undefined;
    try {
      ({ rec } = await provision(this.parts, {
        plan,
        config: { oci: data },
        resources: { ...t.resources },
        stdio: pty ? undefined : opts.stdio,
        terminal: pty ? { slave: pty.slave, path: pty.path, release: () => undefined } : undefined,
        watch: async () => () => undefined,
      }));
      rec.state = 'created';
      this.parts.state.save(rec);
      if (t.process.oomScoreAdj !== undefined) fs.writeFileSync(`/proc/${rec.pid}/oom_score_adj`, String(t.process.oomScoreAdj));
      applySysctls(rec.pid!, t.sysctl);
      if (pty) await this.sendConsole(opts.consoleSocket!, pty);
      const state = this.stateOf(rec);
      await this.hooks('createRuntime', t.hooks, state, rec.pid);
      await this.hooks('createContainer', t.hooks, state, rec.pid);
      // The engine waits for this process: it ends as the container's process does.
      const keeper = await this.keepers.wait(rec.pid!, join(rec.paths.stateDir, 'exit.json'));
      data.keeperPid = keeper;
      this.parts.state.save(rec);
      if (opts.pidFile) writePidFile(opts.pidFile, keeper);
      return state;
    } catch (e) {
      if (rec) await teardown(this.parts, rec, `undo create of ${ociId}`).catch(() => undefined);
      throw resourceField(namespaceField(e, config));
    } finally {
      if (pty) {
        this.parts.kernel.close(pty.master);
        this.parts.kernel.close(pty.slave);
      }
    }
  }

  /** The terminal's master goes to the engine over its console socket (SCM_RIGHTS), named by its path. */
  async sendConsole(socket: string, pty: { master: number; path: string }): Promise<void> {
    let fd: number;
    try {
      fd = await this.parts.kernel.connect(socket);
    } catch (e) {
      throw e instanceof RuntimeError ? e.wrap(`--console-socket \`${socket}\``) : e;
    }
    try {
      this.parts.kernel.send(fd, Buffer.from(pty.path), [pty.master]);
    } finally {
      this.parts.kernel.close(fd);
    }
  }

  private async hooks(name: HookName, hooks: Partial<Record<HookName, OciHook[]>>, state: OciState, pid?: number): Promise<void> {
    await runHooks(name, hooks[name], state, pid);
  }

  async start(ociId: string): Promise<void> {
    const rec = this.record(ociId);
    const status = this.status(rec);
    if (status !== 'created') throw new RuntimeError(`start container "${ociId}": it is ${status}, not created`, { code: 'ESTATE', step: 'state' });
    const d = OciRuntime.data(rec);
    const state = this.stateOf(rec);
    try {
      await this.hooks('startContainer', d.hooks, state, rec.pid);
    } catch (e) {
      // The spec: a failing startContainer hook stops the container (kill, then the engine deletes it).
      await this.parts.spawner.request(['kill', rec.id, '9'], `kill container ${ociId}`).catch(() => undefined);
      throw e;
    }
    assertTransition(ociId, 'start', rec.state, 'running');
    await this.parts.spawner.request(fieldsIn(d.start), `start container ${ociId}`);
    rec.state = 'running';
    rec.startedAt = new Date().toISOString();
    this.parts.state.save(rec);
    // Errors of poststart hooks are the engine's to hear, the process runs on (the spec: warn).
    await this.hooks('poststart', d.hooks, { ...state, status: 'running' }).catch((e: unknown) => this.warn((e as Error).message));
  }

  async kill(ociId: string, signal: string, all = false): Promise<void> {
    const rec = this.record(ociId);
    const sig = signalNumber(/^\d+$/.test(signal) ? Number(signal) : signal);
    const status = this.status(rec);
    if (status === 'stopped') throw new RuntimeError(`kill container "${ociId}": it is not running`, { code: 'ESTATE', step: 'signal' });
    if (all) {
      for (const pid of this.pids(rec)) {
        try {
          process.kill(pid, sig);
        } catch {
          // gone already
        }
      }
      return;
    }
    await this.parts.spawner.request(['kill', rec.id, String(sig)], `kill container ${ociId}`);
  }

  /** Every process of the container: the pids its cgroups list. */
  private pids(rec: ContainerRecord): number[] {
    const out = new Set<number>();
    for (const f of rec.cgroupProcs) {
      try {
        for (const l of fs.readFileSync(f, 'utf8').split('\n')) if (l) out.add(Number(l));
      } catch {
        // a hierarchy already removed
      }
    }
    return [...out].sort((a, b) => a - b);
  }

  ps(ociId: string): number[] {
    return this.pids(this.record(ociId));
  }

  async delete(ociId: string, force = false): Promise<void> {
    let rec: ContainerRecord;
    try {
      rec = this.record(ociId);
    } catch (e) {
      if (force && e instanceof RuntimeError && e.code === 'ENOTFOUND') return;
      throw e;
    }
    const status = this.status(rec);
    if (!force && status !== 'stopped' && status !== 'created') throw new RuntimeError(`delete container "${ociId}": it is ${status} (stop it first, or --force)`, { code: 'ESTATE', step: 'state' });
    const d = OciRuntime.data(rec);
    const state = { ...this.stateOf(rec), status: 'stopped' as const };
    await teardown(this.parts, rec, `delete container ${ociId}`);
    // poststop failures are warnings: the container is gone either way (the spec).
    await this.hooks('poststop', d.hooks, state).catch((e: unknown) => this.warn((e as Error).message));
  }

  async pause(ociId: string): Promise<void> {
    const rec = this.record(ociId);
    this.transition(rec, ociId, 'pause', 'paused');
    await this.parts.cgroups.freeze(rec.id);
    rec.state = 'paused';
    this.parts.state.save(rec);
  }

  async resume(ociId: string): Promise<void> {
    const rec = this.record(ociId);
    this.transition(rec, ociId, 'resume', 'running');
    await this.parts.cgroups.thaw(rec.id);
    rec.state = 'running';
    this.parts.state.save(rec);
  }

  private transition(rec: ContainerRecord, ociId: string, op: string, to: ContainerState): void {
    const status = this.status(rec);
    assertTransition(ociId, op, status === 'creating' ? 'creating' : status, to);
  }

  /** `update --resources`: the spec's LinuxResources, applied to the running container's cgroups. */
  update(ociId: string, resources: unknown): void {
    const rec = this.record(ociId);
    const t = translateConfig('/', { ociVersion: OCI_VERSION, root: { path: '/' }, process: { args: ['-'] }, linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }], resources } }, { cgroupHierarchies, deviceExists: () => true, pathKind });
    const next: Resources = { ...t.resources };
    if (next.devices) throw new RuntimeError('update: devices cannot be changed on a running container', { code: 'EINVAL', step: 'config' });
    delete next.devices;
    keepCpuQuota(next, rec.resources as Resources | undefined, resources);
    validateResources(next);
    try {
      this.parts.cgroups.update(rec.id, next);
    } catch (e) {
      throw resourceField(e);
    }
    rec.resources = { ...rec.resources, ...next };
    this.parts.state.save(rec);
  }
}

/**
 * The spec's cpu.quota and cpu.period each change alone, as runc writes them: a new period
 * keeps the quota the container has, and a new quota keeps its period.
 */
function keepCpuQuota(next: Resources, had: Resources | undefined, given: unknown): void {
  const cpu = (given as { cpu?: { quota?: unknown; period?: unknown } } | undefined)?.cpu;
  const oldPeriod = had?.cpuPeriod ?? CPU_PERIOD_US;
  if (next.cpuPeriod !== undefined && next.cpuLimit === undefined && typeof had?.cpuLimit === 'number' && Number.isFinite(had.cpuLimit)) {
    next.cpuLimit = Math.round(had.cpuLimit * oldPeriod) / next.cpuPeriod;
  } else if (next.cpuLimit !== undefined && next.cpuPeriod === undefined && typeof cpu?.quota === 'number') {
    next.cpuPeriod = oldPeriod;
    next.cpuLimit = cpu.quota / oldPeriod;
  }
}

/** A namespace the spawner could not join, named by its field (linux.namespaces[i].path). */
function namespaceField(e: unknown, config: unknown): unknown {
  if (!(e instanceof RuntimeError) || e.step !== 'setns' || !e.path) return e;
  const list = (config as { linux?: { namespaces?: { path?: unknown }[] } }).linux?.namespaces ?? [];
  const i = list.findIndex((n) => n?.path === e.path);
  return i < 0 ? e : e.wrap(`linux.namespaces[${i}].path`);
}

export function writePidFile(path: string, pid: number): void {
  // Atomic, as engines poll for it: a reader sees no file or the whole pid.
  const tmp = `${path}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, String(pid));
  fs.renameSync(tmp, path);
}
