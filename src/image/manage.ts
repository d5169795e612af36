/**
 * What is in the store and what may go: image summaries, removal of references (refused
 * while a container uses the image, unless forced) and garbage collection of the blobs and
 * layers nothing references — no reference, no container, no pull under way.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import { INDEX_TYPES, type ImageIndex } from './media.js';
import type { ContentStore, ImageRecord, RefRecord } from './store.js';

/** A container's claim on the store: the reference it was made from and its layers. */
export interface ImageUser {
  id: string;
  ref: string;
  layers: readonly string[];
}

export interface ImageSummary extends ImageRecord {
  /** Canonical reference. */
  name: string;
  /** Bytes of the image's blobs in the store (manifest, config, compressed layers). */
  size: number;
  platform: string;
}

export interface PruneResult {
  blobs: string[];
  layers: string[];
  temporary: string[];
  freedBytes: number;
}

export interface DiskUsage {
  blobs: { count: number; bytes: number };
  layers: { count: number; bytes: number };
  temporary: { count: number; bytes: number };
  images: number;
}

function sizeOf(path: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.blocks * 512;
  let total = st.blocks * 512;
  for (const e of fs.readdirSync(path)) total += sizeOf(join(path, e));
  return total;
}

export function summary(store: ContentStore, rec: RefRecord): ImageSummary {
  const r = store.record(rec);
  const { manifest, config } = store.image(rec.manifest);
  const blobSize = (d: string) => (store.hasBlob(d) ? fs.statSync(store.blobPath(d)).size : 0);
  const size = blobSize(rec.manifest) + blobSize(manifest.config.digest) + manifest.layers.reduce((n, l) => n + (store.hasBlob(l.digest) ? l.size : 0), 0);
  return { ...r, name: rec.ref, size, platform: `${config.os ?? 'linux'}/${config.architecture ?? 'unknown'}` };
}

function inUseBy(store: ContentStore, users: readonly ImageUser[], rec: RefRecord): ImageUser[] {
  const layers = store.record(rec).layers.join(',');
  return users.filter((u) => {
    try {
      if (store.canonical(u.ref) === rec.ref) return true;
    } catch {
      // an old record with a reference this grammar refuses: compare layers only
    }
    return u.layers.join(',') === layers;
  });
}

/** Removes reference `ref`; the content stays until prune(). */
export function removeImage(store: ContentStore, users: readonly ImageUser[], ref: string, force = false): RefRecord {
  const rec = store.getRef(ref);
  if (!rec) throw new RuntimeError(`remove image "${ref}": not found`, { code: 'ENOTFOUND', step: 'image' });
  // Another reference to the same manifest keeps the image: only this name goes.
  const others = store.refs().filter((r) => r.ref !== rec.ref && r.manifest === rec.manifest);
  if (others.length === 0 && !force) {
    const using = inUseBy(store, users, rec);
    if (using.length) {
      throw new RuntimeError(`remove image "${ref}": in use by container ${using.map((u) => u.id.slice(0, 12)).join(', ')} (remove it first, or force)`, { code: 'EBUSY', step: 'image' });
    }
  }
  store.deleteRef(rec.ref);
  return rec;
}

/**
 * Deletes every blob and layer nothing references, and temporary files no pull or import
 * is using. Content younger than `graceMs` is kept: another process may be about to name it.
 */
export async function prune(store: ContentStore, users: readonly ImageUser[], graceMs = 0): Promise<PruneResult> {
  await Promise.allSettled(store.busy());
  const keepBlobs = new Set<string>();
  const keepLayers = new Set<string>();
  for (const u of users) u.layers.forEach((l) => keepLayers.add(l));
  for (const rec of store.refs()) {
    keepBlobs.add(rec.digest);
    keepBlobs.add(rec.manifest);
    if (store.hasBlob(rec.digest)) {
      try {
        const top = store.readJson<ImageIndex & { mediaType?: string }>(rec.digest);
        if (INDEX_TYPES.includes(top.mediaType ?? '') || Array.isArray(top.manifests)) top.manifests.forEach((m) => store.hasBlob(m.digest) && keepBlobs.add(m.digest));
      } catch {
        // not JSON: kept as it is named
      }
    }
    try {
      const { manifest, config } = store.image(rec.manifest);
      keepBlobs.add(manifest.config.digest);
      manifest.layers.forEach((l) => keepBlobs.add(l.digest));
      (config.rootfs?.diff_ids ?? []).forEach((d) => keepLayers.add(d));
    } catch {
      // a broken image keeps what it names directly
    }
  }
  const result: PruneResult = { blobs: [], layers: [], temporary: [], freedBytes: 0 };
  const now = Date.now();
  const young = (p: string) => {
    try {
      return now - fs.lstatSync(p).ctimeMs < graceMs;
    } catch {
      return true;
    }
  };
  const blobRoot = join(store.root, 'blobs');
  for (const alg of fs.existsSync(blobRoot) ? fs.readdirSync(blobRoot) : []) {
    for (const hex of fs.readdirSync(join(blobRoot, alg))) {
      const digest = `${alg}:${hex}`;
      const p = join(blobRoot, alg, hex);
      if (keepBlobs.has(digest) || young(p)) continue;
      result.freedBytes += sizeOf(p);
      fs.rmSync(p, { force: true });
      result.blobs.push(digest);
    }
  }
  const layerRoot = join(store.root, 'layers');
  for (const name of fs.existsSync(layerRoot) ? fs.readdirSync(layerRoot) : []) {
    const diffId = name.replace('-', ':');
    const p = join(layerRoot, name);
    if (keepLayers.has(diffId) || young(p)) continue;
    result.freedBytes += sizeOf(p);
    fs.rmSync(p, { recursive: true, force: true });
    result.layers.push(diffId);
  }
  const tmpRoot = join(store.root, 'tmp');
  for (const name of fs.existsSync(tmpRoot) ? fs.readdirSync(tmpRoot) : []) {
    const p = join(tmpRoot, name);
    // A temporary file of a live process of this host is that process's work in progress.
    const pid = Number(/-(\d+)-[0-9a-f]+$/.exec(name)?.[1]);
    if ((pid && pid !== process.pid && processAlive(pid)) || young(p)) continue;
    result.freedBytes += sizeOf(p);
    fs.rmSync(p, { recursive: true, force: true });
    result.temporary.push(name);
  }
  return result;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function diskUsage(store: ContentStore): DiskUsage {
  const count = (dir: string, depth: number) => {
    const p = join(store.root, dir);
    if (!fs.existsSync(p)) return { count: 0, bytes: 0 };
    const names = depth === 2 ? fs.readdirSync(p).flatMap((a) => fs.readdirSync(join(p, a)).map((h) => join(p, a, h))) : fs.readdirSync(p).map((n) => join(p, n));
    return { count: names.length, bytes: names.reduce((n, f) => n + sizeOf(f), 0) };
  };
  return { blobs: count('blobs', 2), layers: count('layers', 1), temporary: count('tmp', 1), images: store.refs().length };
}
