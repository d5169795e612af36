/**
 * The OCI `checkpoint` and `restore` verbs: driven directly as runc's (a counter writing to
 * the engine's pipe is dumped, the container removed, restored from the bundle with a new
 * pipe, and counts on from where it was), and by podman (`podman container checkpoint` and
 * `podman container restore` with this runtime). Skipped, saying why, without CRIU or podman.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { criuBinary } from '../../src/checkpoint/criu.js';
import { busyboxMissing, OCI_CLI, ociEnv, removeLibpodParent, type OciEnv } from '../helpers/oci.js';
import { SKIP_REASON } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

function criuMissing(): string | undefined {
  try {
    criuBinary();
    return undefined;
  } catch (e) {
    return `needs CRIU: ${(e as Error).message}`;
  }
}

const internalId = (id: string) => createHash('sha256').update(id).digest('hex').slice(0, 32);
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const COUNTER = 'i=0; while :; do i=$((i+1)); echo n=$i; sleep 0.1; done';
const lastCount = (text: string) => Number([...text.matchAll(/n=(\d+)/g)].pop()?.[1] ?? 0);

/**
 * A runtime call whose stdout and stderr are a pipe (Node's own stdio "pipes" are sockets),
 * drained by a `cat` that lives as long as the container holds the pipe, as an engine's are.
 */
function withPipe(e: OciEnv, args: string[]): { exited: Promise<number | null>; text: () => string } {
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STRATOSWARM_'))), STRATOSWARM_CGROUP_PARENT: e.cgroupParent };
  const child = spawn('bash', ['-c', 'exec "$@" > >(exec cat) 2>&1', 'bash', OCI_CLI, '--root', e.root, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let text = '';
  child.stdout.on('data', (d) => (text += String(d)));
  child.stderr.on('data', (d) => (text += String(d)));
  return { exited: new Promise((r) => child.on('exit', (code) => r(code))), text: () => text };
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  for (let t = 0; t < ms && !cond(); t += 50) await delay(50);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(skipBecause(SKIP_REASON || busyboxMissing() || criuMissing(), 'OCI checkpoint and restore'))('stratoswarm-oci checkpoint and restore', () => {
  let e: OciEnv;
  beforeAll(() => {
    e = ociEnv();
  });
  afterAll(() => e?.cleanup());
  const state = (id: string) => JSON.parse(e.run(['state', id]).stdout) as { status: string; pid?: number };

  it('checkpoint --image-path --work-path ends the container; restore --bundle runs it again from where it was, on the new stdio', async () => {
    const b = e.bundle('count', (c) => {
      c.process.args = ['sh', '-c', COUNTER];
      c.root.readonly = false;
    });
    expect(e.run(['checkpoint', '--help']).status).toBe(0);
    expect(JSON.parse(e.run(['features']).stdout).annotations['org.opencontainers.runc.checkpoint.enabled']).toBe('true');
    const first = withPipe(e, ['create', '--bundle', b, 'count']);
    expect(await first.exited, first.text()).toBe(0);
    expect(e.run(['start', 'count']).status).toBe(0);
    await until('the counter', () => lastCount(first.text()) >= 5);
    const images = join(e.dir, 'ckpt');
    const work = join(e.dir, 'work');
    const ck = e.run(['checkpoint', '--image-path', images, '--work-path', work, 'count']);
    expect(ck.status, ck.stderr).toBe(0);
    // What the counter wrote before the dump reaches this process once the pipe drains.
    await delay(500);
    const at = lastCount(first.text());
    expect(fs.existsSync(join(images, 'inventory.img'))).toBe(true);
    expect(fs.existsSync(join(work, 'dump.log'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(join(images, 'descriptors.json'), 'utf8'))[1]).toMatch(/^pipe:\[\d+\]$/);
    // As runc: the checkpointed container is gone.
    expect(e.run(['state', 'count']).stderr).toMatch(/does not exist/);
    await delay(300);
    expect(lastCount(first.text())).toBe(at);

    // A restore CRIU fails on (its process tree image gone) leaves nothing behind.
    const broken = join(e.dir, 'ckpt-broken');
    fs.cpSync(images, broken, { recursive: true });
    fs.rmSync(join(broken, 'pstree.img'));
    const bad = e.run(['restore', '--image-path', broken, '--bundle', b, 'count']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^stratoswarm-oci: restore container count: step restore \(criu restore (exited with status|was killed by signal) \d+\)/);
    expect(e.run(['state', 'count']).stderr).toMatch(/does not exist/);
    expect(fs.existsSync(join(e.root, internalId('count')))).toBe(false);

    const pidFile = join(e.dir, 'count.pid');
    const second = withPipe(e, ['restore', '--image-path', images, '--work-path', work, '--bundle', b, '--detach', '--pid-file', pidFile, 'count']);
    expect(await second.exited, second.text()).toBe(0);
    const s = state('count');
    expect(s.status).toBe('running');
    expect(s.pid).toBeGreaterThan(0);
    expect(fs.existsSync(`/proc/${Number(fs.readFileSync(pidFile, 'utf8'))}`)).toBe(true);
    // The pid state reports is the restored shell's, in the container's cgroups.
    expect(fs.readFileSync(`/proc/${s.pid}/cmdline`, 'utf8')).toContain(COUNTER);
    expect(JSON.parse(e.run(['ps', '--format', 'json', 'count']).stdout)).toContain(s.pid);
    await until('the restored counter', () => lastCount(second.text()) >= at + 3);
    // It counts on: the first number on the new pipe follows the last on the old one.
    expect(Number(/n=(\d+)/.exec(second.text())![1])).toBe(at + 1);
    expect(e.run(['kill', 'count', 'KILL']).status).toBe(0);
    for (let i = 0; i < 100 && state('count').status !== 'stopped'; i++) await delay(20);
    expect(e.run(['delete', 'count']).status).toBe(0);
  });

  it('--leave-running keeps the container; restore refuses an id in use and a directory without a checkpoint', async () => {
    const b = e.bundle('keep', (c) => {
      c.process.args = ['sh', '-c', COUNTER];
    });
    const run = withPipe(e, ['run', '--bundle', b, 'keep']);
    expect(await run.exited, run.text()).toBe(0);
    await until('the counter', () => lastCount(run.text()) >= 2);
    const images = join(e.dir, 'keep-ckpt');
    const ck = e.run(['checkpoint', '--image-path', images, '--leave-running', 'keep']);
    expect(ck.status, ck.stderr).toBe(0);
    await delay(300);
    const at = lastCount(run.text());
    await until('the counter after the dump', () => lastCount(run.text()) > at + 2);
    expect(state('keep').status).toBe('running');
    // A pre-dump needs dirty-page tracking: without it, it says so and the container runs on.
    const tracking = spawnSync(criuBinary(), ['check', '--feature', 'mem_dirty_track']).status === 0;
    const pre = e.run(['checkpoint', '--pre-dump', '--image-path', join(e.dir, 'keep-pre'), 'keep']);
    if (tracking) expect(pre.status, pre.stderr).toBe(0);
    else expect(pre.stderr).toMatch(/--pre-dump needs .*CONFIG_MEM_SOFT_DIRTY/);
    expect(state('keep').status).toBe('running');
    expect(e.run(['restore', '--image-path', images, '--bundle', b, 'keep']).stderr).toMatch(/already exists/);
    expect(e.run(['restore', '--image-path', e.dir, '--bundle', b, 'other']).stderr).toMatch(/no CRIU checkpoint/);
    expect(e.run(['delete', '--force', 'keep']).status).toBe(0);
  });
});

describe.skipIf(skipBecause(SKIP_REASON || busyboxMissing() || criuMissing() || (has('podman') && has('conmon') ? undefined : 'needs podman and conmon (Debian podman)'), 'podman checkpoint and restore'))('podman container checkpoint/restore with this runtime', () => {
  let e: OciEnv;
  let podmanArgs: string[];
  let env: NodeJS.ProcessEnv;
  let argvLog: string;
  const IMAGE = 'localhost/stratoswarm-oci-ckpt-test';
  const RUN_FLAGS = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];
  const podman = (args: string[], timeout = 60_000): SpawnSyncReturns<string> => spawnSync('podman', [...podmanArgs, ...args], { encoding: 'utf8', timeout, env });

  beforeAll(() => {
    e = ociEnv();
    const p = join(e.dir, 'podman');
    // podman checks for checkpoint support by the runtime's name (runc, or crun that answers
    // `checkpoint --help`) and asks the `criu` on its PATH for its version.
    const bin = join(e.dir, 'bin');
    fs.mkdirSync(bin);
    argvLog = join(e.dir, 'argv.log');
    fs.writeFileSync(join(bin, 'crun'), `#!/bin/bash\necho "$*" >> ${argvLog}\nexec ${e.wrapper} "$@"\n`, { mode: 0o755 });
    fs.symlinkSync(criuBinary(), join(bin, 'criu'));
    env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    podmanArgs = ['--root', `${p}/root`, '--runroot', `${p}/runroot`, '--tmpdir', `${p}/tmp`, '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--storage-driver', 'overlay', '--runtime', join(bin, 'crun')];
    const tar = spawnSync('tar', ['-C', e.rootfs, '-c', '.'], { maxBuffer: 64 << 20 });
    const r = spawnSync('podman', [...podmanArgs, 'import', '-', IMAGE], { input: tar.stdout, encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`podman import: ${r.stderr}`);
  });
  afterAll(() => {
    if (!e) return;
    podman(['rm', '-af', '-t', '0']);
    podman(['system', 'reset', '-f']);
    e.cleanup();
  });

  it('podman run -d a counter, checkpoint, restore: it counts on from where it was', async () => {
    const run = podman(['run', '-d', ...RUN_FLAGS, '--name', 'ctr', IMAGE, 'sh', '-c', COUNTER]);
    expect(run.status, run.stderr).toBe(0);
    const logs = () => podman(['logs', 'ctr']).stdout;
    await until('the counter', () => lastCount(logs()) >= 5);
    const ck = podman(['container', 'checkpoint', 'ctr']);
    expect(ck.status, ck.stderr).toBe(0);
    expect(podman(['inspect', '--format', '{{.State.Status}} {{.State.Checkpointed}}', 'ctr']).stdout.trim()).toBe('exited true');
    const at = lastCount(logs());
    expect(at).toBeGreaterThanOrEqual(5);
    const rs = podman(['container', 'restore', 'ctr']);
    expect(rs.status, rs.stderr).toBe(0);
    expect(podman(['inspect', '--format', '{{.State.Status}}', 'ctr']).stdout.trim()).toBe('running');
    await until('the restored counter', () => lastCount(logs()) >= at + 3);
    const counts = [...logs().matchAll(/n=(\d+)/g)].map((m) => Number(m[1]));
    // One count after another, no restart from 1: the restore went on where the dump stopped.
    expect(counts.slice(0, at)).toEqual(Array.from({ length: at }, (_, i) => i + 1));
    expect(counts[at]).toBe(at + 1);
    // The engine called this runtime's verbs, as it calls runc's.
    const calls = fs.readFileSync(argvLog, 'utf8');
    expect(calls).toMatch(/^checkpoint --help$/m);
    expect(calls).toMatch(/^checkpoint --image-path \S+\/checkpoint --work-path \S+ \w+$/m);
    expect(calls).toMatch(/ restore --bundle \S+ --pid-file \S+ --detach --image-path \S+\/checkpoint --work-path \S+ \w+$/m);
    const stop = podman(['stop', '-t', '1', 'ctr']);
    expect(stop.status, stop.stderr).toBe(0);
    expect(podman(['rm', 'ctr']).status).toBe(0);
  }, 120_000);

  it('checkpoint --leave-running --export, rm, restore --import (host network): the archive carries what restore needs', async () => {
    const run = podman(['run', '-d', '--network', 'host', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096', '--name', 'mig', IMAGE, 'sh', '-c', `echo file-$$ > /tmp/mark; ${COUNTER}`]);
    expect(run.status, run.stderr).toBe(0);
    const logs = () => podman(['logs', 'mig']).stdout;
    await until('the counter', () => lastCount(logs()) >= 3);
    const archive = join(e.dir, 'mig.tar.gz');
    const ck = podman(['container', 'checkpoint', '--leave-running', '--export', archive, 'mig']);
    expect(ck.status, ck.stderr).toBe(0);
    expect(podman(['inspect', '--format', '{{.State.Status}}', 'mig']).stdout.trim()).toBe('running');
    const at = lastCount(logs());
    await until('the counter after the dump', () => lastCount(logs()) >= at + 2);
    expect(podman(['rm', '-f', '-t', '0', 'mig']).status).toBe(0);
    const rs = podman(['container', 'restore', '--import', archive]);
    expect(rs.status, rs.stderr).toBe(0);
    expect(podman(['inspect', '--format', '{{.State.Status}}', 'mig']).stdout.trim()).toBe('running');
    // The log podman exported ends at the dump; the restored tree counts on from there: no
    // restart from 1, no gap (a line still in the pipe at the dump is in CRIU's image of the
    // pipe and comes out once more).
    await until('the restored counter', () => lastCount(logs()) >= at + 3);
    const counts = [...logs().matchAll(/n=(\d+)/g)].map((m) => Number(m[1]));
    expect(counts[0]).toBe(1);
    const steps = counts.slice(1).map((n, i) => n - counts[i]!);
    expect(steps.every((d) => d === 0 || d === 1), counts.join(',')).toBe(true);
    expect(steps.filter((d) => d === 0).length).toBeLessThanOrEqual(1);
    const ex = podman(['exec', 'mig', 'cat', '/tmp/mark']);
    expect(ex.stdout, ex.stderr).toMatch(/^file-\d+$/m);
    expect(podman(['rm', '-f', '-t', '0', 'mig']).status).toBe(0);
  }, 120_000);
});

// podman (cgroupfs) puts conmon under libpod_parent/ in every hierarchy: removed once empty
// (rmdir fails on one in use), after podman's cleanup processes have exited.
afterAll(async () => {
  for (let i = 0; i < 100 && removeLibpodParent() > 0; i++) await delay(50);
});
