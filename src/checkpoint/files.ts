/**
 * A checkpoint's files: its manifest (what the container was, and the SHA-256 of every file),
 * the writable layer as a tar, and the checks a restore or an import makes before using any
 * of it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, readdir, readlink, writeFile, rename } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { RuntimeError } from '../errors.js';

export const MANIFEST = 'checkpoint.json';
export const IMAGES = 'images';
export const ROOTFS_DIFF = 'rootfs-diff.tar';

export interface CheckpointManifest {
  version: 1;
  createdAt: string;
  criu: string;
  /** The container as it was: the record's identity, configuration and settings in force. */
  container: {
    id: string;
    name: string;
    image: { ref: string; layers: string[] };
    config: Record<string, unknown>;
    resources: Record<string, unknown>;
    evolution?: unknown;
    network: string;
  };
  /** CRIU's names of the host files the tree had open (its logs), and which log each was. */
  external: Record<string, 'stdout' | 'stderr'>;
  /** The images directory of the final dump, under images/ (a pre-dump chain lies beside it). */
  dump: string;
  leftRunning: boolean;
  /** Every other file of the checkpoint, by its path relative to it. */
  files: Record<string, { sha256: string; size: number }>;
  /** Symbolic links (CRIU's `parent` link from a dump to its pre-dump). */
  links: Record<string, string>;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function walk(root: string, dir: string, out: { files: string[]; links: string[] }): Promise<void> {
  for (const name of (await readdir(dir)).sort()) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (st.isDirectory()) await walk(root, p, out);
    else if (st.isSymbolicLink()) out.links.push(relative(root, p));
    else if (st.isFile()) out.files.push(relative(root, p));
  }
}

/** Lists and digests every file of the checkpoint in `dir` (the manifest aside). */
export async function digestTree(dir: string): Promise<Pick<CheckpointManifest, 'files' | 'links'>> {
  const found = { files: [] as string[], links: [] as string[] };
  await walk(dir, dir, found);
  const files: CheckpointManifest['files'] = {};
  for (const f of found.files) {
    if (f === MANIFEST || f.endsWith('.log')) continue;
    const st = await lstat(join(dir, f));
    files[f] = { sha256: await sha256File(join(dir, f)), size: st.size };
  }
  const links: CheckpointManifest['links'] = {};
  for (const l of found.links) links[l] = await readlink(join(dir, l));
  return { files, links };
}

export async function writeManifest(dir: string, m: CheckpointManifest): Promise<void> {
  await writeFile(join(dir, MANIFEST + '.tmp'), JSON.stringify(m, null, 2) + '\n');
  await rename(join(dir, MANIFEST + '.tmp'), join(dir, MANIFEST));
}

function corrupt(dir: string, why: string): RuntimeError {
  return new RuntimeError(`restore from ${dir}: the checkpoint is corrupt: ${why}`, { code: 'EINVAL', step: 'restore', path: dir });
}

/** Reads the manifest and checks every file against it: sizes, digests, nothing missing. */
export async function verifyCheckpoint(dir: string): Promise<CheckpointManifest> {
  let m: CheckpointManifest;
  try {
    m = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as CheckpointManifest;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new RuntimeError(`restore from ${dir}: no ${MANIFEST} there (not a checkpoint)`, { code: 'ENOTFOUND', step: 'restore', path: dir });
    throw corrupt(dir, `${MANIFEST} does not parse (${(e as Error).message})`);
  }
  if (m?.version !== 1 || typeof m.files !== 'object' || typeof m.container?.config !== 'object' || typeof m.dump !== 'string') {
    throw corrupt(dir, `${MANIFEST} is not a version 1 checkpoint manifest`);
  }
  for (const [f, want] of Object.entries(m.files)) {
    if (f.split('/').includes('..') || f.startsWith('/')) throw corrupt(dir, `${MANIFEST} names a file outside the checkpoint: ${f}`);
    let size: number;
    try {
      size = (await lstat(join(dir, f))).size;
    } catch {
      throw corrupt(dir, `${f} is missing`);
    }
    if (size !== want.size) throw corrupt(dir, `${f} is ${size} bytes, the manifest says ${want.size}`);
    const got = await sha256File(join(dir, f));
    if (got !== want.sha256) throw corrupt(dir, `${f} has SHA-256 ${got.slice(0, 16)}…, the manifest says ${want.sha256.slice(0, 16)}…`);
  }
  return m;
}

function run(cmd: string, args: string[], what: string, step: 'checkpoint' | 'restore'): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 1 << 20 }, (err, _o, stderr) => {
      if (err) reject(new RuntimeError(`${what}: ${cmd} failed: ${stderr.trim().split('\n').slice(-2).join('; ') || err.message}`, { code: 'ESYSCALL', step }));
      else resolve();
    });
  });
}

/**
 * The writable layer as a tar: overlayfs's whiteouts (0:0 character devices) and opaque
 * directories (trusted.overlay.* xattrs) kept, owners numeric.
 */
export function tarUpper(upper: string, out: string): Promise<void> {
  return run('tar', ['--create', '--file', out, '--numeric-owner', '--xattrs', '--xattrs-include=*', '--acls', '--sparse', '-C', upper, '.'], 'checkpoint: the writable layer', 'checkpoint');
}

export function untarUpper(tarFile: string, upper: string): Promise<void> {
  return run('tar', ['--extract', '--file', tarFile, '--numeric-owner', '--same-permissions', '--same-owner', '--xattrs', '--xattrs-include=*', '--acls', '-C', upper], 'restore: the writable layer', 'restore');
}

/** Mounts `target` as the container's overlay root, for CRIU to restore onto. */
export function mountOverlay(lower: readonly string[], upper: string, work: string, target: string): Promise<void> {
  return run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower.join(':')},upperdir=${upper},workdir=${work}`, target], 'restore: the root filesystem', 'restore');
}

/** Detaches the host's view of the root: the restored mount namespace keeps its own. */
export function detach(target: string): Promise<void> {
  return run('umount', ['--lazy', target], 'restore: the root filesystem', 'restore').catch(() => undefined);
}
