/**
 * The content-addressed image store, under the image root:
 *
 *   blobs/sha256/<hex>        every manifest, index, config and (compressed) layer, verified
 *   layers/sha256-<hex>/      each layer unpacked once, named by its diff id (the digest of
 *                             the uncompressed tar), shared by every image and container
 *   index/<reference>.json    one file per reference: the manifest it names (and the index
 *                             it was chosen from), written atomically
 *   tmp/                      downloads in progress and layers being unpacked
 *
 * Content enters only through write-to-temp, verify, rename: a crash leaves at worst a
 * temporary file that nothing refers to, never a half-written blob or layer under its digest.
 * Concurrent requests for the same blob or layer in one process share one promise; across
 * processes the rename makes the second writer's work redundant but harmless.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError, fromNodeError } from '../errors.js';
import { writeAtomic } from '../state.js';
import { readImageConfig, type ImageConfig } from './config.js';
import { MANIFEST_TYPES, type Manifest, type OciImageConfig } from './media.js';
import { checkDigest, familiarReference, formatReference, parseReference, type ImageReference } from './reference.js';

export interface RefRecord {
  /** Canonical reference: `registry.stratoswarm.io/stratoswarm/base-agent:latest`. */
  ref: string;
  /** The platform manifest this reference gives. */
  manifest: string;
  /** The digest the source named (an index's when the image came through one). */
  digest: string;
  createdAt: string;
}

export interface ImageRecord {
  /** The reference as people write it (the default registry left out). */
  ref: string;
  /** Layer diff ids, top (last applied) first, as overlay's lowerdir wants them. */
  layers: string[];
  config: ImageConfig;
  createdAt: string;
  /** The image id (its config's digest), the manifest's digest, and the source's digest. */
  id?: string;
  manifest?: string;
  digest?: string;
}

export interface ResolvedImage extends ImageRecord {
  layerPaths: string[];
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function notFound(ref: string, why: string, path?: string): RuntimeError {
  return new RuntimeError(`image "${ref}" ${why}`, { code: 'ENOTFOUND', step: 'image', path });
}

export class ContentStore {
  readonly root: string;
  readonly registry: string;
  private inflight = new Map<string, Promise<unknown>>();
  private parsed = new Map<string, { manifest: Manifest; config: OciImageConfig; configDigest: string }>();

  constructor(root: string, registry: string) {
    this.root = root;
    this.registry = registry;
  }

  parse(ref: string): ImageReference {
    return parseReference(ref, this.registry);
  }

  /** The canonical form of `ref` (a pinned digest wins over a tag). */
  canonical(ref: string): string {
    return formatReference(this.parse(ref));
  }

  familiar(ref: string): string {
    return familiarReference(this.parse(ref), this.registry);
  }

  // ---- blobs ----

  blobPath(digest: string): string {
    const [alg, hex] = checkDigest(digest).split(':') as [string, string];
    return join(this.root, 'blobs', alg, hex);
  }

  hasBlob(digest: string): boolean {
    return fs.existsSync(this.blobPath(digest));
  }

  readBlob(digest: string): Buffer {
    try {
      return fs.readFileSync(this.blobPath(digest));
    } catch (e) {
      throw fromNodeError(e, 'image', `read blob ${digest}`);
    }
  }

  readJson<T>(digest: string): T {
    try {
      return JSON.parse(this.readBlob(digest).toString('utf8')) as T;
    } catch (e) {
      if (e instanceof RuntimeError) throw e;
      throw new RuntimeError(`blob ${digest}: not JSON (${(e as Error).message})`, { code: 'EINVAL', step: 'image' });
    }
  }

  /** A private temporary path under tmp/ (same filesystem as the store, so rename works). */
  tempPath(what: string): string {
    const dir = join(this.root, 'tmp');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return join(dir, `${what}-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /** Stores `data`, checking it against `expected` when given; returns its digest. */
  writeBlob(data: Buffer, expected?: { digest: string; size?: number }): string {
    const digest = sha256(data);
    if (expected) {
      if (expected.size !== undefined && expected.size !== data.length) {
        throw new RuntimeError(`blob ${expected.digest}: size ${data.length}, expected ${expected.size}`, { code: 'EPROTO', step: 'image' });
      }
      if (expected.digest !== digest) throw new RuntimeError(`blob ${expected.digest}: content has digest ${digest} (rejected)`, { code: 'EPROTO', step: 'image' });
    }
    if (!this.hasBlob(digest)) this.commitFile(this.writeTemp(data), digest);
    return digest;
  }

  private writeTemp(data: Buffer): string {
    const tmp = this.tempPath('blob');
    fs.writeFileSync(tmp, data, { mode: 0o644 });
    return tmp;
  }

  /** Moves a verified temporary file into place as blob `digest`. */
  commitFile(tmp: string, digest: string): void {
    const dest = this.blobPath(digest);
    fs.mkdirSync(join(dest, '..'), { recursive: true, mode: 0o755 });
    fs.renameSync(tmp, dest);
  }

  /** Runs `work` once for `key` at a time in this process: concurrent callers share it. */
  once<T>(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const p = work().finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** Whether a pull or import is under way in this process (prune waits for it). */
  busy(): Promise<unknown>[] {
    return [...this.inflight.values()];
  }

  // ---- layers ----

  layerPath(diffId: string): string {
    return join(this.root, 'layers', diffId.replace(':', '-'));
  }

  layersDir(): string {
    const dir = join(this.root, 'layers');
    // Only root may enter: layers keep their setuid bits and device-free but otherwise
    // faithful contents, which host users must not reach.
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    return dir;
  }

  hasLayer(diffId: string): boolean {
    return fs.existsSync(this.layerPath(diffId));
  }

  /**
   * Makes layer `diffId` if it is missing: `fill` unpacks into a fresh temporary directory
   * and returns the diff id it computed, which must match; then it is renamed into place.
   */
  ensureLayer(diffId: string, fill: (dir: string) => Promise<string>): Promise<boolean> {
    checkDigest(diffId);
    if (this.hasLayer(diffId)) return Promise.resolve(false);
    return this.once(`layer:${diffId}`, async () => {
      if (this.hasLayer(diffId)) return false;
      this.layersDir();
      const tmp = this.tempPath('layer');
      fs.mkdirSync(tmp, { mode: 0o755 });
      try {
        const got = await fill(tmp);
        if (got !== diffId) throw new RuntimeError(`layer ${diffId}: its uncompressed content has digest ${got} (rejected)`, { code: 'EPROTO', step: 'image' });
        try {
          fs.renameSync(tmp, this.layerPath(diffId));
        } catch (e) {
          // Another process renamed the same layer into place first: its copy is as good.
          if (!this.hasLayer(diffId)) throw e;
          fs.rmSync(tmp, { recursive: true, force: true });
        }
        return true;
      } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw e;
      }
    });
  }

  // ---- references ----

  private refFile(canonical: string): string {
    return join(this.root, 'index', `${encodeURIComponent(canonical)}.json`);
  }

  setRef(rec: RefRecord): void {
    fs.mkdirSync(join(this.root, 'index'), { recursive: true, mode: 0o755 });
    writeAtomic(this.refFile(rec.ref), JSON.stringify(rec, null, 2));
    this.parsed.delete(rec.manifest);
  }

  getRef(ref: string): RefRecord | undefined {
    const canonical = this.canonical(ref);
    try {
      return JSON.parse(fs.readFileSync(this.refFile(canonical), 'utf8')) as RefRecord;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fromNodeError(e, 'image', `read the index entry of ${canonical}`);
    }
  }

  deleteRef(canonical: string): void {
    fs.rmSync(this.refFile(canonical), { force: true });
  }

  refs(): RefRecord[] {
    const dir = join(this.root, 'index');
    if (!fs.existsSync(dir)) return [];
    const out: RefRecord[] = [];
    for (const f of fs.readdirSync(dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(fs.readFileSync(join(dir, f), 'utf8')) as RefRecord);
      } catch {
        // a file being replaced or a stray one: not an image
      }
    }
    return out.sort((a, b) => a.ref.localeCompare(b.ref));
  }

  // ---- images ----

  /** The manifest and config of a stored manifest digest (cached: content never changes). */
  image(manifestDigest: string): { manifest: Manifest; config: OciImageConfig; configDigest: string } {
    const hit = this.parsed.get(manifestDigest);
    if (hit) return hit;
    const manifest = this.readJson<Manifest>(manifestDigest);
    if (manifest.mediaType && !MANIFEST_TYPES.includes(manifest.mediaType)) throw new RuntimeError(`blob ${manifestDigest} is not an image manifest (${manifest.mediaType})`, { code: 'EINVAL', step: 'image' });
    const config = this.readJson<OciImageConfig>(manifest.config.digest);
    const entry = { manifest, config, configDigest: manifest.config.digest };
    this.parsed.set(manifestDigest, entry);
    return entry;
  }

  record(ref: RefRecord): ImageRecord {
    const { config, configDigest } = this.image(ref.manifest);
    const diffIds = config.rootfs?.diff_ids ?? [];
    return {
      ref: familiarReference(this.parse(ref.ref), this.registry),
      layers: [...diffIds].reverse(),
      config: readImageConfig(config),
      createdAt: ref.createdAt,
      id: configDigest,
      manifest: ref.manifest,
      digest: ref.digest,
    };
  }

  resolve(ref: string): ResolvedImage {
    const entry = this.getRef(ref);
    if (!entry) throw notFound(ref, `not found in ${this.root} (pull or import it: \`stratoswarm pull ${ref}\`)`);
    const rec = this.record(entry);
    const layerPaths = rec.layers.map((d) => this.layerPath(d));
    for (const p of layerPaths) {
      if (!fs.existsSync(p)) throw notFound(ref, `: layer directory \`${p}\` is missing (pull it again)`, p);
    }
    return { ...rec, layerPaths };
  }
}
