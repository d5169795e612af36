/**
 * Pulling from a real registry on loopback (Debian's docker-registry, images pushed with
 * skopeo): layers with whiteouts and an opaque directory, an image index, a zstd layer, a
 * token-auth registry, a tampered blob, a download cut short that resumes, two pulls at once,
 * and a container run from a pulled image with its Entrypoint/Cmd/Env/WorkingDir/User.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { ImageStore } from '../../src/image/images.js';
import type { Runtime } from '../../src/runtime.js';
import { REGISTRY_SKIP, busyboxLayer, startRegistry, writeLayout, type TestRegistry } from '../helpers/registry.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const reason = SKIP_REASON || REGISTRY_SKIP;
let reg: TestRegistry;
let work: string;
let t: TestRuntime;
let rt: Runtime;

function store(extra: { authFile?: string } = {}): ImageStore {
  return new ImageStore(fs.mkdtempSync(join(work, 'store-')), 'registry.stratoswarm.io', { insecureRegistries: [reg.host, reg.direct], ...extra });
}

const file = (name: string, data: string | Buffer, mode = 0o644) => ({ name, type: 'file' as const, data: Buffer.from(data), mode });

describe.skipIf(skipBecause(reason, 'image pull tests'))('pull from a registry on loopback (root, docker-registry, skopeo)', () => {
  beforeAll(async () => {
    work = fs.mkdtempSync(join(tmpdir(), 'ss-pull-'));
    reg = await startRegistry();
    t = testRuntime();
    rt = t.runtime;
    // Three layers: base files; a whiteout of one and an opaque /data; a file over it.
    writeLayout(join(work, 'multi'), [{
      tag: 'v1',
      layers: [
        { entries: [...busyboxLayer(), { name: 'data/', type: 'directory' }, file('data/old', 'old'), file('etc/gone', 'x'), file('etc/kept', 'kept')] },
        { entries: [file('etc/.wh.gone', ''), { name: 'data/', type: 'directory' }, file('data/.wh..wh..opq', ''), file('data/new', 'new')], compression: 'none' },
        { entries: [{ name: 'app/', type: 'directory', uid: 1234, gid: 1234 }, file('app/run.sh', '#!/bin/sh\necho "run $0 $* in $(pwd) as $(id -u):$(id -g) GREETING=$GREETING MODE=$MODE"\n', 0o755)], compression: 'zstd' },
      ],
      config: { Entrypoint: ['/app/run.sh'], Cmd: ['default-arg'], Env: ['PATH=/bin:/usr/bin', 'GREETING=hello', 'MODE=image'], WorkingDir: '/app', User: 'worker', StopSignal: 'SIGUSR1', Labels: { from: 'image' } },
    }]);
    reg.push(join(work, 'multi'), 'v1', 'test/multi:v1');
    // An index with an amd64 and an arm64 image.
    writeLayout(join(work, 'index'), [
      { tag: 'amd', architecture: 'amd64', layers: [{ entries: [file('arch', 'amd64')] }] },
      { tag: 'arm', architecture: 'arm64', layers: [{ entries: [file('arch', 'arm64')] }] },
    ], 'multi');
    reg.push(join(work, 'index'), 'multi', 'test/index:multi', true);
    // A bigger single layer for the resume and concurrency cases.
    const big = Buffer.alloc(3 << 20);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeLayout(join(work, 'big'), [{ tag: 'v1', layers: [{ entries: [file('big.bin', big)], compression: 'none' }] }]);
    reg.push(join(work, 'big'), 'v1', 'test/big:v1');
  });

  afterAll(async () => {
    await t?.cleanup();
    await reg?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('pulls a multi-layer image: whiteouts, an opaque directory, a zstd layer, per-layer progress', async () => {
    const s = store();
    const events: { layer: string; state: string; done: number; total: number }[] = [];
    const r = await s.pull(`${reg.host}/test/multi:v1`, { onProgress: (p) => events.push(p) });
    expect(r.layers).toHaveLength(3);
    const img = s.resolve(`${reg.host}/test/multi:v1`);
    const [top, mid, bottom] = img.layerPaths as [string, string, string];
    expect(fs.readFileSync(join(bottom, 'data/old'), 'utf8')).toBe('old');
    const wh = fs.lstatSync(join(mid, 'etc/gone'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect(fs.readFileSync(join(top, 'app/run.sh'), 'utf8')).toContain('echo');
    expect(fs.statSync(join(top, 'app')).uid).toBe(1234);
    const { execFileSync } = await import('node:child_process');
    expect(execFileSync('getfattr', ['--absolute-names', '-n', 'trusted.overlay.opaque', '--only-values', join(mid, 'data')], { encoding: 'utf8' })).toBe('y');
    for (const d of new Set(events.map((e) => e.layer))) {
      const mine = events.filter((e) => e.layer === d);
      expect(mine.at(-1)!.state).toBe('done');
      expect(mine.some((e) => e.state === 'downloading' && e.done === e.total)).toBe(true);
    }
    expect(img.config).toMatchObject({ entrypoint: ['/app/run.sh'], cmd: ['default-arg'], workingDir: '/app', user: 'worker', stopSignal: 'SIGUSR1' });
  });

  it('a container from the pulled image runs with its Entrypoint, Cmd, Env, WorkingDir and User', async () => {
    const ref = `${reg.host}/test/multi:v1`;
    // Into the test runtime's own store (a store over the same root that may use HTTP to it).
    const s = new ImageStore(rt.images.root, rt.images.registry, { insecureRegistries: [reg.host] });
    await s.pull(ref);
    const run = async (b: ReturnType<typeof ContainerConfig.builder>) => {
      const c = await Container.create(b.build(), { runtime: rt });
      await c.start();
      await c.wait();
      const out = (await c.logs()).stdout.trim();
      await c.remove({ force: true });
      return out;
    };
    const base = () => ContainerConfig.builder().name(`pulled-${Math.random().toString(36).slice(2, 8)}`).image(ref).memoryLimit(64 << 20).pidsLimit(32);
    expect(await run(base())).toBe('run /app/run.sh default-arg in /app as 1234:1234 GREETING=hello MODE=image');
    // command replaces Cmd; env is merged by name; user and workdir overridden.
    expect(await run(base().command(['given']).env({ MODE: 'container' }).user('0').workingDir('/tmp'))).toBe('run /app/run.sh given in /tmp as 0:0 GREETING=hello MODE=container');
    // entrypoint override drops the image's Cmd.
    expect(await run(base().entrypoint(['/bin/echo', 'plain']))).toBe('plain');
    // stop() sends the image's StopSignal (SIGUSR1).
    const c = await Container.create(base().entrypoint(['/bin/sh', '-c', 'trap "echo got-usr1; exit 0" USR1; echo ready; while :; do sleep 0.1; done']).build(), { runtime: rt });
    try {
      await c.start();
      for (let i = 0; i < 100 && !(await c.logs()).stdout.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
      const exit = await c.stop({ timeoutMs: 5000 });
      expect(exit.exitCode).toBe(0);
      expect((await c.logs()).stdout).toContain('got-usr1');
    } finally {
      await c.remove({ force: true });
    }
  });

  it('selects linux/amd64 (or the asked platform) from an image index', async () => {
    const s = store();
    await s.pull(`${reg.host}/test/index:multi`, { platform: { os: 'linux', architecture: 'amd64' } });
    expect(fs.readFileSync(join(s.resolve(`${reg.host}/test/index:multi`).layerPaths[0]!, 'arch'), 'utf8')).toBe('amd64');
    const s2 = store();
    await s2.pull(`${reg.host}/test/index:multi`, { platform: { os: 'linux', architecture: 'arm64' } });
    expect(fs.readFileSync(join(s2.resolve(`${reg.host}/test/index:multi`).layerPaths[0]!, 'arch'), 'utf8')).toBe('arm64');
    await expect(store().pull(`${reg.host}/test/index:multi`, { platform: { os: 'linux', architecture: 's390x' } })).rejects.toThrow(/no manifest for linux\/s390x \(the index has linux\/amd64, linux\/arm64\)/);
  });

  it('answers a bearer-token challenge with credentials from auth.json, and fails clearly without them', async () => {
    reg.rules.token = { user: 'agent', password: 's3cret' };
    try {
      const authFile = join(work, 'auth.json');
      fs.writeFileSync(authFile, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('agent:s3cret').toString('base64') } } }));
      const s = store({ authFile });
      await s.pull(`${reg.host}/test/index:multi`);
      expect(reg.log.some((l) => l.url.startsWith('/token') && l.auth?.startsWith('Basic '))).toBe(true);
      expect(reg.log.some((l) => l.auth?.startsWith('Bearer '))).toBe(true);
      const noCreds = join(work, 'empty-auth.json');
      fs.writeFileSync(noCreds, '{"auths":{}}');
      await expect(store({ authFile: noCreds }).pull(`${reg.host}/test/index:multi`)).rejects.toThrow(/token from .*HTTP 401/);
    } finally {
      delete reg.rules.token;
    }
  });

  it('rejects a tampered blob by its digest and keeps nothing of it', async () => {
    const s = store();
    const probe = store();
    await probe.pull(`${reg.host}/test/big:v1`);
    const layerBlob = probe.image(probe.getRef(`${reg.host}/test/big:v1`)!.manifest).manifest.layers[0]!.digest;
    reg.rules.tamper = layerBlob;
    try {
      await expect(s.pull(`${reg.host}/test/big:v1`, { attempts: 1 })).rejects.toThrow(/content has digest .* \(rejected\)/);
      expect(s.hasBlob(layerBlob)).toBe(false);
      expect(fs.readdirSync(join(s.root, 'tmp')).filter((f) => f.startsWith('partial-'))).toEqual([]);
      expect(fs.existsSync(join(s.root, 'layers')) ? fs.readdirSync(join(s.root, 'layers')) : []).toEqual([]);
      expect(s.has(`${reg.host}/test/big:v1`)).toBe(false);
    } finally {
      delete reg.rules.tamper;
    }
  });

  it('resumes a download cut short, with Range, within the pull and in a later one', async () => {
    const probe = store();
    await probe.pull(`${reg.host}/test/big:v1`);
    const layer = probe.image(probe.getRef(`${reg.host}/test/big:v1`)!.manifest).manifest.layers[0]!;
    // Cut once: the retry inside the same pull continues from the bytes it has.
    reg.rules.drop = { digest: layer.digest, bytes: 1 << 20 };
    reg.log.length = 0;
    const s = store();
    await s.pull(`${reg.host}/test/big:v1`, { backoffMs: 10 });
    const gets = reg.log.filter((l) => l.method === 'GET' && l.url.endsWith(layer.digest));
    expect(gets.length).toBe(2);
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/=(\d+)-/.exec(gets[1]!.range!)![1])).toBeGreaterThan(0);
    // Cut with no retries left: the partial stays, and the next pull starts from it (the
    // proxy counts cuts per blob: one more).
    const s2 = store();
    reg.rules.drop = { digest: layer.digest, bytes: 1 << 20, times: 2 };
    await expect(s2.pull(`${reg.host}/test/big:v1`, { attempts: 1 })).rejects.toThrow(/a later pull resumes it|connection ended|ECONNRESET|socket hang up/);
    const partial = fs.readdirSync(join(s2.root, 'tmp')).filter((f) => f.startsWith('partial-'));
    expect(partial).toHaveLength(1);
    delete reg.rules.drop;
    reg.log.length = 0;
    await s2.pull(`${reg.host}/test/big:v1`);
    const resumed = reg.log.filter((l) => l.method === 'GET' && l.url.endsWith(layer.digest));
    expect(resumed).toHaveLength(1);
    expect(resumed[0]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(fs.statSync(join(s2.resolve(`${reg.host}/test/big:v1`).layerPaths[0]!, 'big.bin')).size).toBe(3 << 20);
  });

  it('two concurrent pulls of one image download and unpack each layer once', async () => {
    const s = store();
    reg.log.length = 0;
    const [a, b] = await Promise.all([s.pull(`${reg.host}/test/multi:v1`), s.pull(`${reg.host}/test/multi:v1`)]);
    expect(a.manifest).toBe(b.manifest);
    const blobGets = reg.log.filter((l) => l.method === 'GET' && l.url.includes('/blobs/'));
    expect(blobGets.length).toBe(new Set(blobGets.map((l) => l.url)).size);
    expect(fs.readdirSync(join(s.root, 'layers'))).toHaveLength(3);
  });

  it('refuses HTTP to a registry not named insecure, and a bad reference before any request', async () => {
    const s = new ImageStore(fs.mkdtempSync(join(work, 'store-')), 'registry.stratoswarm.io');
    await expect(s.pull(`${reg.host}/test/multi:v1`, { attempts: 1 })).rejects.toThrow(/insecureRegistries|EPROTO|SSL|wrong version/);
    await expect(s.pull('Bad//Ref')).rejects.toThrow(/invalid image reference/);
  });
});

if (!IS_ROOT) console.warn(`image pull tests skipped: ${SKIP_REASON}`);
