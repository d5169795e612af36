/**
 * Content entering the store from files: blobs copied with their digest and size checked,
 * and layers unpacked from stored blobs (gzip, zstd or plain tar, told apart by their first
 * bytes) with their diff id checked.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createGunzip } from 'node:zlib';
import { RuntimeError } from '../errors.js';
import type { Descriptor } from './media.js';
import type { ContentStore } from './store.js';
import { unpackLayer, type UnpackResult } from './unpack.js';

/** Copies `file` into the store as blob `desc.digest`, refusing it unless digest and size match. */
export async function copyBlob(store: ContentStore, file: string, desc: Pick<Descriptor, 'digest' | 'size'>): Promise<void> {
  if (store.hasBlob(desc.digest)) return;
  await store.once(`blob:${desc.digest}`, async () => {
    if (store.hasBlob(desc.digest)) return;
    const tmp = store.tempPath('blob');
    try {
      const hash = createHash(desc.digest.split(':')[0]!);
      let size = 0;
      const out = fs.createWriteStream(tmp, { mode: 0o644 });
      try {
        for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
          hash.update(chunk as Buffer);
          size += (chunk as Buffer).length;
          if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
        }
      } finally {
        await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
      }
      verifyBlob(desc, size, `${desc.digest.split(':')[0]}:${hash.digest('hex')}`);
      store.commitFile(tmp, desc.digest);
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      if (e instanceof RuntimeError) throw e;
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new RuntimeError(`blob ${desc.digest}: \`${file}\` is missing`, { code: 'ENOTFOUND', step: 'image', path: file });
      throw e;
    }
  });
}

export function verifyBlob(desc: Pick<Descriptor, 'digest' | 'size'>, size: number, digest: string): void {
  if (size !== desc.size) throw new RuntimeError(`blob ${desc.digest}: ${size} bytes, the manifest says ${desc.size} (rejected)`, { code: 'EPROTO', step: 'image' });
  if (digest !== desc.digest) throw new RuntimeError(`blob ${desc.digest}: content has digest ${digest} (rejected)`, { code: 'EPROTO', step: 'image' });
}

export type Compression = 'gzip' | 'zstd' | 'none';

export function compressionOf(file: string): Compression {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(4);
    const n = fs.readSync(fd, b, 0, 4, 0);
    if (n >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (n === 4 && b.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'none';
  } finally {
    fs.closeSync(fd);
  }
}

/** The decompressed bytes of `file`. zstd goes through the `zstd` program (Node 20's zlib has none). */
export async function* decompressed(file: string): AsyncGenerator<Buffer> {
  const kind = compressionOf(file);
  const raw = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  if (kind === 'none') {
    yield* raw as AsyncIterable<Buffer>;
    return;
  }
  if (kind === 'gzip') {
    const gunzip = createGunzip({ chunkSize: 1 << 18 });
    raw.on('error', (e) => gunzip.destroy(e));
    raw.pipe(gunzip);
    try {
      yield* gunzip as AsyncIterable<Buffer>;
    } catch (e) {
      throw new RuntimeError(`gunzip \`${file}\`: ${(e as Error).message}`, { code: 'EINVAL', step: 'image', path: file, cause: e });
    }
    return;
  }
  raw.destroy();
  const child = spawn('zstd', ['-dc', '--no-progress', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e) => reject(new RuntimeError(`zstd layer: cannot run \`zstd\` (install the zstd package): ${e.message}`, { code: 'EUNSUPPORTED', step: 'image', cause: e })));
    child.on('close', (code) => resolve(code));
  });
  try {
    yield* child.stdout as AsyncIterable<Buffer>;
    const code = await exited;
    if (code !== 0) throw new RuntimeError(`zstd -d \`${file}\`: exit ${code}: ${stderr.trim()}`, { code: 'EINVAL', step: 'image', path: file });
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited.catch(() => undefined);
  }
}

/** Unpacks stored blob `blobDigest` as layer `diffId` (checked) unless the layer is there. */
export function unpackBlob(store: ContentStore, blobDigest: string, diffId: string, onDone?: (r: UnpackResult) => void): Promise<boolean> {
  return store.ensureLayer(diffId, async (dir) => {
    const hash = createHash('sha256');
    const source = decompressed(store.blobPath(blobDigest));
    async function* hashing(): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        hash.update(chunk);
        yield chunk;
      }
    }
    const it = hashing();
    const result = await unpackLayer(it, dir);
    // The diff id covers the whole tar, the end blocks and any padding after them too.
    for await (const _ of it) void _;
    onDone?.(result);
    return `sha256:${hash.digest('hex')}`;
  });
}
