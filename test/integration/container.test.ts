/**
 * Containers against the real kernel (root): isolation, lifecycle, exit reporting, exec,
 * failed creates that leave nothing behind, re-adoption after the host agent dies, leaks.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, RuntimeError } from '../../src/index.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

if (!IS_ROOT) console.warn(`container integration tests skipped: ${SKIP_REASON}`);

const IMAGE = 'stratoswarm/base-agent:latest';
let t: TestRuntime;
let rt: Runtime;
let n = 0;

function config(script: string, more: (b: ReturnType<typeof ContainerConfig.builder>) => void = () => {}) {
  const b = ContainerConfig.builder().name(`c${++n}-${process.pid}`).image(IMAGE).command(['/bin/sh', '-c', script]);
  more(b);
  return b.build();
}

async function run(script: string, more?: Parameters<typeof config>[1]) {
  const c = await Container.create(config(script, more), { runtime: rt });
  await c.start();
  const exit = await c.wait();
  const logs = c.logs();
  await c.remove();
  return { exit, ...logs };
}

function mountsOf(root: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(root));
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function spawnerPid(stateRoot: string): number | undefined {
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('stratoswarm-spawner') && cmd.includes(stateRoot)) return Number(p);
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}

function exitedOrZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function leftovers(id: string) {
  return {
    state: fs.existsSync(runtimeParts(rt).state.dir(id)),
    storage: fs.existsSync(runtimeParts(rt).storageDir(id)),
    mounts: mountsOf(id).length,
    cgroups: runtimeParts(rt).cgroups.list().includes(id),
  };
}

describe.skipIf(!IS_ROOT)(`containers (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  beforeAll(() => {
    t = testRuntime();
    rt = t.runtime;
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  describe('isolation', () => {
    it('is pid 1 with its own hostname, root filesystem and loopback-only network', async () => {
      const marker = `/tmp/host-only-${process.pid}`;
      fs.writeFileSync(marker, 'host');
      try {
        const r = await run(
          `echo "pid=$$"; hostname; test -e ${marker} && echo host-visible || echo host-hidden; ls /sys/class/net; cat /etc/hostname`,
          (b) => b.hostname('agent-one'),
        );
        expect(r.exit).toEqual({ exitCode: 0, signal: null, oomKilled: false });
        const lines = r.stdout.trim().split('\n');
        expect(lines[0]).toBe('pid=1');
        expect(lines[1]).toBe('agent-one');
        expect(lines[2]).toBe('host-hidden');
        expect(lines[3]).toBe('lo');
      } finally {
        fs.rmSync(marker);
      }
    });

    it('writes go to its own upper layer, which goes away on remove; the image layer is untouched', async () => {
      const c = await Container.create(config('echo agent-data > /etc/agent-file; sleep 1000'), { runtime: rt });
      await c.start();
      const upperFile = join(runtimeParts(rt).storageDir(c.id), 'upper/etc/agent-file');
      for (let i = 0; i < 200 && !fs.existsSync(upperFile); i++) await new Promise((r) => setTimeout(r, 10));
      expect(fs.readFileSync(upperFile, 'utf8')).toBe('agent-data\n');
      const layer = rt.images.resolve(IMAGE).layerPaths[0]!;
      expect(fs.existsSync(join(layer, 'etc/agent-file'))).toBe(false);
      await c.remove({ force: true });
      expect(fs.existsSync(upperFile)).toBe(false);
      expect(leftovers(c.id)).toEqual({ state: false, storage: false, mounts: 0, cgroups: false });
      // Another container from the same image does not see it either.
      const r = await run('cat /etc/agent-file 2>/dev/null || echo absent');
      expect(r.stdout).toBe('absent\n');
    });

    it('mounts volumes read-write and read-only', async () => {
      const dir = fs.mkdtempSync('/tmp/ss-vol-');
      // Container root is an unprivileged host uid (user namespace): the volume must let it write.
      fs.chmodSync(dir, 0o777);
      try {
        fs.writeFileSync(join(dir, 'in.txt'), 'from host');
        const r = await run('cat /data/in.txt; echo out > /data/out.txt; echo x > /ro/x 2>/dev/null && echo ro-writable || echo ro-denied', (b) =>
          b.volume({ source: dir, target: '/data' }).volume({ source: dir, target: '/ro', readOnly: true }),
        );
        expect(r.stdout).toBe('from host' + 'ro-denied\n');
        expect(fs.readFileSync(join(dir, 'out.txt'), 'utf8')).toBe('out\n');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('maps container root to its own unprivileged host id range; image files still look root-owned', async () => {
      const dir = fs.mkdtempSync('/tmp/ss-userns-');
      fs.chmodSync(dir, 0o777);
      const a = await Container.create(config('sleep 1000', (b) => b.volume({ source: dir, target: '/shared', idmap: false })), { runtime: rt });
      const b = await Container.create(config('sleep 1000'), { runtime: rt });
      try {
        await a.start();
        await b.start();
        const ra = a.record().idRange!;
        const rb = b.record().idRange!;
        expect(ra.hostId).toBeGreaterThanOrEqual(100000);
        // Ranges never overlap.
        expect(ra.hostId + ra.size <= rb.hostId || rb.hostId + rb.size <= ra.hostId).toBe(true);
        const r = await a.exec(['/bin/sh', '-c', 'cat /proc/self/uid_map; stat -c "%u:%g" /bin/busybox /etc/passwd /; id -u; touch /shared/made-inside; echo "0 0 1" > /proc/self/uid_map 2>/dev/null && echo map-written || echo map-refused']);
        const lines = r.stdout.trim().split('\n');
        expect(lines[0]!.trim().split(/\s+/)).toEqual(['0', String(ra.hostId), String(ra.size)]);
        expect(lines.slice(1, 4)).toEqual(['0:0', '0:0', '0:0']);
        expect(lines[4]).toBe('0');
        expect(lines[5]).toBe('map-refused');
        // On the host, the container's root is the unprivileged base of its range ...
        const status = fs.readFileSync(`/proc/${a.pid}/status`, 'utf8');
        expect(status).toMatch(new RegExp(`^Uid:\\s+${ra.hostId}\\s`, 'm'));
        // ... files it creates on a plainly mapped volume are owned by the mapped host ids ...
        expect(fs.statSync(join(dir, 'made-inside')).uid).toBe(ra.hostId);
        // ... and the shared image layer was not chowned.
        expect(fs.statSync(join(rt.images.resolve(IMAGE).layerPaths[0]!, 'bin/busybox')).uid).toBe(0);
      } finally {
        await a.remove({ force: true });
        await b.remove({ force: true });
        fs.rmSync(dir, { recursive: true, force: true });
      }
      expect(runtimeParts(rt).idRanges.claims().map((c) => c.owner)).not.toContain(a.id);
    });

    it('runs as the configured user with the configured environment and working directory', async () => {
      const r = await run('id -u; id -g; pwd; echo "$GREETING"', (b) => b.user('agent').env({ GREETING: 'hello' }).workingDir('/home/agent'));
      expect(r.stdout).toBe('1000\n1000\n/home/agent\nhello\n');
    });
  });

  describe('lifecycle', () => {
    it('goes through every state and refuses illegal transitions, naming both states', async () => {
      const c = await Container.create(config('sleep 1000'), { runtime: rt });
      const seen: string[] = [];
      c.on('state', (s: { from: string; to: string }) => seen.push(`${s.from}>${s.to}`));
      expect((await c.status()).state).toBe('created');
      await expect(c.exec(['true'])).rejects.toMatchObject({ code: 'ESTATE' });
      await expect(c.resume()).rejects.toThrow(/cannot go from created to running/);
      await expect(c.pause()).rejects.toThrow(/cannot go from created to paused/);
      await c.start();
      await expect(c.start()).rejects.toThrow(/cannot go from running to running/);
      await expect(c.resume()).rejects.toThrow(/cannot go from running to running/);
      await expect(c.remove()).rejects.toThrow(/cannot go from running to removed/);
      {
        await c.pause();
        expect((await c.status()).state).toBe('paused');
        await expect(c.pause()).rejects.toThrow(/cannot go from paused to paused/);
        await c.resume();
      }
      const st = await c.stop({ timeoutMs: 200 });
      expect(st.signal).toBe('SIGKILL'); // pid 1 without a handler ignores SIGTERM
      await expect(c.start()).rejects.toThrow(/cannot go from stopped to running/);
      await expect(c.pause()).rejects.toThrow(/cannot go from stopped to paused/);
      await c.stop(); // stopping a stopped container does nothing, as in Docker
      await c.remove();
      await expect(c.start()).rejects.toThrow(/cannot go from removed to running/);
      expect(seen).toEqual([
        'created>running',
        'running>paused',
        'paused>running',
        'running>stopped',
        'stopped>removed',
      ]);
    });

    it('serializes concurrent start() and stop(): one start wins, both stops see the same exit', async () => {
      const c = await Container.create(config('sleep 1000'), { runtime: rt });
      const starts = await Promise.allSettled([c.start(), c.start()]);
      expect(starts.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
      const rejected = starts.find((s) => s.status === 'rejected') as PromiseRejectedResult;
      expect(rejected.reason).toBeInstanceOf(RuntimeError);
      expect(rejected.reason.code).toBe('ESTATE');
      const [a, b] = await Promise.all([c.stop({ timeoutMs: 100 }), c.stop({ timeoutMs: 100 })]);
      expect(a).toBe(b);
      await c.remove();
    });

    it('refuses a second container with a name in use, and frees the name on remove', async () => {
      const first = await Container.create(config('sleep 1000', (b) => b.name(`named-${process.pid}`)), { runtime: rt });
      const dup = await Container.create(config('true', (b) => b.name(`named-${process.pid}`)), { runtime: rt }).catch((e: unknown) => e);
      expect(dup).toBeInstanceOf(RuntimeError);
      expect((dup as RuntimeError).code).toBe('EEXIST');
      expect((dup as Error).message).toContain(first.id);
      expect((await Container.load(`named-${process.pid}`, { runtime: rt })).id).toBe(first.id);
      await first.remove();
      const second = await Container.create(config('true', (b) => b.name(`named-${process.pid}`)), { runtime: rt });
      await second.remove();
    });

    it('a created container can be removed without starting it', async () => {
      const c = await Container.create(config('echo never'), { runtime: rt });
      await c.remove();
      expect(leftovers(c.id)).toEqual({ state: false, storage: false, mounts: 0, cgroups: false });
    });
  });

  describe('exit reporting', () => {
    it('reports exit codes and signals exactly', async () => {
      expect((await run('exit 7')).exit).toEqual({ exitCode: 7, signal: null, oomKilled: false });
      expect((await run('exit 0')).exit.exitCode).toBe(0);
      // pid 1 can take a signal it has a handler for: re-raise it with the default action.
      const killed = await run('kill -9 $$');
      expect(killed.exit.exitCode).toBe(0); // the kernel protects pid 1 from its own SIGKILL
      const c = await Container.create(config('sleep 1000'), { runtime: rt });
      await c.start();
      await c.kill('SIGUSR1'); // no handler in pid 1: ignored
      await new Promise((r) => setTimeout(r, 100));
      expect(c.state).toBe('running');
      await c.kill('SIGKILL');
      expect(await c.wait()).toEqual({ exitCode: null, signal: 'SIGKILL', oomKilled: false });
      expect((await c.status()).signal).toBe('SIGKILL');
      await c.remove();
    });

    it('stop() sends SIGTERM first and a handler can exit cleanly', async () => {
      const c = await Container.create(config('trap "exit 3" TERM; while true; do sleep 0.05; done'), { runtime: rt });
      await c.start();
      await new Promise((r) => setTimeout(r, 100));
      expect(await c.stop({ timeoutMs: 5000 })).toEqual({ exitCode: 3, signal: null, oomKilled: false });
      await c.remove();
    });

    it('stop() escalates to SIGKILL for a process that ignores SIGTERM', async () => {
      const c = await Container.create(config('trap "" TERM; while true; do sleep 0.05; done'), { runtime: rt });
      await c.start();
      const t0 = Date.now();
      const st = await c.stop({ timeoutMs: 300 });
      expect(st.signal).toBe('SIGKILL');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      await c.remove();
    });

    it('wait() resolves once, with the same result for every caller', async () => {
      const c = await Container.create(config('sleep 0.2; exit 5'), { runtime: rt });
      let exits = 0;
      c.on('exit', () => exits++);
      const w1 = c.wait();
      await c.start();
      const w2 = c.wait();
      const [a, b] = await Promise.all([w1, w2]);
      expect(a).toBe(b);
      expect(a.exitCode).toBe(5);
      expect(await c.wait()).toBe(a);
      expect(exits).toBe(1);
      await c.remove();
    });

    it('streams stdout and stderr and keeps them in the log files', async () => {
      const c = await Container.create(config('echo one; sleep 0.2; echo two; echo err >&2'), { runtime: rt });
      const chunks: string[] = [];
      const out = c.stdout;
      out.on('data', (d: Buffer) => chunks.push(d.toString()));
      const ended = new Promise((r) => out.on('end', r));
      await c.start();
      await ended;
      expect(chunks.join('')).toBe('one\ntwo\n');
      expect(c.logs()).toEqual({ stdout: 'one\ntwo\n', stderr: 'err\n' });
      await c.remove();
    });
  });

  describe('exec', () => {
    it('runs inside the container namespaces and returns output and exit code', async () => {
      const c = await Container.create(config('sleep 1000', (b) => b.hostname('exec-host')), { runtime: rt });
      await c.start();
      const r = await c.exec(['/bin/sh', '-c', 'hostname; echo $$; cat /proc/1/cmdline | tr "\\0" " "; echo; for n in pid mnt net; do readlink /proc/self/ns/$n; done; echo oops >&2; exit 3']);
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toBe('oops\n');
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).toBe('exec-host');
      expect(Number(lines[1])).toBeGreaterThan(1);
      expect(lines[2]).toBe('sleep 1000 '); // busybox sh execs its last command in place
      const initNs = ['pid', 'mnt', 'net'].map((ns) => fs.readlinkSync(`/proc/${c.pid}/ns/${ns}`));
      expect(lines.slice(3)).toEqual(initNs);
      expect(initNs[0]).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
      const piped = await c.exec(['cat'], { stdin: 'through stdin' });
      expect(piped.stdout).toBe('through stdin');
      const missing = await c.exec(['/no/such/binary']).catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(RuntimeError);
      expect((missing as RuntimeError).step).toBe('resolve-exec');
      await c.remove({ force: true });
    });
  });

  describe('failed starts name the step and leave the container stopped', () => {
    // As with docker and podman, what the process itself needs (its executable, its
    // working directory) is looked up when it starts: the init parks before that.
    const cases: [string, () => ContainerConfig, string][] = [
      ['a missing command', () => config('x', (b) => b.command(['/bin/no-such-command'])), 'resolve-exec'],
      ['a uid that may not enter the working directory', () => config('true', (b) => b.user('4242:4242').workingDir('/root')), 'chdir'],
    ];
    for (const [what, make, step] of cases) {
      it(`${what} → RuntimeError at step ${step} from start()`, async () => {
        const c = await Container.create(make(), { runtime: rt });
        const err = await c.start().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RuntimeError);
        expect((err as RuntimeError).step).toBe(step);
        expect((err as RuntimeError).containerId).toBe(c.id);
        const exit = await c.wait();
        expect(exit.exitCode).toBe(127);
        expect(c.state).toBe('stopped');
        await c.remove();
      });
    }
  });

  describe('failed creates leave nothing behind', () => {
    const cases: [string, () => ContainerConfig, string][] = [
      ['a bad image', () => ContainerConfig.builder().name(`bad-image-${process.pid}`).image('no/such-image:1').command(['true']).build(), 'image'],
      ['a non-existent user', () => config('true', (b) => b.user('nosuchuser')), 'user'],
      ['a missing volume source', () => config('true', (b) => b.volume({ source: '/no/such/dir', target: '/data' })), 'volume'],
    ];
    for (const [what, make, step] of cases) {
      it(`${what} → RuntimeError at step ${step}`, async () => {
        const before = { mounts: mountsOf(t.stateRoot).length + mountsOf(rt.options.imageRoot).length, ids: runtimeParts(rt).state.ids().length, cgroups: runtimeParts(rt).cgroups.list().length };
        const sp = spawnerPid(t.stateRoot);
        const kidsBefore = sp ? childrenOf(sp).length : 0;
        const err = await Container.create(make(), { runtime: rt }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RuntimeError);
        expect((err as RuntimeError).step).toBe(step);
        expect((err as RuntimeError).message.length).toBeGreaterThan(10);
        expect(mountsOf(t.stateRoot).length + mountsOf(rt.options.imageRoot).length).toBe(before.mounts);
        expect(runtimeParts(rt).state.ids().length).toBe(before.ids);
        expect(fs.readdirSync(join(rt.options.imageRoot, 'containers')).filter((d) => !runtimeParts(rt).state.ids().includes(d))).toEqual([]);
        expect(runtimeParts(rt).cgroups.list().length).toBe(before.cgroups);
        const sp2 = spawnerPid(t.stateRoot);
        expect(sp2 ? childrenOf(sp2).length : 0).toBe(kidsBefore);
      });
    }

    it('an unwritable read-write volume → RuntimeError at step volume', async () => {
      const src = fs.mkdtempSync('/tmp/ss-rovol-');
      const ro = fs.mkdtempSync('/tmp/ss-romnt-');
      execFileSync('mount', ['--bind', src, ro]);
      execFileSync('mount', ['-o', 'remount,bind,ro', ro]);
      try {
        const ids = runtimeParts(rt).state.ids().length;
        const err = await Container.create(config('true', (b) => b.volume({ source: ro, target: '/data' })), { runtime: rt }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(RuntimeError);
        expect((err as RuntimeError).step).toBe('volume');
        expect((err as RuntimeError).errno).toBe('EROFS');
        expect(runtimeParts(rt).state.ids().length).toBe(ids);
      } finally {
        execFileSync('umount', [ro]);
        fs.rmSync(ro, { recursive: true, force: true });
        fs.rmSync(src, { recursive: true, force: true });
      }
    });
  });

  describe('re-adoption', () => {
    it('survives the host agent being SIGKILLed: a fresh process sees the true exit code and stops the rest', async () => {
      const agent = spawn(process.execPath, [join(__dirname, '../fixtures/host-agent.mjs'), t.stateRoot, rt.options.imageRoot, rt.options.cgroupParent], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        agent.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('\n')) resolve(buf.split('\n')[0]!);
        });
        agent.on('exit', (code) => reject(new Error(`host agent exited with ${code}`)));
      });
      const ids = JSON.parse(line) as { long1: string; short: string; long2: string };
      agent.kill('SIGKILL');
      await new Promise((r) => agent.once('exit', r));
      // "short" exits (code 42) while no host agent is alive.
      for (let i = 0; i < 300 && !runtimeParts(rt).state.exit(ids.short); i++) await new Promise((r) => setTimeout(r, 10));

      const fresh = new Runtime({ ...rt.options, logger: rt.logger, env: {}, cgroups: runtimeParts(rt).cgroups });
      try {
        const listed = await Container.list({ runtime: fresh });
        const byName = Object.fromEntries(listed.map((s) => [s.name, s]));
        expect(byName.short).toMatchObject({ state: 'stopped', exitCode: 42 });
        expect(byName.long1!.state).toBe('running');
        expect(byName.long2!.state).toBe('running');
        const short = await Container.load(ids.short, { runtime: fresh });
        expect(await short.wait()).toEqual({ exitCode: 42, signal: null, oomKilled: false });
        const long1 = await Container.load('long1', { runtime: fresh });
        const long2 = await Container.load(ids.long2, { runtime: fresh });
        expect(await long1.stop({ timeoutMs: 200 })).toMatchObject({ signal: 'SIGKILL' });
        expect(await long2.stop({ timeoutMs: 5000 })).toEqual({ exitCode: 0, signal: null, oomKilled: false });
        for (const c of [short, long1, long2]) await c.remove();
        for (const id of Object.values(ids)) expect(leftovers(id)).toEqual({ state: false, storage: false, mounts: 0, cgroups: false });
      } finally {
        await fresh.close();
      }
    });
  });

  describe('spawner loss', () => {
    it('a killed spawner leaves containers running; a new one adopts them, execs into and stops them', async () => {
      const c = await Container.create(config('trap "exit 0" TERM; while true; do sleep 0.05; done', (b) => b.hostname('adopted')), { runtime: rt });
      await c.start();
      const old = spawnerPid(t.stateRoot)!;
      process.kill(old, 'SIGKILL');
      // Gone means its files are closed too: /proc/<pid>/cmdline empties (mm released) before
      // the kernel closes its sockets, and a request sent in between is one in flight when
      // the spawner died, which fails with ENOSPAWNER by design.
      for (let i = 0; i < 200 && !exitedOrZombie(old); i++) await new Promise((r) => setTimeout(r, 10));
      // The runtime that was using it goes on: its next request starts a new spawner and
      // renews its exit subscription, so a new container's exit still arrives.
      const next = await Container.create(config('exit 9'), { runtime: rt });
      await next.start();
      expect(await next.wait()).toEqual({ exitCode: 9, signal: null, oomKilled: false });
      await next.remove();
      const fresh = new Runtime({ ...rt.options, logger: rt.logger, env: {} });
      try {
        expect((await Container.list({ runtime: fresh })).find((s) => s.id === c.id)?.state).toBe('running');
        const again = await Container.load(c.id, { runtime: fresh });
        expect(again.state).toBe('running');
        const r = await again.exec(['/bin/sh', '-c', 'echo inside; hostname']);
        // The exec entered the container's own UTS namespace, not the host's.
        expect(r.stdout).toBe('inside\nadopted\n');
        const exit = await again.stop({ timeoutMs: 5000 });
        // The exit is seen (through a pidfd), its code died with the old parent.
        expect(exit).toEqual({ exitCode: null, signal: null, oomKilled: false });
        await again.remove();
        expect(leftovers(c.id)).toEqual({ state: false, storage: false, mounts: 0, cgroups: false });
      } finally {
        await fresh.close();
      }
    });
  });

  describe('leaks', () => {
    it('100 containers created, run and removed leave no mounts, cgroups, fds or zombies', async () => {
      const fdsBefore = fs.readdirSync('/proc/self/fd').length;
      const mountsBefore = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length;
      const cgroupsBefore = runtimeParts(rt).cgroups.list().length;
      const idsBefore = runtimeParts(rt).state.ids().sort();
      for (let i = 0; i < 100; i++) {
        const r = await run(`exit ${i % 5}`);
        expect(r.exit.exitCode).toBe(i % 5);
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(fs.readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fdsBefore + 1);
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').length).toBe(mountsBefore);
      expect(runtimeParts(rt).cgroups.list().length).toBe(cgroupsBefore);
      expect(runtimeParts(rt).state.ids().sort()).toEqual(idsBefore);
      const sp = spawnerPid(t.stateRoot)!;
      const zombies = childrenOf(sp).filter((p) => {
        try {
          const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
          return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
        } catch {
          return false;
        }
      });
      expect(zombies).toEqual([]);
    });
  });
});
