import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Container, ContainerConfig, Personality, Runtime, RuntimeError } from '../../src/index.js';
import { criuBinary } from '../../src/checkpoint/criu.js';
import { CLEAN, leftovers } from '../helpers/leftovers.js';
import { IS_ROOT, SKIP_REASON, cgroupFile, testRuntime, useTestRuntime } from '../helpers/runtime.js';
import { createServer, connect, type Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { exportCheckpoint, importCheckpoint } from '../../src/index.js';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';

const CLI = join(import.meta.dirname, '..', '..', 'dist/src/cli/main.js');
import { skipBecause } from '../helpers/skip.js';

const IMAGE = 'stratoswarm/base-agent:latest';

function criuMissing(): string | undefined {
  try {
    criuBinary();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function count(c: Container, file = '/tmp/count'): Promise<number> {
  return Number((await c.exec(['cat', file])).stdout.trim());
}

/** A security report as comparable data: the pid, and the mount ids of a new namespace, aside. */
function comparable(r: unknown): unknown {
  const o = JSON.parse(JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as Record<string, unknown>;
  delete o.pid;
  delete o.namespaces;
  // The same mounts, in the order CRIU mounted them back.
  o.mounts = (o.mounts as { target?: string; mountPoint?: string }[]).map((m) => m.mountPoint ?? m.target).sort();
  o.readOnlyMounts = [...(o.readOnlyMounts as string[])].sort();
  return o;
}

function counter(name: string): ContainerConfig {
  return ContainerConfig.builder()
    .name(name)
    .image(IMAGE)
    .security({ userNamespace: false })
    .personality(Personality.Explorer)
    .cpuLimit(0.5)
    .memoryLimit(96 * 1024 * 1024)
    .pidsLimit(50)
    .command(['/bin/sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.1; done'])
    .build();
}

describe.skipIf(skipBecause((!IS_ROOT && SKIP_REASON) || criuMissing(), 'checkpoint and restore'))('checkpoint and restore with CRIU (root, real kernel)', () => {
  let rt: Runtime;
  let dir: string;
  useTestRuntime((t) => {
    rt = t.runtime;
    dir = mkdtempSync('/var/tmp/ss-ckpt-');
  });

  it('a counter checkpointed and restored carries on from the count it had; the source ends with the dump', async () => {
    const c = await Container.create(counter('ck-counter'), { runtime: rt });
    await c.start();
    await sleep(800);
    const path = join(dir, 'counter');
    const r = await c.checkpoint({ path });
    expect(r.path).toBe(path);
    expect(r.bytes).toBeGreaterThan(0);
    expect((await c.status()).state).toBe('stopped');
    expect(JSON.parse(readFileSync(join(path, 'checkpoint.json'), 'utf8')).container.name).toBe('ck-counter');
    const d = await Container.restore(path, { runtime: rt, name: 'ck-counter-2' });
    expect((await d.status()).state).toBe('running');
    const first = await count(d);
    // The dump came after at least 0.8 s of 0.1 s ticks, so a fresh start would be far below.
    expect(first).toBeGreaterThan(5);
    await sleep(500);
    expect(await count(d)).toBeGreaterThan(first);
    // Its output goes on into its own log.
    expect((await d.logs()).stdout).toMatch(/tick \d+/);
    const exit = await d.stop({ timeoutMs: 2000 });
    expect(exit.signal === 'SIGTERM' || exit.signal === 'SIGKILL').toBe(true);
    await d.remove();
    await c.remove();
    expect(leftovers(rt)).toEqual(CLEAN);
  });

  it('leaveRunning keeps the source running; the restored one has its limits, security report and personality', async () => {
    const c = await Container.create(counter('ck-keep'), { runtime: rt });
    await c.start();
    await c.update({ memoryLimit: 80 * 1024 * 1024 });
    await sleep(300);
    const path = join(dir, 'keep');
    await c.checkpoint({ path, leaveRunning: true, preDump: true });
    expect((await c.status()).state).toBe('running');
    const before = await count(c);
    await sleep(300);
    expect(await count(c)).toBeGreaterThan(before);
    const d = await Container.restore(path, { runtime: rt, name: 'ck-keep-2' });
    for (const names of [['memory.limit_in_bytes', 'memory.max'], ['cpu.cfs_quota_us', 'cpu.max'], ['pids.max']]) {
      expect(cgroupFile(rt, d.id, names)).toBe(cgroupFile(rt, c.id, names));
    }
    expect(cgroupFile(rt, d.id, ['memory.limit_in_bytes', 'memory.max'])).toBe(String(80 * 1024 * 1024));
    expect(d.config.spec.personality.name).toBe('Explorer');
    expect(comparable(await d.securityReport())).toEqual(comparable(await c.securityReport()));
    await d.remove({ force: true });
    await c.remove({ force: true });
    expect(leftovers(rt)).toEqual(CLEAN);
  });

  it('an open file, a pipe between two processes and a listening loopback socket work after the restore', async () => {
    const cfg = ContainerConfig.builder()
      .name('ck-files')
      .image(IMAGE)
      .security({ userNamespace: false })
      .command([
        '/bin/sh',
        '-c',
        [
          'mkdir -p /www && echo served-from-before > /www/index.html',
          'httpd -f -p 127.0.0.1:8080 -h /www &',
          'exec 3>>/tmp/fd3.log',
          '(i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done) | (while read n; do echo "piped $n" >> /tmp/piped; echo "fd3 $n" >&3; done)',
        ].join('\n'),
      ])
      .build();
    const c = await Container.create(cfg, { runtime: rt });
    await c.start();
    await sleep(700);
    expect((await c.exec(['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/index.html'])).stdout).toContain('served-from-before');
    const path = join(dir, 'files');
    await c.checkpoint({ path });
    const d = await Container.restore(path, { runtime: rt, name: 'ck-files-2' });
    const lines = async (f: string) => (await d.exec(['cat', f])).stdout.trim().split('\n').length;
    const piped = await lines('/tmp/piped');
    const fd3 = await lines('/tmp/fd3.log');
    await sleep(600);
    expect(await lines('/tmp/piped')).toBeGreaterThan(piped);
    expect(await lines('/tmp/fd3.log')).toBeGreaterThan(fd3);
    // The same listening socket, restored: no new httpd was started.
    expect((await d.exec(['wget', '-q', '-O', '-', 'http://127.0.0.1:8080/index.html'])).stdout).toContain('served-from-before');
    await d.remove({ force: true });
    await c.remove({ force: true });
    expect(leftovers(rt)).toEqual(CLEAN);
  });

  it('a corrupt checkpoint is refused, naming the file, and leaves nothing', async () => {
    const c = await Container.create(counter('ck-corrupt'), { runtime: rt });
    await c.start();
    await sleep(200);
    const path = join(dir, 'corrupt');
    await c.checkpoint({ path });
    await c.remove();
    const images = join(path, 'images', 'final');
    const victim = readdirSync(images).find((f) => f.startsWith('pages-'))!;
    const buf = readFileSync(join(images, victim));
    buf[buf.length >> 1] ^= 0xff;
    writeFileSync(join(images, victim), buf);
    const err = await Container.restore(path, { runtime: rt, name: 'ck-corrupt-2' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).message).toMatch(new RegExp(`corrupt: images/final/${victim} has SHA-256`));
    expect((err as RuntimeError).step).toBe('restore');
    const none = await Container.restore(join(dir, 'nothing-here'), { runtime: rt }).catch((e: unknown) => e);
    expect((none as RuntimeError).code).toBe('ENOTFOUND');
    expect(leftovers(rt)).toEqual(CLEAN);
  });

  it('a container with a user namespace (the default) is refused with the reason and keeps running; so is a taken name on restore', async () => {
    const c = await Container.create(ContainerConfig.builder().name('ck-userns').image(IMAGE).command(['sleep', '30']).build(), { runtime: rt });
    await c.start();
    const err = await c.checkpoint({ path: join(dir, 'userns') }).catch((e: unknown) => e);
    expect((err as RuntimeError).code).toBe('EUNSUPPORTED');
    expect((err as RuntimeError).message).toMatch(/user namespace.*userNamespace: false/);
    expect(existsSync(join(dir, 'userns'))).toBe(false);
    expect((await c.status()).state).toBe('running');
    await c.remove({ force: true });

    const k = await Container.create(counter('ck-taken'), { runtime: rt });
    await k.start();
    const path = join(dir, 'taken');
    await k.checkpoint({ path, leaveRunning: true });
    const taken = await Container.restore(path, { runtime: rt }).catch((e: unknown) => e);
    expect((taken as RuntimeError).code).toBe('EEXIST');
    await k.remove({ force: true });
    expect(leftovers(rt)).toEqual(CLEAN);
  });

  it('a dump CRIU refuses leaves the container running as before and no directory; a restore CRIU fails leaves nothing', async () => {
    // An open file that was deleted, larger than CRIU's ghost-file limit (1 MiB): CRIU refuses it.
    const cfg = ContainerConfig.builder()
      .name('ck-refused')
      .image(IMAGE)
      .security({ userNamespace: false })
      .command(['/bin/sh', '-c', 'dd if=/dev/zero of=/tmp/big bs=1M count=3 2>/dev/null; exec 3</tmp/big; rm /tmp/big; i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done'])
      .build();
    const c = await Container.create(cfg, { runtime: rt });
    await c.start();
    await sleep(400);
    const path = join(dir, 'refused');
    const err = await c.checkpoint({ path }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).step).toBe('checkpoint');
    expect((err as RuntimeError).message).toMatch(/criu dump failed: .*ghost/i);
    expect(existsSync(path)).toBe(false);
    expect((await c.status()).state).toBe('running');
    const n = await count(c);
    await sleep(300);
    expect(await count(c)).toBeGreaterThan(n); // thawed: it runs on
    await c.remove({ force: true });

    // A CRIU image damaged, with the manifest made to agree: the restore gets as far as CRIU.
    const k = await Container.create(counter('ck-badimage'), { runtime: rt });
    await k.start();
    await sleep(200);
    const bad = join(dir, 'badimage');
    await k.checkpoint({ path: bad });
    await k.remove();
    const m = JSON.parse(readFileSync(join(bad, 'checkpoint.json'), 'utf8')) as { files: Record<string, { sha256: string; size: number }> };
    const core = Object.keys(m.files).find((f) => /images\/final\/core-\d+\.img$/.test(f))!;
    const bytes = readFileSync(join(bad, core));
    bytes.fill(0x5a, 8);
    writeFileSync(join(bad, core), bytes);
    m.files[core] = { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    writeFileSync(join(bad, 'checkpoint.json'), JSON.stringify(m));
    const failed = await Container.restore(bad, { runtime: rt, name: 'ck-badimage-2' }).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(RuntimeError);
    expect((failed as RuntimeError).step).toBe('restore');
    expect((failed as RuntimeError).message).toMatch(/criu restore/);
    expect(leftovers(rt)).toEqual(CLEAN);
  });

  it('exports a checkpoint as one archive (zstd), imports it checked by digest, and restores from it', async () => {
    const c = await Container.create(counter('ck-export'), { runtime: rt });
    await c.start();
    await sleep(300);
    const path = join(dir, 'export');
    await c.checkpoint({ path });
    await c.remove();
    const archive = join(dir, 'export.tar.zst');
    const digest = await exportCheckpoint(path, archive, { zstd: true });
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    const bad = await importCheckpoint(archive, join(dir, 'imported-bad'), { sha256: '0'.repeat(64) }).catch((e: unknown) => e);
    expect((bad as RuntimeError).message).toMatch(/SHA-256 .* is not the expected/);
    expect(existsSync(join(dir, 'imported-bad'))).toBe(false);
    const m = await importCheckpoint(archive, join(dir, 'imported'), { sha256: digest });
    expect(m.container.name).toBe('ck-export');
    const d = await Container.restore(join(dir, 'imported'), { runtime: rt });
    expect(await count(d)).toBeGreaterThan(1);
    await d.remove({ force: true });
    expect(leftovers(rt)).toEqual(CLEAN);
  });

  it('live migration to another runtime over a TCP connection loses no memory or file write and reports its downtime', async () => {
    const target = testRuntime({ cgroupParent: `stratoswarm-test-target-${process.pid}` });
    try {
      const cfg = ContainerConfig.builder()
        .name('ck-migrant')
        .image(IMAGE)
        .security({ userNamespace: false })
        .memoryLimit(256 * 1024 * 1024)
        .volume({ source: join(process.cwd(), 'build/fixtures'), target: '/fixtures', readOnly: true })
        .command(['/fixtures/memwriter', '32', '/seq'])
        .build();
      const c = await Container.create(cfg, { runtime: rt });
      await c.start();
      await sleep(500);
      // The stream goes through a real loopback TCP connection, as between two nodes.
      const server = createServer();
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      const accepted = new Promise<Socket>((r) => server.once('connection', r));
      const through = (s: Readable): Readable => {
        const out = new PassThrough();
        const sock = connect(port, '127.0.0.1');
        s.pipe(sock);
        void accepted.then((inbound) => inbound.pipe(out));
        return out;
      };
      const r = await c.migrate(target.runtime, { through });
      server.close();
      expect((await c.status()).state).toBe('removed');
      expect(r.downtimeMs).toBeGreaterThan(0);
      expect(r.totalMs).toBeGreaterThanOrEqual(r.downtimeMs);
      const d = r.container;
      expect(d.runtime).toBe(target.runtime);
      expect((await d.status()).state).toBe('running');
      await sleep(400);
      const seq = (await d.exec(['cat', '/seq'])).stdout.trim().split('\n').map(Number);
      // Every number once, in order, from the first to the last: nothing written was lost.
      seq.forEach((n, i) => expect(n).toBe(seq[0]! + i));
      expect(seq.length).toBeGreaterThan(1000);
      // The memory check inside found every page as it left it, and it still runs.
      expect((await d.logs()).stderr).not.toContain('CORRUPT');
      expect((await d.status()).state).toBe('running');
      await d.remove({ force: true });
      expect(leftovers(rt)).toEqual(CLEAN);
      expect(leftovers(target.runtime)).toEqual(CLEAN);
    } finally {
      await target.cleanup();
    }
  });

  it('the CLI: run --userns=host, checkpoint --export, restore from the archive, migrate to another state root', async () => {
    const target = testRuntime({ cgroupParent: `stratoswarm-test-cli-target-${process.pid}` });
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STRATOSWARM_'))), STRATOSWARM_CGROUP_PARENT: rt.options.cgroupParent };
    const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, '--state-root', rt.options.stateRoot, '--image-root', rt.options.imageRoot, ...args], { encoding: 'utf8', env });
    try {
      const run = cli('run', '-d', '--userns=host', '--name', 'ck-cli', IMAGE, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done');
      expect(run.status, run.stderr).toBe(0);
      const refused = cli('run', '-d', '--userns=nope', IMAGE, 'true');
      expect(refused.status).toBe(125);
      expect(refused.stderr).toMatch(/--userns: "nope" is not private or host/);
      await sleep(400);
      const archive = join(dir, 'cli.tar.zst');
      const ck = cli('checkpoint', 'ck-cli', '--export', archive, '--format', 'json');
      expect(ck.status, ck.stderr).toBe(0);
      const out = JSON.parse(ck.stdout) as { path: string; archive: { sha256: string } };
      expect(existsSync(archive)).toBe(true);
      expect(cli('rm', 'ck-cli').status).toBe(0);
      const wrong = cli('restore', archive, '--sha256', 'f'.repeat(64));
      expect(wrong.status).toBe(125);
      expect(wrong.stderr).toMatch(/SHA-256 .* is not the expected/);
      const back = cli('restore', archive, '--sha256', out.archive.sha256, '--name', 'ck-cli-2');
      expect(back.status, back.stderr).toBe(0);
      expect(back.stdout.trim()).toBe('ck-cli-2');
      const d = await Container.load('ck-cli-2', { runtime: rt });
      expect(await count(d)).toBeGreaterThan(1);
      const mig = cli('migrate', 'ck-cli-2', '--to-state-root', target.stateRoot, '--to-image-root', target.runtime.options.imageRoot, '--to-cgroup-parent', target.runtime.options.cgroupParent, '--format', 'json');
      expect(mig.status, mig.stderr).toBe(0);
      expect(JSON.parse(mig.stdout).downtimeMs).toBeGreaterThan(0);
      const moved = await Container.load('ck-cli-2', { runtime: target.runtime });
      expect((await moved.status()).state).toBe('running');
      expect(await count(moved)).toBeGreaterThan(1);
      await moved.remove({ force: true });
      expect(leftovers(rt)).toEqual(CLEAN);
    } finally {
      await target.cleanup();
    }
  });
});
