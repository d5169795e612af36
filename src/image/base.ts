/**
 * `stratoswarm/base-agent:latest`, made from a static busybox as an OCI image layout and
 * imported like any other: one layer with busybox, a link per applet, the usual directories
 * and account files. The layer is reproducible (fixed mtimes and owners), so a rebuild from
 * the same busybox yields the same digests and finds everything in place.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fromNodeError } from '../errors.js';
import { importArchive } from './layout.js';
import { MEDIA, hostPlatform, type Manifest, type OciImageConfig } from './media.js';
import { sha256, type ContentStore } from './store.js';
import { tarArchive, type TarWriteEntry } from './tar.js';

export const BASE_IMAGE = 'stratoswarm/base-agent:latest';
// 2026-01-01T00:00:00Z: every member and the config carry it, for reproducible digests.
const EPOCH = 1767225600;

export function baseLayerEntries(binary: Buffer, applets: string[]): TarWriteEntry[] {
  const e: TarWriteEntry[] = [];
  const dir = (name: string, mode = 0o755, uid = 0) => e.push({ name: `${name}/`, type: 'directory', mode, uid, gid: uid, mtime: EPOCH });
  const file = (name: string, data: string | Buffer, mode = 0o644) => e.push({ name, type: 'file', mode, data: Buffer.from(data), mtime: EPOCH });
  for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'run', 'mnt', 'home', 'var']) dir(d);
  dir('tmp', 0o1777);
  dir('var/tmp', 0o1777);
  dir('root', 0o700);
  dir('home/agent', 0o755, 1000);
  file('bin/busybox', binary, 0o755);
  for (const applet of applets) {
    if (applet === 'bin/busybox' || e.some((x) => x.name === applet)) continue;
    const depth = applet.split('/').length - 1;
    e.push({ name: applet, type: 'symlink', linkname: `${'../'.repeat(depth)}bin/busybox`, mode: 0o777, mtime: EPOCH });
  }
  file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  file('etc/group', 'root:x:0:\ntty:x:5:\nagent:x:1000:\nnogroup:x:65534:\n');
  file('etc/hostname', 'agent\n');
  file('etc/hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost\n');
  file('etc/resolv.conf', '');
  return e;
}

/** Writes an OCI layout of one single-layer image into `dir`; returns the manifest digest. */
export function writeSingleLayerLayout(dir: string, layerTar: Buffer, config: NonNullable<OciImageConfig['config']>, tag: string): string {
  const layer = gzipSync(layerTar, { level: 6 });
  const platform = hostPlatform();
  const cfg: OciImageConfig = {
    created: new Date(EPOCH * 1000).toISOString(),
    architecture: platform.architecture,
    os: platform.os,
    config,
    rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] },
    history: [{ created: new Date(EPOCH * 1000).toISOString(), created_by: 'stratoswarm base image from static busybox' }],
  };
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: sha256(cfgBytes), size: cfgBytes.length },
    layers: [{ mediaType: MEDIA.ociLayerGzip, digest: sha256(layer), size: layer.length }],
  };
  const mBytes = Buffer.from(JSON.stringify(manifest));
  fs.mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [layer, cfgBytes, mBytes]) fs.writeFileSync(join(dir, 'blobs', 'sha256', sha256(b).slice(7)), b);
  fs.writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ mediaType: MEDIA.ociManifest, digest: sha256(mBytes), size: mBytes.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] };
  fs.writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  return sha256(mBytes);
}

export async function buildBaseImage(store: ContentStore, busybox = '/bin/busybox'): Promise<string> {
  let binary: Buffer;
  let applets: string[];
  try {
    binary = fs.readFileSync(busybox);
    applets = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' }).split('\n').map((l) => l.trim()).filter(Boolean);
  } catch (e) {
    throw fromNodeError(e, 'image', `build ${BASE_IMAGE}: read busybox \`${busybox}\` (install busybox-static)`);
  }
  const dir = store.tempPath('base-layout');
  try {
    writeSingleLayerLayout(dir, tarArchive(baseLayerEntries(binary, applets)), {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/sh'],
      WorkingDir: '/',
      User: '0:0',
    }, 'latest');
    const { manifest } = await importArchive(store, dir, { ref: BASE_IMAGE });
    return manifest;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
