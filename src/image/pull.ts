/**
 * Pulling an image: the reference's manifest (an index is narrowed to one platform), its
 * config and its layers, every blob checked against its digest and size before it is kept,
 * layers downloaded concurrently and unpacked as each arrives. A download that breaks off
 * keeps what it had under tmp/ and continues from there with `Range`, within the call
 * (retries) and in a later pull of the same blob; a blob whose content does not match is
 * deleted, nothing of it kept.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import type { Credentials } from './auth.js';
import { unpackBlob, verifyBlob } from './ingest.js';
import { ACCEPT, INDEX_TYPES, MANIFEST_TYPES, hostPlatform, platformString, selectPlatform, type Descriptor, type ImageIndex, type Manifest, type OciImageConfig, type Platform } from './media.js';
import { formatReference } from './reference.js';
import { RegistryClient, isRetryable } from './registry.js';
import { sha256, type ContentStore } from './store.js';

export type LayerState = 'waiting' | 'downloading' | 'unpacking' | 'done' | 'exists';

export interface PullProgress {
  ref: string;
  /** The layer's blob digest. */
  layer: string;
  state: LayerState;
  done: number;
  total: number;
}

export interface PullOptions {
  platform?: Platform | undefined;
  onProgress?: ((p: PullProgress) => void) | undefined;
  /** Layers downloaded at once (default 4). */
  concurrency?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Attempts per request and per blob, the first included (default 5). */
  attempts?: number | undefined;
  backoffMs?: number | undefined;
  ca?: string | Buffer | undefined;
  /** Plain HTTP to this registry for this pull, whatever the configuration says. */
  insecure?: boolean | undefined;
}

export interface PullContext {
  insecure(domain: string): boolean;
  credentials(domain: string, path: string): Credentials | undefined;
}

export interface PullResult {
  ref: string;
  manifest: string;
  digest: string;
  layers: string[];
}

const MANIFEST_LIMIT = 4 << 20;

async function readAll(body: AsyncIterable<unknown>, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > limit) throw new RuntimeError(`${what}: larger than ${limit} bytes`, { code: 'EPROTO', step: 'image' });
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

async function getManifest(client: RegistryClient, repo: string, reference: string, expected?: { digest: string; size?: number | undefined }): Promise<{ bytes: Buffer; mediaType: string; digest: string }> {
  const res = await client.request('GET', repo, `manifests/${reference}`, { accept: ACCEPT });
  const bytes = await readAll(res.body, MANIFEST_LIMIT, `manifest ${repo}:${reference}`);
  const digest = sha256(bytes);
  if (expected) verifyBlob({ digest: expected.digest, size: expected.size ?? bytes.length }, bytes.length, digest);
  let mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; schemaVersion?: number; manifests?: unknown };
    if (parsed.mediaType) mediaType = parsed.mediaType;
    else if (!INDEX_TYPES.includes(mediaType) && !MANIFEST_TYPES.includes(mediaType)) mediaType = parsed.manifests ? INDEX_TYPES[0]! : MANIFEST_TYPES[0]!;
    if (parsed.schemaVersion !== 2) throw new RuntimeError(`manifest ${repo}:${reference}: schema version ${String(parsed.schemaVersion)} is not supported (2 is)`, { code: 'EUNSUPPORTED', step: 'image' });
  } catch (e) {
    if (e instanceof RuntimeError) throw e;
    throw new RuntimeError(`manifest ${repo}:${reference}: not JSON`, { code: 'EPROTO', step: 'image' });
  }
  return { bytes, mediaType, digest };
}

/**
 * Downloads blob `desc` into the store, resuming a partial download. Shared by concurrent
 * callers in this process; the partial file is per digest, so a later pull continues it.
 */
export function fetchBlob(store: ContentStore, client: RegistryClient, repo: string, desc: Descriptor, o: PullOptions, progress?: (done: number) => void): Promise<void> {
  if (store.hasBlob(desc.digest)) return Promise.resolve();
  return store.once(`blob:${desc.digest}`, async () => {
    if (store.hasBlob(desc.digest)) return;
    const partial = join(store.root, 'tmp', `partial-${desc.digest.replace(':', '-')}`);
    fs.mkdirSync(join(store.root, 'tmp'), { recursive: true, mode: 0o700 });
    const attempts = o.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      let hash = createHash('sha256');
      let have = 0;
      if (fs.existsSync(partial)) {
        for await (const c of fs.createReadStream(partial, { highWaterMark: 1 << 20 })) {
          hash.update(c as Buffer);
          have += (c as Buffer).length;
        }
      }
      if (have > desc.size) {
        fs.rmSync(partial, { force: true });
        continue;
      }
      progress?.(have);
      try {
        if (have < desc.size) {
          const res = await client.request('GET', repo, `blobs/${desc.digest}`, have > 0 ? { range: `bytes=${have}-` } : {});
          let fd: number;
          if (have > 0 && res.status !== 206) {
            // The server ignored the range and sends the whole blob: start over with it.
            hash = createHash('sha256');
            have = 0;
            fd = fs.openSync(partial, 'w', 0o600);
          } else fd = fs.openSync(partial, 'a', 0o600);
          try {
            for await (const c of res.body) {
              const chunk = c as Buffer;
              if (have + chunk.length > desc.size) throw new RuntimeError(`blob ${desc.digest}: more than the ${desc.size} bytes the manifest says (rejected)`, { code: 'EPROTO', step: 'image' });
              fs.writeSync(fd, chunk);
              hash.update(chunk);
              have += chunk.length;
              progress?.(have);
            }
          } finally {
            fs.closeSync(fd);
          }
          if (have < desc.size) throw Object.assign(new Error(`blob ${desc.digest}: connection ended after ${have} of ${desc.size} bytes`), { code: 'ECONNRESET' });
        }
        try {
          verifyBlob(desc, have, `sha256:${hash.digest('hex')}`);
        } catch (e) {
          fs.rmSync(partial, { force: true });
          throw e;
        }
        store.commitFile(partial, desc.digest);
        return;
      } catch (e) {
        if (o.signal?.aborted || !isRetryable(e) || attempt >= attempts) {
          if (e instanceof RuntimeError) throw e;
          throw new RuntimeError(`download blob ${desc.digest}: ${(e as Error).message} (after ${attempt} attempts; a later pull resumes it)`, { code: 'ESYSCALL', step: 'image', errno: (e as NodeJS.ErrnoException).code, cause: e });
        }
        await new Promise((r) => setTimeout(r, (o.backoffMs ?? 200) * 2 ** (attempt - 1)));
      }
    }
  });
}

/** Pulls `ref` into the store and points the reference at it. */
export async function pull(store: ContentStore, ctx: PullContext, ref: string, o: PullOptions = {}): Promise<PullResult> {
  const r = store.parse(ref);
  const canonical = formatReference(r);
  const repo = r.path;
  const client = new RegistryClient({
    domain: r.domain,
    insecure: o.insecure ?? ctx.insecure(r.domain),
    credentials: ctx.credentials(r.domain, r.path),
    ca: o.ca,
    attempts: o.attempts,
    backoffMs: o.backoffMs,
    signal: o.signal,
  });
  const platform = o.platform ?? hostPlatform();
  const top = await getManifest(client, repo, r.digest ?? r.tag!, r.digest ? { digest: r.digest } : undefined);
  store.writeBlob(top.bytes);
  let manifestDigest = top.digest;
  let manifestBytes = top.bytes;
  if (INDEX_TYPES.includes(top.mediaType)) {
    const index = JSON.parse(top.bytes.toString('utf8')) as ImageIndex;
    const chosen = selectPlatform(index, platform);
    if (!chosen) {
      const have = index.manifests.filter((m) => m.platform).map((m) => platformString(m.platform!)).join(', ');
      throw new RuntimeError(`pull ${ref}: no manifest for ${platformString(platform)} (the index has ${have || 'none with a platform'})`, { code: 'ENOTFOUND', step: 'image' });
    }
    const m = await getManifest(client, repo, chosen.digest, chosen);
    store.writeBlob(m.bytes);
    manifestDigest = m.digest;
    manifestBytes = m.bytes;
  } else if (!MANIFEST_TYPES.includes(top.mediaType)) {
    throw new RuntimeError(`pull ${ref}: media type "${top.mediaType}" is not supported (OCI or Docker v2 schema 2 manifests and indexes are)`, { code: 'EUNSUPPORTED', step: 'image' });
  }
  const manifest = JSON.parse(manifestBytes.toString('utf8')) as Manifest;
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new RuntimeError(`pull ${ref}: manifest ${manifestDigest} has no config or layers`, { code: 'EPROTO', step: 'image' });
  await fetchBlob(store, client, repo, manifest.config, o);
  const config = store.readJson<OciImageConfig>(manifest.config.digest);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) throw new RuntimeError(`pull ${ref}: config lists ${diffIds.length} diff ids for ${manifest.layers.length} layers`, { code: 'EPROTO', step: 'image' });

  const emit = (layer: Descriptor, state: LayerState, done: number) => o.onProgress?.({ ref: canonical, layer: layer.digest, state, done, total: layer.size });
  manifest.layers.forEach((l) => emit(l, 'waiting', 0));
  const queue = manifest.layers.map((l, i) => ({ l, diffId: diffIds[i]! }));
  const workers = Array.from({ length: Math.min(o.concurrency ?? 4, queue.length) }, async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const { l, diffId } = job;
      if (store.hasLayer(diffId) && store.hasBlob(l.digest)) {
        emit(l, 'exists', l.size);
        continue;
      }
      emit(l, 'downloading', 0);
      await fetchBlob(store, client, repo, l, o, (done) => emit(l, 'downloading', done));
      emit(l, 'unpacking', l.size);
      await unpackBlob(store, l.digest, diffId);
      emit(l, 'done', l.size);
    }
  });
  await Promise.all(workers);
  store.setRef({ ref: canonical, manifest: manifestDigest, digest: top.digest, createdAt: new Date().toISOString() });
  return { ref: canonical, manifest: manifestDigest, digest: top.digest, layers: [...diffIds] };
}

