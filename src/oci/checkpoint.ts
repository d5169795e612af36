/**
 * The OCI `checkpoint` and `restore` verbs, with runc's command line (what podman and
 * CRI-O call): CRIU images go straight into --image-path, its log and statistics into
 * --work-path; the engine packs, moves and unpacks them itself.
 *
 * Checkpoint dumps the container's tree (frozen in its freezer cgroup by CRIU) and, unless
 * --leave-running or --pre-dump, removes the container as runc does, so that the engine can
 * restore it under the same id. The init's stdin, stdout and stderr are the engine's (conmon's
 * pipes, its /dev/null): their CRIU names go into the image directory, `descriptors.json` as
 * runc writes it and `stratoswarm-oci.json` with the names of files outside the container's
 * mount namespace. Restore recreates the container from the bundle (config.json, the rootfs as
 * the engine mounted it), provisions its cgroups, and has the spawner run CRIU's restore with
 * the new engine's stdio in place of the dumped one (--inherit-fd), so the restored tree is
 * the spawner's child and a keeper stands for it as after `create`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import { provision } from '../container/provision.js';
import { teardown } from '../container/teardown.js';
import { criuBinary, criuEnv, criuErrors, memoryTracking, runCriu } from '../checkpoint/criu.js';
import { freezerDir } from '../checkpoint/checkpoint.js';
import { encodeStart } from '../plan/encode.js';
import type { PlanMount } from '../plan/types.js';
import type { WireField } from '../spawner/wire.js';
import type { ContainerRecord } from '../state.js';
import { personalityResources } from './personality.js';
import { checkOciId, internalId, ociPlan } from './plan.js';
import { OciRuntime, readBundle, writePidFile } from './runtime.js';

export const DESCRIPTORS = 'descriptors.json';
export const META = 'stratoswarm-oci.json';

export interface OciCheckpointOptions {
  imagePath: string;
  /** CRIU's log (dump.log) and statistics (default: the image path). */
  workPath?: string | undefined;
  leaveRunning?: boolean | undefined;
  tcpEstablished?: boolean | undefined;
  fileLocks?: boolean | undefined;
  /** A memory-only dump, the container running on (needs dirty-page tracking). */
  preDump?: boolean | undefined;
  /** The pre-dump's images, relative to --image-path (podman: ../pre-checkpoint). */
  parentPath?: string | undefined;
  /** CRIU's --manage-cgroups for the dump (soft, full, strict, ignore). */
  manageCgroupsMode?: string | undefined;
}

export interface OciRestoreOptions {
  imagePath: string;
  workPath?: string | undefined;
  pidFile?: string | undefined;
  consoleSocket?: string | undefined;
  tcpEstablished?: boolean | undefined;
  fileLocks?: boolean | undefined;
  manageCgroupsMode?: string | undefined;
  /** The engine's fds for the restored stdin, stdout, stderr. */
  stdio: number[];
}

/** What restore needs of a dump besides CRIU's images. */
interface Meta {
  version: 1;
  ociId: string;
  /** For fds 0, 1, 2 of the init: CRIU's name of what it had open (pipe:[ino], file[mnt:ino]), or null. */
  stdio: (string | null)[];
}

const MANAGE_MODES = new Set(['soft', 'full', 'strict', 'ignore']);

function manageMode(mode: string | undefined): string[] {
  if (mode === undefined) return [];
  if (!MANAGE_MODES.has(mode)) throw new RuntimeError(`--manage-cgroups-mode: "${mode}" is not one of soft, full, strict, ignore`, { code: 'EINVAL', step: 'config' });
  return [`--manage-cgroups=${mode}`];
}

function mountIds(pid: number): Set<number> {
  const ids = new Set<number>();
  for (const l of fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) if (l) ids.add(Number(l.split(' ', 1)[0]));
  return ids;
}

/**
 * CRIU's names for the init's fds 0, 1, 2, and the --external options the dump needs: a file
 * on a mount the container cannot see (the engine's /dev/null) is external, and must be
 * given back at restore; a pipe is CRIU's to dump, and is replaced at restore.
 */
export function stdioNames(pid: number, what: string): { names: (string | null)[]; targets: string[]; external: string[] } {
  const mounts = mountIds(pid);
  const names: (string | null)[] = [];
  const targets: string[] = [];
  const external: string[] = [];
  for (let fd = 0; fd < 3; fd++) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      names.push(null);
      targets.push('');
      continue;
    }
    targets.push(target);
    if (/^pipe:\[\d+\]$/.test(target)) {
      names.push(target);
    } else if (target.startsWith('/dev/pts/') || target === '/dev/console' || target.startsWith('/dev/tty')) {
      throw new RuntimeError(`${what}: fd ${fd} is a terminal (${target}); containers with a terminal cannot be checkpointed`, { code: 'EUNSUPPORTED', step: 'checkpoint' });
    } else if (target.startsWith('/')) {
      const mnt = Number(/mnt_id:\s*(\d+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1]);
      if (mounts.has(mnt)) {
        names.push(null); // the container's own file: CRIU dumps and reopens it
        continue;
      }
      const key = `file[${mnt.toString(16)}:${fs.statSync(`/proc/${pid}/fd/${fd}`).ino.toString(16)}]`;
      names.push(key);
      if (!external.includes(key)) external.push('--external', key);
    } else {
      throw new RuntimeError(`${what}: fd ${fd} is ${target}, which cannot be checkpointed (pipes and files can)`, { code: 'EUNSUPPORTED', step: 'checkpoint' });
    }
  }
  return { names, targets, external };
}

/** Waits (briefly) for the process the engine waits for to see the end of the dumped tree. */
async function keeperGone(pid: number | undefined): Promise<void> {
  if (!pid) return;
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function ociCheckpoint(rt: OciRuntime, ociId: string, o: OciCheckpointOptions): Promise<void> {
  const what = `checkpoint container ${ociId}`;
  const rec = rt.record(ociId);
  const status = rt.status(rec);
  if (status !== 'running') throw new RuntimeError(`${what}: it is ${status}, not running`, { code: 'ESTATE', step: 'state' });
  if (rec.idRange) throw new RuntimeError(`${what}: it has a user namespace, which CRIU cannot restore into namespaces this runtime makes`, { code: 'EUNSUPPORTED', step: 'checkpoint' });
  if (rec.deviceProcess || rec.network) throw new RuntimeError(`${what}: it has devices or a bridge network, whose state CRIU cannot save`, { code: 'EUNSUPPORTED', step: 'checkpoint' });
  const pid = rec.pid!;
  const { names, targets, external } = stdioNames(pid, what);
  const workDir = o.workPath ?? o.imagePath;
  fs.mkdirSync(o.imagePath, { recursive: true });
  fs.mkdirSync(workDir, { recursive: true });
  const common = ['-t', String(pid), '--freeze-cgroup', freezerDir(rec), '--external', 'mnt[]', ...external, ...manageMode(o.manageCgroupsMode), ...(o.tcpEstablished ? ['--tcp-established'] : []), ...(o.fileLocks ? ['--file-locks'] : [])];
  if (o.preDump) {
    if (!(await memoryTracking())) throw new RuntimeError(`${what}: --pre-dump needs the kernel to track dirty memory (CONFIG_MEM_SOFT_DIRTY), which this one does not`, { code: 'EUNSUPPORTED', step: 'checkpoint' });
    const parent = o.parentPath ? ['--prev-images-dir', o.parentPath] : [];
    await runCriu({ args: ['pre-dump', ...common, '--track-mem', ...parent], dir: o.imagePath, workDir, log: 'dump.log', step: 'checkpoint', what, containerId: rec.id });
    return;
  }
  // Written first: a dump that ends the tree must leave what restore needs.
  const meta: Meta = { version: 1, ociId, stdio: names };
  fs.writeFileSync(join(o.imagePath, DESCRIPTORS), JSON.stringify(targets));
  fs.writeFileSync(join(o.imagePath, META), `${JSON.stringify(meta, null, 2)}\n`);
  const parent = o.parentPath && (await memoryTracking()) ? ['--prev-images-dir', o.parentPath, '--track-mem'] : [];
  await runCriu({ args: ['dump', ...common, ...(o.leaveRunning ? ['--leave-running'] : []), ...parent], dir: o.imagePath, workDir, log: 'dump.log', step: 'checkpoint', what, containerId: rec.id });
  if (o.leaveRunning) return;
  // As runc: the checkpointed container is gone, its id free for the restore.
  await keeperGone(OciRuntime.data(rec).keeperPid);
  await rt.delete(ociId, true);
}

/**
 * The mountpoints of the bundle's mounts, made in the root where missing (a directory, or an
 * empty file for a file's bind mount), as create makes them: CRIU mounts onto them and does
 * not make them, and a root the engine made afresh (podman's restore --import) lacks those a
 * runtime added to the old one. A path through a symlink is left alone (CRIU then fails on it).
 */
export function makeMountpoints(rootfs: string, mounts: readonly PlanMount[]): void {
  for (const m of mounts) {
    const parts = m.target.split('/').filter((x) => x && x !== '.');
    if (parts.includes('..')) continue;
    let at = rootfs;
    for (let i = 0; i < parts.length; i++) {
      at = join(at, parts[i]!);
      const last = i === parts.length - 1;
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(at);
      } catch {
        st = undefined;
      }
      if (st?.isSymbolicLink()) break;
      if (st) continue;
      if (last && m.isFile) fs.closeSync(fs.openSync(at, fs.constants.O_CREAT | fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW, 0o644));
      else fs.mkdirSync(at, { mode: 0o755 });
    }
  }
}

function readMeta(imagePath: string, what: string): Meta {
  const path = join(imagePath, META);
  if (!fs.existsSync(join(imagePath, 'inventory.img'))) throw new RuntimeError(`${what}: ${imagePath} holds no CRIU checkpoint (no inventory.img)`, { code: 'ENOTFOUND', step: 'restore', path: imagePath });
  try {
    const m = JSON.parse(fs.readFileSync(path, 'utf8')) as Meta;
    if (m.version !== 1 || !Array.isArray(m.stdio)) throw new Error('unknown version');
    return m;
  } catch (e) {
    throw new RuntimeError(`${what}: read \`${path}\` (written by this runtime's checkpoint): ${(e as Error).message}`, { code: 'EINVAL', step: 'restore', path });
  }
}

export async function ociRestore(rt: OciRuntime, ociId: string, bundle: string, o: OciRestoreOptions): Promise<void> {
  checkOciId(ociId);
  const what = `restore container ${ociId}`;
  const meta = readMeta(o.imagePath, what);
  const { t } = readBundle(bundle);
  for (const w of t.warnings) rt.warn(w);
  if (t.process.terminal || o.consoleSocket) throw new RuntimeError(`${what}: containers with a terminal cannot be restored`, { code: 'EUNSUPPORTED', step: 'restore' });
  const parts = rt.parts;
  if (fs.existsSync(join(parts.state.dir(internalId(ociId)), 'state.json'))) throw new RuntimeError(`container "${ociId}" already exists`, { code: 'EEXIST', step: 'config' });
  const plan = ociPlan(ociId, t, { kernel: parts.kernel, stateDir: (id) => parts.state.dir(id), storageDir: (id) => parts.storageDir(id), cgroupParent: parts.cgroups.parent });
  if (plan.userNamespace) throw new RuntimeError(`${what}: the bundle's configuration has a user namespace`, { code: 'EUNSUPPORTED', step: 'restore' });
  const start = encodeStart(plan.id, plan.process, plan.lastCap, what);
  await parts.reconcile();
  const data: ReturnType<typeof OciRuntime.data> = {
    id: ociId,
    bundle,
    // As create: the allocation a personality made is part of the state engines read back.
    annotations: { ...t.annotations, ...(t.personality ? { 'io.stratoswarm.allocation': JSON.stringify(personalityResources(t.personality, t.resources).plan) } : {}) },
    hooks: t.hooks,
    start: start.map((x: WireField) => (typeof x === 'string' ? x : { b64: x.toString('base64') })),
    personality: t.personality,
    restart: t.restart,
    cgroupsPath: t.cgroupsPath,
    seccomp: plan.process.security.seccomp?.bpf.toString('base64'),
    lastCap: plan.lastCap,
  };
  const workDir = o.workPath ?? o.imagePath;
  fs.mkdirSync(workDir, { recursive: true });
  makeMountpoints(t.rootfs, t.mounts);
  const restoreTree = async (rec: ContainerRecord): Promise<string[]> => {
    const pidfile = join(rec.paths.stateDir, 'criu-restore.pid');
    const inherit: string[] = [];
    meta.stdio.forEach((name, fd) => {
      if (name) inherit.push('--inherit-fd', `fd[${3 + fd}]:${name}`);
    });
    const argv = [
      criuBinary(),
      'restore',
      '-D', o.imagePath,
      '-W', workDir,
      '-o', 'restore.log',
      '-v2',
      '--restore-detached',
      '--root', t.rootfs,
      '--external', 'mnt[]',
      // The cgroups are this runtime's: the spawner puts CRIU in them before it runs.
      '--manage-cgroups=ignore',
      '--pidfile', pidfile,
      ...(o.tcpEstablished ? ['--tcp-established'] : []),
      ...(o.fileLocks ? ['--file-locks'] : []),
      ...inherit,
    ];
    const env = criuEnv();
    const fields = ['restore', plan.id, rec.paths.stateDir, rec.paths.stdoutLog, rec.paths.stderrLog, pidfile, String(rec.cgroupProcs.length), ...rec.cgroupProcs, String(argv.length), ...argv, String(env.length), ...env];
    try {
      return await parts.spawner.request(fields, what, o.stdio.slice(0, 3));
    } catch (e) {
      const why = criuErrors(join(workDir, 'restore.log'));
      if (e instanceof RuntimeError) throw new RuntimeError(`${e.message}${why.length ? `: ${why.join('; ')}` : ''} (log: ${join(workDir, 'restore.log')})`, { code: e.code, step: 'restore', cause: e });
      throw e;
    }
  };
  const { rec } = await provision(parts, { plan, config: { oci: data }, resources: { ...t.resources }, restore: restoreTree, watch: async () => () => undefined });
  try {
    rec.state = 'running';
    rec.startedAt = new Date().toISOString();
    parts.state.save(rec);
    // As after create: the engine waits for a process of its own that ends as the init does.
    data.keeperPid = await rt.keepers.wait(rec.pid!, join(rec.paths.stateDir, 'exit.json'));
    parts.state.save(rec);
    if (o.pidFile) writePidFile(o.pidFile, data.keeperPid);
  } catch (e) {
    await teardown(parts, rec, `undo ${what}`).catch(() => undefined);
    throw e;
  }
}

export const CHECKPOINT_USAGE = `usage: stratoswarm-oci checkpoint --image-path DIR [--work-path DIR] [--leave-running] [--tcp-established]
       [--file-locks] [--pre-dump] [--parent-path DIR] [--manage-cgroups-mode soft|full|strict|ignore] ID`;
export const RESTORE_USAGE = `usage: stratoswarm-oci restore --image-path DIR [--work-path DIR] --bundle DIR [--detach] [--pid-file F]
       [--tcp-established] [--file-locks] [--manage-cgroups-mode M] ID`;
