/**
 * Checkpoint: a running container's process tree dumped by CRIU, with what the container was
 * (configuration, settings in force, personality and evolution state) and its writable layer,
 * into one directory that restore.ts turns back into a running container.
 *
 * The container is frozen (cgroup freezer) from before the writable layer is read until
 * CRIU has its memory, so files and memory are of one moment. A failed dump thaws it and
 * leaves it running as before, and removes what was written.
 */
import { mkdir, rm } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { RuntimeError } from '../errors.js';
import type { RuntimeParts } from '../parts.js';
import type { ContainerRecord } from '../state.js';
import { criuVersion, externalFiles, memoryTracking, processTree, runCriu } from './criu.js';
import { digestTree, IMAGES, ROOTFS_DIFF, tarUpper, writeManifest, type CheckpointManifest } from './files.js';

export interface CheckpointOptions {
  /** The directory to write (created; must not exist). Default: checkpoints/<name>-<time> under the image root. */
  path?: string | undefined;
  /** Keep the container running after the dump (default: it ends, as `docker checkpoint create` does). */
  leaveRunning?: boolean | undefined;
  /** One pre-dump of the memory while the container runs, so the freeze copies only what changed since. */
  preDump?: boolean | undefined;
}

export interface CheckpointResult {
  path: string;
  /** How long the container was frozen, in milliseconds. */
  frozenMs: number;
  /** Bytes of CRIU images and writable layer written. */
  bytes: number;
  /** Pre-dumps made (none where the kernel does not track dirty memory). */
  preDumps: number;
}

/** Why a container cannot be checkpointed, or undefined. */
export function notCheckpointable(rec: ContainerRecord): string | undefined {
  const cfg = rec.config as { network?: string; terminal?: boolean; gpuCount?: number; gpuDevices?: unknown[]; devices?: unknown[] };
  if (rec.idRange || rec.namespaces.includes('user')) {
    return 'it has a user namespace. CRIU restores a tree only into namespaces owned by its user namespace, and this runtime makes the mount, UTS and IPC namespaces as the host\'s root (so it can mount idmapped image layers); create checkpointable containers with security({ userNamespace: false }) (CLI: --userns=host)';
  }
  if (cfg.network === 'bridge' || rec.network) return 'its network is "bridge": the veth pair and address belong to the host\'s CNI state; use network "none" or "host"';
  if (cfg.terminal) return 'it has a terminal, whose other end is the host\'s';
  if ((cfg.gpuCount ?? 0) > 0 || (cfg.gpuDevices?.length ?? 0) > 0 || (cfg.devices?.length ?? 0) > 0 || rec.deviceProcess) {
    return 'it has GPUs or CDI devices: CRIU cannot save a device\'s state';
  }
  return undefined;
}

/** The cgroup CRIU freezes the tree in: the v1 freezer hierarchy's, else the unified one's. */
export function freezerDir(rec: ContainerRecord): string {
  const procs = rec.cgroupProcs.find((p) => p.includes('/freezer/')) ?? rec.cgroupProcs.find((p) => p.includes('/unified/')) ?? rec.cgroupProcs[rec.cgroupProcs.length - 1];
  if (!procs) throw new RuntimeError(`container ${rec.name}: no cgroup to freeze it in`, { code: 'ESTATE', step: 'freezer', containerId: rec.id });
  return procs.replace(/\/cgroup\.procs$/, '');
}

/** The CRIU options every dump and pre-dump of `rec` shares, and its external files. */
export function dumpOptions(rec: ContainerRecord): { args: string[]; external: Record<string, 'stdout' | 'stderr'> } {
  const logs = [rec.paths.stdoutLog, rec.paths.stderrLog];
  const files = externalFiles(processTree(rec.pid!), logs);
  const external: Record<string, 'stdout' | 'stderr'> = {};
  const args = ['-t', String(rec.pid), '--freeze-cgroup', freezerDir(rec), '--tcp-established', '--file-locks', '--external', 'mnt[]'];
  for (const [key, path] of files) {
    external[key] = path === rec.paths.stdoutLog ? 'stdout' : 'stderr';
    args.push('--external', key);
  }
  return { args, external };
}

export interface DumpStep {
  /** The images directory, under the checkpoint's images/. */
  dir: string;
  /** The pre-dump before it (a sibling directory), whose memory it does not copy again. */
  parent?: string | undefined;
}

/** A pre-dump while the container runs: memory only, tracked for the next dump. */
export async function preDump(rec: ContainerRecord, step: DumpStep): Promise<void> {
  await mkdir(step.dir, { recursive: true });
  const { args } = dumpOptions(rec);
  const parent = step.parent ? ['--prev-images-dir', relative(step.dir, step.parent)] : [];
  await runCriu({ args: ['pre-dump', ...args, '--track-mem', ...parent], dir: step.dir, log: 'pre-dump.log', step: 'checkpoint', what: `checkpoint container ${rec.name}: pre-dump`, containerId: rec.id });
}

/**
 * What the final dump leaves of the container: `end` (CRIU ends the tree), `resume` (it runs
 * on), `hold` (it stays frozen, for a migration to end once the target runs, or thaw if the
 * target fails).
 */
export type AfterDump = 'end' | 'resume' | 'hold';

/**
 * The final dump into `root`: freezes the container, saves its writable layer, dumps the
 * tree, writes the manifest. Returns the frozen time (to the dump's end) and when the freeze began.
 */
export async function finalDump(parts: RuntimeParts, rec: ContainerRecord, root: string, step: DumpStep, after: AfterDump): Promise<{ frozenMs: number; frozenAt: number; manifest: CheckpointManifest }> {
  await mkdir(step.dir, { recursive: true });
  const version = await criuVersion();
  const leaveRunning = after !== 'end';
  const t0 = performance.now();
  await parts.cgroups.freeze(rec.id);
  let thawed = false;
  const thaw = async (): Promise<void> => {
    if (thawed) return;
    thawed = true;
    await parts.cgroups.thaw(rec.id);
  };
  let external: Record<string, 'stdout' | 'stderr'>;
  let tTar = t0;
  try {
    await tarUpper(rec.paths.upper, join(root, ROOTFS_DIFF));
    tTar = performance.now();
    const o = dumpOptions(rec);
    external = o.external;
    const parent = step.parent ? ['--prev-images-dir', relative(step.dir, step.parent), '--track-mem'] : [];
    await runCriu({
      args: ['dump', ...o.args, ...(leaveRunning ? ['--leave-running'] : []), ...parent],
      dir: step.dir,
      log: 'dump.log',
      step: 'checkpoint',
      what: `checkpoint container ${rec.name}`,
      containerId: rec.id,
    });
  } catch (e) {
    await thaw().catch(() => undefined);
    throw e;
  }
  const frozenMs = performance.now() - t0;
  parts.logger.debug({ container: rec.id, freezeAndTarMs: tTar - t0, dumpMs: performance.now() - tTar }, 'checkpoint: final dump');
  if (after === 'resume') await thaw();
  const manifest: CheckpointManifest = {
    version: 1,
    createdAt: new Date().toISOString(),
    criu: version,
    container: {
      id: rec.id,
      name: rec.name,
      image: { ref: rec.image.ref, layers: [...rec.image.layers] },
      config: rec.config,
      resources: { ...(rec.resources ?? {}) },
      ...(rec.evolution !== undefined ? { evolution: rec.evolution } : {}),
      network: String((rec.config as { network?: string }).network ?? 'none'),
    },
    external,
    dump: relative(join(root, IMAGES), step.dir),
    leftRunning: leaveRunning,
    ...(await digestTree(root)),
  };
  parts.logger.debug({ container: rec.id, digestMs: performance.now() - t0 - frozenMs }, 'checkpoint: digests');
  await writeManifest(root, manifest);
  return { frozenMs, frozenAt: t0, manifest };
}

/** Checks `rec` can be dumped and picks the checkpoint directory. */
export function checkpointDir(parts: RuntimeParts, rec: ContainerRecord, path: string | undefined): string {
  const why = notCheckpointable(rec);
  if (why) throw new RuntimeError(`checkpoint container ${rec.name}: ${why}`, { code: 'EUNSUPPORTED', step: 'checkpoint', containerId: rec.id });
  if (path !== undefined && (typeof path !== 'string' || !isAbsolute(path))) {
    throw new RuntimeError(`checkpoint container ${rec.name}: path must be an absolute directory path, not ${JSON.stringify(path)}`, { code: 'EINVAL', step: 'checkpoint', containerId: rec.id });
  }
  return path ?? join(parts.options.imageRoot, 'checkpoints', `${rec.name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
}

/** A checkpoint of `rec` into a new directory; on failure the directory is removed again. */
export async function checkpoint(parts: RuntimeParts, rec: ContainerRecord, opts: CheckpointOptions): Promise<CheckpointResult> {
  const root = checkpointDir(parts, rec, opts.path);
  try {
    await mkdir(root, { recursive: false });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new RuntimeError(`checkpoint container ${rec.name}: ${root} exists already`, { code: 'EEXIST', step: 'checkpoint', path: root, containerId: rec.id });
    if (code === 'ENOENT') await mkdir(root, { recursive: true });
    else throw e;
  }
  try {
    // Without dirty-page tracking a pre-dump would only copy the memory twice.
    const pre = opts.preDump && (await memoryTracking()) ? join(root, IMAGES, 'pre-1') : undefined;
    if (pre) await preDump(rec, { dir: pre });
    else if (opts.preDump) parts.logger.warn({ container: rec.id }, 'checkpoint: no pre-dump, the kernel does not track dirty memory (CONFIG_MEM_SOFT_DIRTY)');
    const final = join(root, IMAGES, 'final');
    const { frozenMs, manifest } = await finalDump(parts, rec, root, { dir: final, parent: pre }, opts.leaveRunning ? 'resume' : 'end');
    const bytes = Object.values(manifest.files).reduce((n, f) => n + f.size, 0);
    return { path: root, frozenMs, bytes, preDumps: pre ? 1 : 0 };
  } catch (e) {
    await rm(root, { recursive: true, force: true });
    throw e;
  }
}
