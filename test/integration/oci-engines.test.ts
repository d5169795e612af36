/**
 * Real engines driving stratoswarm-oci: podman (storage in a temporary root, cgroupfs, file
 * events, the NOFILE/NPROC limits a host without CAP_SYS_RESOURCE can give) and containerd
 * (its own config, socket, root and state, stopped at the end) with `ctr run --runc-binary`.
 * Each is skipped, saying why, when it is not installed.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { personalityResources } from '../../src/oci/personality.js';
import { busyboxMissing, ociEnv, removeLibpodParent, type OciEnv } from '../helpers/oci.js';
import { ptyUnavailable, runInPty } from '../helpers/pty.js';
import { SKIP_REASON } from '../helpers/runtime.js';
import { skipBecause, skipTest } from '../helpers/skip.js';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = (cmds: string[], pkg: string) => (cmds.every(has) ? undefined : `needs ${cmds.join(', ')} (Debian ${pkg})`);
const UNLIMITED = '9223372036854771712';

describe.skipIf(skipBecause(SKIP_REASON || busyboxMissing() || missing(['podman', 'conmon'], 'podman'), 'podman --runtime tests'))('podman with --runtime stratoswarm-oci', () => {
  let e: OciEnv;
  let podmanArgs: string[];
  const cgroupsLeft: string[] = [];
  const IMAGE = 'localhost/stratoswarm-oci-test';
  const RUN_FLAGS = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];
  const podman = (args: string[], timeout = 60_000): SpawnSyncReturns<string> => spawnSync('podman', [...podmanArgs, ...args], { encoding: 'utf8', timeout });

  beforeAll(() => {
    e = ociEnv();
    const p = join(e.dir, 'podman');
    podmanArgs = ['--root', `${p}/root`, '--runroot', `${p}/runroot`, '--tmpdir', `${p}/tmp`, '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--storage-driver', 'overlay', '--runtime', e.wrapper];
    const tar = spawnSync('tar', ['-C', e.rootfs, '-c', '.'], { maxBuffer: 64 << 20 });
    const r = spawnSync('podman', [...podmanArgs, 'import', '-', IMAGE], { input: tar.stdout, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`podman import: ${r.stderr}`);
  });
  afterAll(async () => {
    if (!e) return;
    podman(['rm', '-af', '-t', '0']);
    // Unmounts and removes podman's storage (its overlay mounts live under the private root).
    podman(['system', 'reset', '-f']);
    e.cleanup();
    // The cgroups podman made above its containers': conmon's holds the runtime's resident
    // server and spawner when a call under conmon started them, until cleanup stops them.
    for (const m of fs.readdirSync('/sys/fs/cgroup'))
      for (const d of cgroupsLeft)
        for (let i = 0; i < 50 && fs.existsSync(`/sys/fs/cgroup/${m}${d}`); i++) {
          try {
            fs.rmdirSync(`/sys/fs/cgroup/${m}${d}`);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || i === 49) throw err;
            await delay(100);
          }
        }
  });

  it('run --rm: output and exit code', () => {
    const r = podman(['run', '--rm', ...RUN_FLAGS, IMAGE, 'sh', '-c', 'echo hello-from-podman; exit 7']);
    expect(r.stdout, r.stderr).toBe('hello-from-podman\n');
    expect(r.status).toBe(7);
  });

  it('run -d, exec, logs, stop, rm', () => {
    const run = podman(['run', '-d', ...RUN_FLAGS, '--name', 'svc', IMAGE, 'sh', '-c', 'echo started; trap "echo stopping; exit 0" TERM; while sleep 0.1; do :; done']);
    expect(run.status, run.stderr).toBe(0);
    const ex = podman(['exec', 'svc', 'sh', '-c', 'echo exec-out-$((6*7)); exit 3']);
    expect(ex.stdout, ex.stderr).toBe('exec-out-42\n');
    expect(ex.status).toBe(3);
    expect(podman(['logs', 'svc']).stdout).toContain('started');
    const stop = podman(['stop', '-t', '10', 'svc']);
    expect(stop.status, stop.stderr).toBe(0);
    expect(podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', 'svc']).stdout.trim()).toBe('exited 0');
    expect(podman(['logs', 'svc']).stdout).toContain('stopping');
    expect(podman(['rm', 'svc']).status).toBe(0);
  });

  it('run -it: a terminal through the console socket', async (ctx) => {
    const why = ptyUnavailable();
    if (why) return skipTest(ctx, 'podman run -it', why);
    const s = runInPty(['podman', ...podmanArgs, 'run', '-it', '--rm', ...RUN_FLAGS, IMAGE, 'sh']);
    await s.until(/\/ # /, 30_000);
    s.type('tty; echo typed-$((6*7)); exit 5\r');
    const code = await s.exit;
    // The terminal is the host's pty slave, bound at /dev/console (as the library binds it).
    expect(s.output).toMatch(/\n\/dev\/(console|pts\/\d+)\r?\n/);
    expect(s.output).toContain('typed-42');
    expect(code).toBe(5);
  });

  it('the container\'s cgroups are where podman put them (linux.cgroupsPath), and go with it', () => {
    const parent = `/ss-podman-cg-${process.pid}`;
    const run = podman(['run', '-d', ...RUN_FLAGS, '--cgroup-parent', parent, '--name', 'cg', IMAGE, 'sleep', '100']);
    expect(run.status, run.stderr).toBe(0);
    try {
      // With cgroupfs, podman asks for <parent>/libpod-<id> (and puts conmon in <parent>/conmon).
      // podman's State.Pid is the process it waits for (the keeper, in conmon's cgroup): the
      // container's init is the one the runtime's state names.
      const id = podman(['inspect', '--format', '{{.Id}}', 'cg']).stdout.trim();
      const path = `${parent}/libpod-${id}`;
      const pid = (JSON.parse(e.run(['state', id]).stdout) as { pid: number }).pid;
      const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n').filter((l) => !l.split(':')[1]!.startsWith('name='));
      for (const l of lines) expect(l.slice(l.indexOf(':', l.indexOf(':') + 1) + 1)).toBe(path);
      expect(fs.readFileSync(`/sys/fs/cgroup/pids${path}/pids.current`, 'utf8').trim()).toBe('1');
      expect(podman(['rm', '-f', '-t', '0', 'cg']).status).toBe(0);
      expect(fs.existsSync(`/sys/fs/cgroup/memory${path}`)).toBe(false);
    } finally {
      podman(['rm', '-f', '-t', '0', 'cg']);
      cgroupsLeft.push(`${parent}/conmon`, parent);
    }
  });

  it('--network container:<other> and the default network: the joined network namespace is the one podman names', () => {
    const a = podman(['run', '-d', ...RUN_FLAGS, '--name', 'net-a', IMAGE, 'sleep', '100']);
    expect(a.status, a.stderr).toBe(0);
    try {
      const flags = RUN_FLAGS.filter((f, i) => f !== '--network' && RUN_FLAGS[i - 1] !== '--network');
      const nsOf = (name: string) => podman(['exec', name, 'readlink', '/proc/self/ns/net']).stdout.trim();
      const b = podman(['run', '--rm', ...flags, '--network', 'container:net-a', IMAGE, 'readlink', '/proc/self/ns/net']);
      expect(b.status, b.stderr).toBe(0);
      expect(b.stdout.trim()).toBe(nsOf('net-a'));
      expect(b.stdout.trim()).not.toBe(fs.readlinkSync('/proc/self/ns/net'));
      // The default network: podman makes the namespace (and its interface) and passes its path.
      const d = podman(['run', '--rm', ...flags, IMAGE, 'cat', '/proc/net/dev']);
      expect(d.status, d.stderr).toBe(0);
      expect(d.stdout).toMatch(/eth0:/);
    } finally {
      podman(['rm', '-f', '-t', '0', 'net-a']);
    }
  });

  it('--memory and --cpus are enforced inside', () => {
    const r = podman(['run', '--rm', ...RUN_FLAGS, '--memory', '64m', '--cpus', '0.5', IMAGE, 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us', '/sys/fs/cgroup/cpu/cpu.cfs_period_us']);
    expect(r.stdout.split('\n').slice(0, 3), r.stderr).toEqual([String(64 << 20), '50000', '100000']);
  });

  it('--annotation io.stratoswarm.personality=Explorer: the personality allocates what podman left unset', () => {
    const explorer = personalityResources('Explorer', {}).resources;
    const read = (extra: string[]) => podman(['run', '--rm', ...RUN_FLAGS, ...extra, IMAGE, 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.soft_limit_in_bytes']);
    const withIt = read(['--annotation', 'io.stratoswarm.personality=Explorer']);
    expect(withIt.stdout.split('\n').slice(0, 2), withIt.stderr).toEqual([String(explorer.memoryLimit), String(explorer.memoryReservation)]);
    expect(read([]).stdout.split('\n')[0]).toBe(UNLIMITED);
    const bad = read(['--annotation', 'io.stratoswarm.personality=Nobody']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/unknown personality "Nobody"/);
  });
});

// podman (cgroupfs) puts conmon under libpod_parent/ in every hierarchy: removed once
// empty, after everything else (podman's cleanup processes may still be exiting).
afterAll(async () => {
  for (let i = 0; i < 100 && removeLibpodParent() > 0; i++) await delay(50);
});

describe.skipIf(skipBecause(SKIP_REASON || busyboxMissing() || missing(['containerd', 'ctr', 'containerd-shim-runc-v2'], 'containerd'), 'containerd ctr tests'))('containerd: ctr run --runc-binary stratoswarm-oci', () => {
  let e: OciEnv;
  let sock: string;
  let daemon: ReturnType<typeof spawn> | undefined;
  const ctr = (args: string[]) => spawnSync('ctr', ['-a', sock, ...args], { encoding: 'utf8', timeout: 60_000 });

  beforeAll(async () => {
    e = ociEnv();
    const c = join(e.dir, 'containerd');
    fs.mkdirSync(c);
    sock = join(c, 'c.sock');
    fs.writeFileSync(
      join(c, 'config.toml'),
      [`version = 2`, `root = "${c}/root"`, `state = "${c}/state"`, `disabled_plugins = ["io.containerd.grpc.v1.cri"]`, `[grpc]`, `  address = "${sock}"`, `[ttrpc]`, `  address = "${sock}.ttrpc"`, `[debug]`, `  address = "${c}/debug.sock"`].join('\n'),
    );
    daemon = spawn('containerd', ['--config', join(c, 'config.toml')], { stdio: ['ignore', 'ignore', fs.openSync(join(c, 'log'), 'w')] });
    for (let i = 0; i < 500 && ctr(['version']).status !== 0; i++) await delay(20);
  });
  afterAll(async () => {
    if (daemon) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('exit', r));
    }
    e?.cleanup();
  });

  it('ctr run --rm: output and exit code', () => {
    const r = ctr(['run', '--rm', '--runc-binary', e.wrapper, '--rootfs', e.rootfs, 'ctr-t1', 'sh', '-c', 'echo hello-from-ctr; exit 4']);
    expect(r.stdout, r.stderr).toBe('hello-from-ctr\n');
    expect(r.status).toBe(4);
    expect(ctr(['containers', 'ls', '-q']).stdout.trim()).toBe('');
  });

  it('ctr run -d, task ps, kill, delete', async () => {
    const r = ctr(['run', '-d', '--runc-binary', e.wrapper, '--rootfs', e.rootfs, 'ctr-t2', 'sh', '-c', 'trap "exit 0" TERM; while sleep 0.1; do :; done']);
    expect(r.status, r.stderr).toBe(0);
    expect(ctr(['tasks', 'ls']).stdout).toMatch(/ctr-t2\s+\d+\s+RUNNING/);
    expect(ctr(['tasks', 'ps', 'ctr-t2']).stdout).toMatch(/\d+/);
    expect(ctr(['tasks', 'kill', 'ctr-t2']).status).toBe(0);
    for (let i = 0; i < 300 && !/STOPPED/.test(ctr(['tasks', 'ls']).stdout); i++) await delay(10);
    expect(ctr(['tasks', 'ls']).stdout).toMatch(/ctr-t2\s+\d+\s+STOPPED/);
    expect(ctr(['tasks', 'delete', 'ctr-t2']).status).toBe(0);
    expect(ctr(['containers', 'delete', 'ctr-t2']).status).toBe(0);
  });
});
