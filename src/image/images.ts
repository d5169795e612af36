/**
 * ImageStore: the runtime's images. Content-addressed storage (store.ts) with the ways in —
 * pull (pull.ts), import (layout.ts), the base image (base.ts) — and the management calls
 * (manage.ts). Containers reach it through `resolve()` and `accounts()`.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CredentialStore, type Credentials } from './auth.js';
import { BASE_IMAGE, buildBaseImage } from './base.js';
import { writeImageConfig } from './config.js';
import { exportLayout, importArchive, type ImportOptions, type Imported } from './layout.js';
import { diskUsage, prune, removeImage, summary, type DiskUsage, type ImageSummary, type ImageUser, type PruneResult } from './manage.js';
import { MEDIA, hostPlatform, type Manifest, type OciImageConfig } from './media.js';
import { pull, type PullOptions, type PullResult } from './pull.js';
import { ContentStore, notFound, type ImageRecord, type ResolvedImage } from './store.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface ImageStoreOptions {
  /** Registries spoken to over HTTP (host[:port]); every other one over HTTPS. */
  insecureRegistries?: readonly string[] | undefined;
  /** A Docker-style config.json or containers auth.json; default: the usual places. */
  authFile?: string | undefined;
  /** The containers using images (from the state root), so remove() and prune() spare theirs. */
  users?: (() => ImageUser[]) | undefined;
}

export class ImageStore extends ContentStore {
  private readonly opts: ImageStoreOptions;
  private creds: CredentialStore | undefined;

  constructor(root: string, registry: string, opts: ImageStoreOptions = {}) {
    super(root, registry);
    this.opts = opts;
  }

  /** Tells the store which containers use images (the runtime does, from its state root). */
  setUsers(users: () => ImageUser[]): void {
    this.opts.users = users;
  }

  private users(): ImageUser[] {
    return this.opts.users?.() ?? [];
  }

  /** "name[:tag]" as people write it: the configured registry left out, tag `latest` by default. */
  normalize(ref: string): string {
    return this.familiar(ref);
  }

  has(ref: string): boolean {
    try {
      return this.getRef(ref) !== undefined;
    } catch {
      return false;
    }
  }

  /** References in the store, as people write them. */
  list(): string[] {
    return this.refs().map((r) => this.familiar(r.ref));
  }

  /** Every image with its sizes and digests. */
  images(): ImageSummary[] {
    return this.refs().map((r) => summary(this, r));
  }

  inspect(ref: string): ImageSummary & { manifestJson: Manifest; configJson: OciImageConfig } {
    const rec = this.getRef(ref);
    if (!rec) throw notFound(ref, 'not found');
    const { manifest, config } = this.image(rec.manifest);
    return { ...summary(this, rec), manifestJson: manifest, configJson: config };
  }

  remove(ref: string, opts: { force?: boolean } = {}): { ref: string; manifest: string } {
    const rec = removeImage(this, this.users(), ref, opts.force);
    return { ref: rec.ref, manifest: rec.manifest };
  }

  prune(opts: { graceMs?: number } = {}): Promise<PruneResult> {
    return prune(this, this.users(), opts.graceMs ?? 0);
  }

  diskUsage(): DiskUsage {
    return diskUsage(this);
  }

  pull(ref: string, opts: PullOptions = {}): Promise<PullResult> {
    const insecure = new Set(this.opts.insecureRegistries ?? []);
    return pull(this, {
      insecure: (domain) => insecure.has(domain),
      credentials: (domain, path): Credentials | undefined => {
        this.creds ??= new CredentialStore(this.opts.authFile);
        return this.creds.lookup(domain, path);
      },
    }, ref, opts);
  }

  /** Imports an OCI layout (directory or tar) or a docker save archive. */
  import(path: string, opts: ImportOptions = {}): Promise<Imported> {
    return importArchive(this, path, opts);
  }

  /** Writes the image as an OCI image layout directory. */
  export(ref: string, dir: string): { manifest: string } {
    return exportLayout(this, ref, dir);
  }

  /** Builds `stratoswarm/base-agent:latest` from a static busybox (see base.ts). */
  async buildBaseImage(busybox = '/bin/busybox'): Promise<ImageRecord> {
    await buildBaseImage(this, busybox);
    return this.resolve(BASE_IMAGE);
  }

  /**
   * Names an image made of layers already unpacked in the store (top first), writing its
   * config and manifest as blobs. Its layers have no blobs, so it cannot be exported.
   */
  save(rec: Pick<ImageRecord, 'ref' | 'layers' | 'config'> & Partial<ImageRecord>): void {
    const p = hostPlatform();
    const config: OciImageConfig = { architecture: p.architecture, os: p.os, config: writeImageConfig(rec.config), rootfs: { type: 'layers', diff_ids: [...rec.layers].reverse() } };
    const cfg = Buffer.from(JSON.stringify(config));
    const cfgDigest = this.writeBlob(cfg);
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: cfgDigest, size: cfg.length },
      layers: config.rootfs.diff_ids.map((d) => ({ mediaType: MEDIA.ociLayer, digest: d, size: 0 })),
    };
    const digest = this.writeBlob(Buffer.from(JSON.stringify(manifest)));
    this.setRef({ ref: this.canonical(rec.ref), manifest: digest, digest, createdAt: rec.createdAt || new Date().toISOString() });
  }

  /** Reads /etc/passwd and /etc/group from the image (top layer wins). */
  accounts(image: ResolvedImage): { users: PasswdEntry[]; groups: { name: string; gid: number; members: string[] }[] } {
    const read = (file: string): string => {
      for (const p of image.layerPaths) {
        const f = join(p, file);
        try {
          const st = fs.lstatSync(f);
          if (!st.isFile()) return ''; // a link would be resolved on the host: refuse to follow it
          return fs.readFileSync(f, 'utf8');
        } catch {
          continue;
        }
      }
      return '';
    };
    const users = read('etc/passwd')
      .split('\n')
      .map((l) => l.split(':'))
      .filter((f) => f.length >= 7 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!))
      .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }));
    const groups = read('etc/group')
      .split('\n')
      .map((l) => l.split(':'))
      .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]!))
      .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean) }));
    return { users, groups };
  }
}

