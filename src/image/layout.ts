/**
 * Images to and from files: an OCI image layout (a directory, or a tar of one), a
 * `docker save` archive (its manifest.json, the layout Docker wrote before 25.0; newer
 * archives are OCI layouts too), and export as an OCI layout directory.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import { copyBlob, compressionOf, decompressed, unpackBlob } from './ingest.js';
import { INDEX_TYPES, MANIFEST_TYPES, MEDIA, hostPlatform, selectPlatform, type Descriptor, type ImageIndex, type Manifest, type OciImageConfig, type Platform } from './media.js';
import { checkDigest } from './reference.js';
import { sha256, type ContentStore } from './store.js';
import { unpackLayer } from './unpack.js';

export interface ImportOptions {
  /** The reference to store the image under; needed when the archive names none. */
  ref?: string | undefined;
  platform?: Platform | undefined;
}

export interface Imported {
  refs: string[];
  manifest: string;
}

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';

function bad(what: string, why: string): RuntimeError {
  return new RuntimeError(`import ${what}: ${why}`, { code: 'EINVAL', step: 'image' });
}

function readJsonFile<T>(file: string, what: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw bad(what, `cannot read \`${file}\` (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw bad(what, `\`${file}\` is not JSON (${(e as Error).message})`);
  }
}

/** Imports an OCI layout directory or tar, or a docker save archive. */
export async function importArchive(store: ContentStore, path: string, opts: ImportOptions = {}): Promise<Imported> {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (e) {
    throw bad(`\`${path}\``, `${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (st.isDirectory()) return importDirectory(store, path, opts, path);
  // A tar: unpacked (safely, as a layer is) into a private directory first.
  const dir = store.tempPath('import');
  fs.mkdirSync(dir, { mode: 0o700 });
  try {
    await unpackLayer(decompressed(path), dir);
    return await importDirectory(store, dir, opts, path);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function importDirectory(store: ContentStore, dir: string, opts: ImportOptions, what: string): Promise<Imported> {
  if (fs.existsSync(join(dir, 'oci-layout')) && fs.existsSync(join(dir, 'index.json'))) return importLayout(store, dir, opts, what);
  if (fs.existsSync(join(dir, 'manifest.json'))) return importDockerSave(store, dir, opts, what);
  throw bad(`\`${what}\``, 'neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)');
}

function layoutBlob(dir: string, digest: string): string {
  const [alg, hex] = checkDigest(digest).split(':') as [string, string];
  return join(dir, 'blobs', alg, hex);
}

async function importLayout(store: ContentStore, dir: string, opts: ImportOptions, what: string): Promise<Imported> {
  const layout = readJsonFile<{ imageLayoutVersion?: string }>(join(dir, 'oci-layout'), what);
  if (layout.imageLayoutVersion !== '1.0.0') throw bad(what, `oci-layout: imageLayoutVersion "${String(layout.imageLayoutVersion)}" (1.0.0 expected)`);
  const index = readJsonFile<ImageIndex>(join(dir, 'index.json'), what);
  if (!Array.isArray(index.manifests) || index.manifests.length === 0) throw bad(what, 'index.json lists no manifests');
  // With a reference whose tag names one entry of the layout, that one; else the only one.
  let entries = index.manifests;
  if (entries.length > 1 && opts.ref) {
    const tag = store.parse(opts.ref).tag;
    const named = entries.filter((m) => m.annotations?.[REF_NAME] === tag || (m.annotations?.[CONTAINERD_NAME] && store.canonical(m.annotations[CONTAINERD_NAME]) === store.canonical(opts.ref!)));
    if (named.length) entries = named;
  }
  let last: Imported | undefined;
  const refs: string[] = [];
  for (const top of entries) {
    const names = opts.ref ? [opts.ref] : refNames(top, what);
    const manifestDesc = await chooseManifest(store, dir, top, opts.platform ?? hostPlatform(), what);
    const manifest = store.readJson<Manifest>(manifestDesc.digest);
    await copyBlob(store, layoutBlob(dir, manifest.config.digest), manifest.config);
    for (const l of manifest.layers) await copyBlob(store, layoutBlob(dir, l.digest), l);
    await unpackLayers(store, manifest);
    for (const n of names) refs.push(store.canonical(n));
    for (const n of names) store.setRef({ ref: store.canonical(n), manifest: manifestDesc.digest, digest: top.digest, createdAt: new Date().toISOString() });
    last = { refs, manifest: manifestDesc.digest };
    if (opts.ref) break;
  }
  return last!;
}

function refNames(desc: Descriptor, what: string): string[] {
  const full = desc.annotations?.[CONTAINERD_NAME];
  if (full) return [full];
  const name = desc.annotations?.[REF_NAME];
  // The OCI annotation is often a tag only (skopeo's oci:DIR:tag writes just "tag").
  if (name && (name.includes('/') || name.includes('@'))) return [name];
  throw bad(what, `the layout names no repository for ${desc.digest}${name ? ` (only "${name}")` : ''}: give a reference`);
}

/** Copies the top descriptor's blob, and when it is an index, the chosen platform's manifest. */
async function chooseManifest(store: ContentStore, dir: string, top: Descriptor, platform: Platform, what: string): Promise<Descriptor> {
  await copyBlob(store, layoutBlob(dir, top.digest), top);
  if (MANIFEST_TYPES.includes(top.mediaType)) return top;
  if (!INDEX_TYPES.includes(top.mediaType)) throw bad(what, `${top.digest}: media type "${top.mediaType}" is not a manifest or an index`);
  const index = store.readJson<ImageIndex>(top.digest);
  const chosen = selectPlatform(index, platform);
  if (!chosen) throw bad(what, `index ${top.digest} has no manifest for ${platform.os}/${platform.architecture}`);
  await copyBlob(store, layoutBlob(dir, chosen.digest), chosen);
  return chosen;
}

/** Unpacks every layer of a stored manifest, checking each against the config's diff ids. */
export async function unpackLayers(store: ContentStore, manifest: Manifest): Promise<void> {
  const config = store.readJson<OciImageConfig>(manifest.config.digest);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new RuntimeError(`image config ${manifest.config.digest}: ${diffIds.length} diff ids for ${manifest.layers.length} layers`, { code: 'EINVAL', step: 'image' });
  }
  await Promise.all(manifest.layers.map((l, i) => unpackBlob(store, l.digest, diffIds[i]!)));
}

interface DockerSaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function importDockerSave(store: ContentStore, dir: string, opts: ImportOptions, what: string): Promise<Imported> {
  const entries = readJsonFile<DockerSaveEntry[]>(join(dir, 'manifest.json'), what);
  if (!Array.isArray(entries) || entries.length === 0) throw bad(what, 'manifest.json lists no images');
  const refs: string[] = [];
  let manifestDigest = '';
  for (const e of opts.ref ? entries.slice(0, 1) : entries) {
    const inside = (p: string) => {
      if (typeof p !== 'string' || p.startsWith('/') || p.split('/').includes('..')) throw bad(what, `manifest.json names "${String(p)}" outside the archive`);
      return join(dir, p);
    };
    const configFile = inside(e.Config);
    const configBytes = fs.readFileSync(configFile);
    const configDigest = sha256(configBytes);
    const layers: Descriptor[] = [];
    for (const l of e.Layers ?? []) {
      const file = inside(l);
      const bytes = fs.statSync(file).size;
      const c = compressionOf(file);
      const digest = await fileDigest(file);
      layers.push({ mediaType: c === 'gzip' ? MEDIA.ociLayerGzip : c === 'zstd' ? MEDIA.ociLayerZstd : MEDIA.ociLayer, digest, size: bytes });
      await copyBlob(store, file, { digest, size: bytes });
    }
    await copyBlob(store, configFile, { digest: configDigest, size: configBytes.length });
    const manifest: Manifest = { schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configBytes.length }, layers };
    manifestDigest = store.writeBlob(Buffer.from(JSON.stringify(manifest)));
    await unpackLayers(store, manifest);
    const names = opts.ref ? [opts.ref] : (e.RepoTags ?? []);
    if (names.length === 0) throw bad(what, `image ${configDigest} has no RepoTags: give a reference`);
    for (const n of names) {
      const ref = store.canonical(n);
      store.setRef({ ref, manifest: manifestDigest, digest: manifestDigest, createdAt: new Date().toISOString() });
      refs.push(ref);
    }
  }
  return { refs, manifest: manifestDigest };
}

async function fileDigest(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** Writes `ref` as an OCI image layout in `dir` (made if missing; an existing layout gains the image). */
export function exportLayout(store: ContentStore, ref: string, dir: string): { manifest: string } {
  const rec = store.getRef(ref);
  if (!rec) throw new RuntimeError(`export: image "${ref}" not found`, { code: 'ENOTFOUND', step: 'image' });
  const { manifest } = store.image(rec.manifest);
  const blobs = [rec.manifest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  for (const d of blobs) {
    if (!store.hasBlob(d)) throw new RuntimeError(`export ${ref}: blob ${d} is not in the store (the image was made from unpacked layers)`, { code: 'ENOTFOUND', step: 'image' });
  }
  fs.mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const d of blobs) {
    const dest = layoutBlob(dir, d);
    if (!fs.existsSync(dest)) fs.copyFileSync(store.blobPath(d), dest);
  }
  fs.writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const indexFile = join(dir, 'index.json');
  const index: ImageIndex = fs.existsSync(indexFile) ? readJsonFile<ImageIndex>(indexFile, dir) : { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [] };
  const parsed = store.parse(rec.ref);
  const size = fs.statSync(store.blobPath(rec.manifest)).size;
  index.manifests = index.manifests.filter((m) => m.annotations?.[CONTAINERD_NAME] !== rec.ref);
  index.manifests.push({
    mediaType: manifest.mediaType ?? MEDIA.ociManifest,
    digest: rec.manifest,
    size,
    annotations: { [CONTAINERD_NAME]: rec.ref, ...(parsed.tag ? { [REF_NAME]: parsed.tag } : {}) },
  });
  fs.writeFileSync(indexFile, JSON.stringify(index, null, 2));
  return { manifest: rec.manifest };
}
