/**
 * A real registry for tests: Debian's docker-registry (distribution 2.x) on a loopback port
 * with its storage in a temporary directory, and a small proxy in front of it that can ask
 * for a bearer token (and runs the token endpoint), corrupt one blob, or drop a download
 * part way; images are built here as OCI layouts and pushed with skopeo.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tarArchive, type TarWriteEntry } from '../../src/image/tar.js';

export function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const REGISTRY_SKIP = !have('docker-registry') ? 'needs docker-registry (apt-get install docker-registry)' : !have('skopeo') ? 'needs skopeo (apt-get install skopeo)' : '';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

export interface ProxyRule {
  /** Requests for this blob digest get corrupted content. */
  tamper?: string;
  /** The first GET of this blob is cut after `bytes` bytes. */
  drop?: { digest: string; bytes: number; times?: number };
  /** Require `Authorization: Bearer <token>`, issued by /token for user:password. */
  token?: { user: string; password: string };
}

export interface TestRegistry {
  /** host:port of the proxy (what tests pull from). */
  host: string;
  /** host:port of the registry itself (what skopeo pushes to). */
  direct: string;
  rules: ProxyRule;
  log: { method: string; url: string; range?: string; auth?: string; status?: number }[];
  push(layoutDir: string, tag: string, dest: string, all?: boolean): void;
  stop(): Promise<void>;
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = fs.mkdtempSync(join(tmpdir(), 'ss-reg-'));
  const port = await freePort();
  const cfg = join(dir, 'config.yml');
  fs.writeFileSync(cfg, `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const child: ChildProcess = spawn('docker-registry', ['serve', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const direct = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      await new Promise<void>((resolve, reject) => http.get(`http://${direct}/v2/`, (res) => (res.resume(), resolve())).on('error', reject));
      break;
    } catch {
      if (i > 100 || child.exitCode !== null) throw new Error(`docker-registry did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const rules: ProxyRule = {};
  const log: TestRegistry['log'] = [];
  const token = randomBytes(8).toString('hex');
  const drops = new Map<string, number>();
  const proxy = http.createServer((req, res) => {
    const entry: TestRegistry['log'][number] = { method: req.method!, url: req.url!, range: req.headers.range, auth: req.headers.authorization };
    log.push(entry);
    const url = new URL(req.url!, 'http://x');
    if (url.pathname === '/token') {
      const want = rules.token ? `Basic ${Buffer.from(`${rules.token.user}:${rules.token.password}`).toString('base64')}` : '';
      if (req.headers.authorization !== want) {
        res.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, scope: url.searchParams.get('scope') }));
      return;
    }
    if (rules.token && req.headers.authorization !== `Bearer ${token}`) {
      const repo = /^\/v2\/(.+?)\/(?:manifests|blobs)\//.exec(url.pathname)?.[1];
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="http://${proxyHost}/token",service="test-registry"${repo ? `,scope="repository:${repo}:pull"` : ''}`,
        'content-type': 'application/json',
      }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      entry.status = 401;
      return;
    }
    const headers = { ...req.headers, host: direct };
    delete headers.authorization;
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers }, (upRes) => {
      entry.status = upRes.statusCode;
      const blob = /\/blobs\/(sha256:[0-9a-f]+)$/.exec(url.pathname)?.[1];
      res.writeHead(upRes.statusCode!, upRes.headers);
      if (blob && rules.tamper === blob && req.method === 'GET') {
        let first = true;
        upRes.on('data', (c: Buffer) => {
          if (first) {
            c = Buffer.from(c);
            c[0] = c[0]! ^ 0xff;
            first = false;
          }
          res.write(c);
        });
        upRes.on('end', () => res.end());
        return;
      }
      const d = rules.drop;
      if (blob && d && d.digest === blob && req.method === 'GET' && (drops.get(blob) ?? 0) < (d.times ?? 1)) {
        drops.set(blob, (drops.get(blob) ?? 0) + 1);
        let sent = 0;
        upRes.on('data', (c: Buffer) => {
          if (sent >= d.bytes) return;
          const part = c.subarray(0, d.bytes - sent);
          sent += part.length;
          res.write(part);
          if (sent >= d.bytes) {
            upRes.destroy();
            res.socket?.destroy();
          }
        });
        return;
      }
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  const proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  return {
    host: proxyHost,
    direct,
    rules,
    log,
    push(layoutDir, tag, dest, all = false) {
      execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', ...(all ? ['--all'] : []), `oci:${layoutDir}:${tag}`, `docker://${direct}/${dest}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    },
    async stop() {
      await new Promise((r) => proxy.close(r));
      proxy.closeAllConnections();
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface LayoutImage {
  tag: string;
  layers: { entries: TarWriteEntry[]; compression?: 'gzip' | 'zstd' | 'none' }[];
  config?: Record<string, unknown>;
  architecture?: string;
}

function writeBlob(dir: string, b: Buffer): string {
  const d = sha(b);
  fs.mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  fs.writeFileSync(join(dir, 'blobs', 'sha256', d.slice(7)), b);
  return d;
}

function compress(tar: Buffer, how: 'gzip' | 'zstd' | 'none'): Buffer {
  if (how === 'gzip') return gzipSync(tar);
  if (how === 'zstd') return execFileSync('zstd', ['-q', '-c', '-3'], { input: tar, maxBuffer: 1 << 30 });
  return tar;
}

const LAYER_TYPE = { gzip: 'application/vnd.oci.image.layer.v1.tar+gzip', zstd: 'application/vnd.oci.image.layer.v1.tar+zstd', none: 'application/vnd.oci.image.layer.v1.tar' };

/** A manifest (and its blobs) in `dir`; returns its descriptor. */
export function writeImage(dir: string, img: LayoutImage): { mediaType: string; digest: string; size: number; platform: { os: string; architecture: string } } {
  const tars = img.layers.map((l) => tarArchive(l.entries));
  const blobs = img.layers.map((l, i) => compress(tars[i]!, l.compression ?? 'gzip'));
  const arch = img.architecture ?? 'amd64';
  const config = Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: img.config ?? {}, rootfs: { type: 'layers', diff_ids: tars.map(sha) } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: writeBlob(dir, config), size: config.length },
    layers: blobs.map((b, i) => ({ mediaType: LAYER_TYPE[img.layers[i]!.compression ?? 'gzip'], digest: writeBlob(dir, b), size: b.length })),
  }));
  return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: writeBlob(dir, manifest), size: manifest.length, platform: { os: 'linux', architecture: arch } };
}

/** An OCI layout with `images`, each under its tag; `index` puts several under one tag as an image index. */
export function writeLayout(dir: string, images: LayoutImage[], index?: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const descs = images.map((img) => ({ ...writeImage(dir, img), tag: img.tag }));
  let manifests: object[];
  if (index) {
    const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: descs.map(({ tag: _t, ...d }) => d) }));
    manifests = [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: writeBlob(dir, idx), size: idx.length, annotations: { 'org.opencontainers.image.ref.name': index } }];
  } else {
    manifests = descs.map(({ tag, platform: _p, ...d }) => ({ ...d, annotations: { 'org.opencontainers.image.ref.name': tag } }));
  }
  fs.writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
}

/** The base image's busybox layer entries, for test images that need a shell. */
export function busyboxLayer(): TarWriteEntry[] {
  const bb = fs.readFileSync('/bin/busybox');
  const applets = execFileSync('/bin/busybox', ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const e: TarWriteEntry[] = [
    ...['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp'].map((d) => ({ name: `${d}/`, type: 'directory' as const, mode: 0o755 })),
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: bb },
  ];
  for (const a of applets) if (a !== 'bin/busybox') e.push({ name: a, type: 'symlink', linkname: '/bin/busybox' });
  e.push({ name: 'etc/passwd', type: 'file', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nworker:x:1234:1234:worker:/home/worker:/bin/sh\n') });
  e.push({ name: 'etc/group', type: 'file', data: Buffer.from('root:x:0:\nworker:x:1234:\n') });
  return e;
}
