/**
 * Live migration and portable checkpoints. A migration streams a container's checkpoint from
 * its runtime to another one while it runs: pre-dumps of its memory first (where the kernel
 * tracks dirty pages), then a short freeze for the final dump and the writable layer. The
 * stream is a sequence of tar archives, so a socket, a pipe through ssh or any byte stream
 * can carry it between nodes. The source stays frozen until the target runs the container,
 * and goes on as it was if the target fails.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { RuntimeError } from '../errors.js';
import type { RuntimeParts } from '../parts.js';
import type { ContainerRecord } from '../state.js';
import { checkpointDir, finalDump, preDump } from './checkpoint.js';
import { memoryTracking } from './criu.js';
import { IMAGES, MANIFEST, ROOTFS_DIFF, verifyCheckpoint, type CheckpointManifest } from './files.js';
import type { MigrateOptions, MigrationResult } from './restore.js';

export interface MigrationSent {
  /** performance.now() when the container was frozen for the final dump. */
  frozenAt: number;
  preDumps: number;
  /** Milliseconds of each pre-dump, while the container ran. */
  preDumpMs: number[];
}

function tarInto(out: Writable, root: string, paths: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const tar = spawn('tar', ['--create', '--sparse', '-C', root, ...paths], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    tar.stderr.on('data', (d: Buffer) => (err += d.toString()));
    tar.stdout.pipe(out, { end: false });
    tar.on('error', reject);
    tar.on('close', (code) => (code === 0 ? resolve() : reject(new RuntimeError(`migration: tar of ${paths.join(', ')} failed: ${err.trim() || `status ${code}`}`, { code: 'ESYSCALL', step: 'checkpoint' }))));
  });
}

/**
 * The source side: pre-dumps (up to `preDumps`) streamed as they are made, then the final
 * dump, with the container held frozen. Ends `out` once all of it is written.
 */
export async function sendMigration(parts: RuntimeParts, rec: ContainerRecord, out: Writable, o: { preDumps?: number | undefined } = {}): Promise<MigrationSent> {
  checkpointDir(parts, rec, undefined); // the checks only
  const base = join(parts.options.imageRoot, 'checkpoints');
  await mkdir(base, { recursive: true });
  const root = await mkdtemp(join(base, `.migrate-${rec.name}-`));
  try {
    const n = (await memoryTracking()) ? Math.max(0, Math.min(8, o.preDumps ?? 2)) : 0;
    const preDumpMs: number[] = [];
    let parent: string | undefined;
    for (let i = 1; i <= n; i++) {
      const dir = join(root, IMAGES, `pre-${i}`);
      const t = performance.now();
      await preDump(rec, { dir, parent });
      preDumpMs.push(performance.now() - t);
      await tarInto(out, root, [join(IMAGES, `pre-${i}`)]);
      parent = dir;
    }
    const { frozenAt } = await finalDump(parts, rec, root, { dir: join(root, IMAGES, 'final'), parent }, 'hold');
    await tarInto(out, root, [join(IMAGES, 'final'), ROOTFS_DIFF, MANIFEST]);
    out.end();
    return { frozenAt, preDumps: n, preDumpMs };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The target side: unpacks the stream into `dir` and checks it as a checkpoint. */
export function receiveMigration(input: Readable, dir: string): Promise<CheckpointManifest> {
  return new Promise((resolve, reject) => {
    // --ignore-zeros: the stream is several archives, one after another.
    const tar = spawn('tar', ['--extract', '--ignore-zeros', '--same-permissions', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    tar.stderr.on('data', (d: Buffer) => (err += d.toString()));
    input.on('error', (e) => {
      tar.kill();
      reject(e);
    });
    input.pipe(tar.stdin);
    tar.on('error', reject);
    tar.on('close', (code) => {
      if (code !== 0) return reject(new RuntimeError(`migration: unpacking the stream failed: ${err.trim() || `status ${code}`}`, { code: 'EINVAL', step: 'restore', path: dir }));
      verifyCheckpoint(dir).then(resolve, reject);
    });
  });
}

/**
 * A migration from `parts` to `target`: the stream (through `opts.through` when given) into a
 * directory under the target's image root, the restore there, then `retire` of the source.
 * Until the target runs it, a failure thaws the source, which goes on as it was.
 */
export async function migrateContainer(
  parts: RuntimeParts,
  rec: ContainerRecord,
  target: RuntimeParts,
  opts: MigrateOptions,
  how: { restore(dir: string, m: CheckpointManifest): Promise<MigrationResult['container']>; retire(): Promise<void> },
): Promise<MigrationResult> {
  const t0 = performance.now();
  await mkdir(join(target.options.imageRoot, 'checkpoints'), { recursive: true });
  const dir = await mkdtemp(join(target.options.imageRoot, 'checkpoints', `.incoming-${rec.name}-`));
  const wire = new PassThrough();
  const received = receiveMigration(opts.through ? opts.through(wire) : wire, dir);
  received.catch(() => undefined);
  let sent: MigrationSent | undefined;
  try {
    sent = await sendMigration(parts, rec, wire, { preDumps: opts.preDumps });
    const manifest = await received;
    const moved = await how.restore(dir, manifest);
    const downtimeMs = performance.now() - sent.frozenAt;
    await how.retire();
    return { container: moved, downtimeMs, totalMs: performance.now() - t0, preDumps: sent.preDumps, preDumpMs: sent.preDumpMs, bytes: Object.values(manifest.files).reduce((n, f) => n + f.size, 0) };
  } catch (e) {
    wire.destroy();
    // Held frozen after its dump (or never frozen): it goes on here.
    if (sent) await parts.cgroups.thaw(rec.id).catch(() => undefined);
    throw e;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes a checkpoint directory as one archive (tar, or tar.zst with `zstd`); resolves to its SHA-256. */
export async function exportCheckpoint(dir: string, file: string, o: { zstd?: boolean | undefined } = {}): Promise<string> {
  await verifyCheckpoint(dir);
  await new Promise<void>((resolve, reject) => {
    const tar = spawn('tar', ['--create', '--sparse', ...(o.zstd ? ['--zstd'] : []), '--file', file, '-C', dir, '.'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    tar.stderr.on('data', (d: Buffer) => (err += d.toString()));
    tar.on('error', reject);
    tar.on('close', (code) => (code === 0 ? resolve() : reject(new RuntimeError(`export checkpoint ${dir}: tar failed: ${err.trim()}`, { code: 'ESYSCALL', step: 'checkpoint', path: file }))));
  });
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Unpacks an exported checkpoint into `dir` (created, must be new): the archive's SHA-256 is
 * checked first when `sha256` is given, and every file against the manifest after.
 */
export async function importCheckpoint(file: string, dir: string, o: { sha256?: string | undefined } = {}): Promise<CheckpointManifest> {
  if (o.sha256 !== undefined) {
    const h = createHash('sha256');
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
    const got = h.digest('hex');
    if (got !== o.sha256.replace(/^sha256:/, '')) {
      throw new RuntimeError(`import checkpoint ${file}: SHA-256 ${got} is not the expected ${o.sha256}`, { code: 'EINVAL', step: 'restore', path: file });
    }
  }
  await mkdir(dir, { recursive: false });
  try {
    await new Promise<void>((resolve, reject) => {
      // tar detects gzip/zstd itself on extraction; absolute names and ../ are refused by default.
      const tar = spawn('tar', ['--extract', '--file', file, '--same-permissions', '-C', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      tar.stderr.on('data', (d: Buffer) => (err += d.toString()));
      tar.on('error', reject);
      tar.on('close', (code) => (code === 0 ? resolve() : reject(new RuntimeError(`import checkpoint ${file}: not a checkpoint archive: ${err.trim().split('\n')[0]}`, { code: 'EINVAL', step: 'restore', path: file }))));
    });
    return await verifyCheckpoint(dir);
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
