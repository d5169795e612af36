/**
 * Images on disk: layers unpacked once per digest under <imageRoot>/layers/<digest>/ and
 * shared read-only by every container (overlay lower layers); an image is a small record
 * naming its layers, top first, and its default process settings.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError, fromNodeError } from './errors.js';

export interface ImageConfig {
  env: string[];
  cmd: string[];
  workingDir: string;
  user: string;
}

export interface ImageRecord {
  ref: string;
  /** Layer digests, top (last applied) first, as overlay's lowerdir wants them. */
  layers: string[];
  config: ImageConfig;
  createdAt: string;
}

export interface ResolvedImage extends ImageRecord {
  layerPaths: string[];
}

export const BASE_IMAGE = 'stratoswarm/base-agent:latest';
const REF_RE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/;

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export class ImageStore {
  readonly root: string;
  private readonly registry: string;

  constructor(root: string, registry: string) {
    this.root = root;
    this.registry = registry;
  }

  /** "name[:tag]" with the configured registry's prefix, if any, removed; tag defaults to latest. */
  normalize(ref: string): string {
    let r = ref.trim();
    if (r.startsWith(`${this.registry}/`)) r = r.slice(this.registry.length + 1);
    if (!r.includes(':')) r += ':latest';
    return r;
  }

  static validRef(ref: string): boolean {
    return REF_RE.test(ref);
  }

  private recordPath(ref: string): string {
    const [name, tag] = ref.split(':') as [string, string];
    return join(this.root, 'images', ...name.split('/'), `${tag}.json`);
  }

  layerPath(digest: string): string {
    return join(this.root, 'layers', digest.replace(':', '-'));
  }

  resolve(ref: string): ResolvedImage {
    const norm = this.normalize(ref);
    let rec: ImageRecord;
    try {
      rec = JSON.parse(fs.readFileSync(this.recordPath(norm), 'utf8')) as ImageRecord;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new RuntimeError(
        code === 'ENOENT'
          ? `image "${ref}" not found in ${this.root} (build the base image with scripts/setup, or pull it)`
          : `image "${ref}": unreadable record (${code ?? (e as Error).message})`,
        { code: 'ENOTFOUND', step: 'image', errno: code, path: this.recordPath(norm), cause: e },
      );
    }
    const layerPaths = rec.layers.map((d) => this.layerPath(d));
    for (const p of layerPaths) {
      if (!fs.existsSync(p)) {
        throw new RuntimeError(`image "${ref}": layer directory \`${p}\` is missing`, { code: 'ENOTFOUND', step: 'image', path: p });
      }
    }
    return { ...rec, layerPaths };
  }

  has(ref: string): boolean {
    return fs.existsSync(this.recordPath(this.normalize(ref)));
  }

  list(): string[] {
    const out: string[] = [];
    const walk = (dir: string, prefix: string) => {
      if (!fs.existsSync(dir)) return;
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
        else if (e.name.endsWith('.json')) out.push(`${prefix.slice(0, -1)}:${e.name.slice(0, -5)}`);
      }
    };
    walk(join(this.root, 'images'), '');
    return out.sort();
  }

  /** Writes an image record atomically. */
  save(rec: ImageRecord): void {
    const p = this.recordPath(this.normalize(rec.ref));
    fs.mkdirSync(join(p, '..'), { recursive: true });
    const tmp = `${p}.${randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(rec, null, 2));
    fs.renameSync(tmp, p);
  }

  /**
   * Builds `stratoswarm/base-agent:latest` from a static busybox: one layer with busybox,
   * a link per applet, and the usual directories and account files. Idempotent: the layer's
   * digest covers the busybox binary and this layout, so a rebuild finds it in place.
   */
  buildBaseImage(busybox = '/bin/busybox'): ImageRecord {
    let binary: Buffer;
    try {
      binary = fs.readFileSync(busybox);
    } catch (e) {
      throw fromNodeError(e, 'image', `build ${BASE_IMAGE}: read busybox \`${busybox}\` (install busybox-static)`);
    }
    const layout = 'base-agent layout v1';
    const digest = `sha256:${createHash('sha256').update(layout).update(binary).digest('hex')}`;
    const dest = this.layerPath(digest);
    if (!fs.existsSync(dest)) {
      const tmp = `${dest}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        makeBusyboxRootfs(tmp, busybox, binary);
        fs.renameSync(tmp, dest);
      } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw fromNodeError(e, 'image', `build ${BASE_IMAGE}`);
      }
    }
    const rec: ImageRecord = {
      ref: BASE_IMAGE,
      layers: [digest],
      config: {
        env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        cmd: ['/bin/sh'],
        workingDir: '/',
        user: '0:0',
      },
      createdAt: new Date().toISOString(),
    };
    this.save(rec);
    return rec;
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

function makeBusyboxRootfs(dir: string, busybox: string, binary: Buffer): void {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'root', 'home/agent', 'var/tmp', 'run', 'mnt']) {
    fs.mkdirSync(join(dir, d), { recursive: true });
  }
  fs.chmodSync(join(dir, 'tmp'), 0o1777);
  fs.chmodSync(join(dir, 'var/tmp'), 0o1777);
  fs.chmodSync(join(dir, 'root'), 0o700);
  fs.writeFileSync(join(dir, 'bin/busybox'), binary, { mode: 0o755 });
  const applets = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  for (const applet of applets) {
    const target = join(dir, applet);
    if (applet === 'bin/busybox' || fs.existsSync(target)) continue;
    fs.mkdirSync(join(target, '..'), { recursive: true });
    const depth = applet.split('/').length - 1;
    fs.symlinkSync(`${'../'.repeat(depth)}bin/busybox`, target);
  }
  fs.writeFileSync(
    join(dir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000:agent:/home/agent:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  fs.writeFileSync(join(dir, 'etc/group'), 'root:x:0:\ntty:x:5:\nagent:x:1000:\nnogroup:x:65534:\n');
  fs.writeFileSync(join(dir, 'etc/hostname'), 'agent\n');
  fs.writeFileSync(join(dir, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost\n');
  fs.writeFileSync(join(dir, 'etc/resolv.conf'), '');
  fs.chownSync(join(dir, 'home/agent'), 1000, 1000);
}
