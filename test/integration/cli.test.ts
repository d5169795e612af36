/**
 * The built `stratoswarm` command against the real kernel (root): exit codes, the detached
 * lifecycle, JSON output and one-line errors. Each invocation is a separate process on a
 * private state root, image root and cgroup parent; cleanup removes whatever is left and
 * stops the spawner those processes shared.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ptyUnavailable, runInPty } from '../helpers/pty.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const IMAGE = 'stratoswarm/base-agent';
let t: TestRuntime;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function newest(dir: string): number {
  let m = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.ts')) m = Math.max(m, fs.statSync(join(e.parentPath, e.name)).mtimeMs);
  }
  return m;
}

/** Compiles the TypeScript when dist/ is missing or older than src/. */
function ensureBuilt(): void {
  if (fs.existsSync(CLI) && fs.statSync(CLI).mtimeMs >= newest(join(ROOT, 'src'))) return;
  const r = spawnSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
}

function cliEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STRATOSWARM_')));
  env.STRATOSWARM_CGROUP_PARENT = t.runtime.options.cgroupParent;
  return env;
}

function cliArgv(args: string[]): string[] {
  return [CLI, '--state-root', t.stateRoot, '--image-root', t.runtime.options.imageRoot, ...args];
}

/** The CLI at a terminal of its own (a pseudo-terminal, 24 x 80 unless given). */
function cliInPty(args: string[], size: { rows?: number; cols?: number } = {}) {
  return runInPty([process.execPath, ...cliArgv(args)], { ...size, env: cliEnv() });
}

function cli(args: string[], opts: { timeoutMs?: number } = {}): Promise<Result> {
  const env = cliEnv();
  const argv = cliArgv(args);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A failure's stderr: exactly one line, `stratoswarm: <verb>: ...`. */
function expectOneErrorLine(r: Result, verb: string): void {
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]!.startsWith(`stratoswarm: ${verb}: `)).toBe(true);
}

describe.skipIf(!IS_ROOT)(`stratoswarm CLI (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  beforeAll(() => {
    ensureBuilt();
    t = testRuntime();
  }, 180_000);
  afterAll(async () => {
    await t?.cleanup();
  });

  it('run --rm prints the output and exits 0; the container is gone afterwards', async () => {
    const r = await cli(['run', '--rm', IMAGE, 'echo', 'hi']);
    expect(r).toMatchObject({ code: 0, stdout: 'hi\n', stderr: '' });
    const ps = await cli(['ps', '-a', '--format', 'json']);
    expect(JSON.parse(ps.stdout)).toEqual([]);
  });

  it("run exits with the container's exit code", async () => {
    const r = await cli(['run', '--rm', IMAGE, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('a command that is not found exits 127, one that cannot run 126, each with one error line', async () => {
    const missing = await cli(['run', '--rm', IMAGE, '/bin/no-such-command']);
    expect(missing.code).toBe(127);
    expectOneErrorLine(missing, 'run');
    expect(missing.stderr).toContain('resolve-exec');
    const notExecutable = await cli(['run', '--rm', IMAGE, '/etc/passwd']);
    expect(notExecutable.code).toBe(126);
    expectOneErrorLine(notExecutable, 'run');
  });

  it('runtime failures exit 125 with one line: bad flags, missing image, missing container', async () => {
    for (const [args, verb] of [
      [['run', '--memory', 'lots', IMAGE, 'true'], 'run'],
      [['run', '--rm', 'no/such-image', 'true'], 'run'],
      [['inspect', 'no-such-container'], 'inspect'],
      [['run', '--no-such-flag', IMAGE], 'run'],
    ] as const) {
      const r = await cli([...args]);
      expect(r.code, r.stderr).toBe(125);
      expectOneErrorLine(r, verb);
    }
  });

  it('run -d, then ps, inspect, exec, logs, top, stats, stop and rm by name', async () => {
    const name = `cli-${process.pid}`;
    const run = await cli(['run', '-d', '--name', name, '--memory', '64m', '--pids-limit', '32', IMAGE, 'sh', '-c', 'echo ready; echo warn >&2; exec sleep 100']);
    expect(run.code, run.stderr).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{32}$/);

    const ps = await cli(['ps']);
    expect(ps.code).toBe(0);
    expect(ps.stdout.split('\n')[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+NAMES$/);
    expect(ps.stdout).toContain(name);
    expect(ps.stdout).toContain(id.slice(0, 12));
    const psJson = JSON.parse((await cli(['ps', '--format', 'json'])).stdout);
    expect(psJson).toEqual([expect.objectContaining({ id, name, state: 'running', image: IMAGE })]);

    const inspect = await cli(['inspect', name, '--format', 'json']);
    expect(inspect.code).toBe(0);
    const [info] = JSON.parse(inspect.stdout);
    expect(info).toMatchObject({ id, name, image: IMAGE, status: { state: 'running' }, resources: { memoryLimit: 64 * 1024 * 1024, pidsLimit: 32 } });
    // An id prefix names it too.
    expect((await cli(['inspect', id.slice(0, 12)])).stdout).toContain(`Name:         ${name}`);

    expect(await cli(['exec', name, 'echo', 'ok'])).toMatchObject({ code: 0, stdout: 'ok\n' });
    expect((await cli(['exec', name, 'sh', '-c', 'exit 7'])).code).toBe(7);
    const execMissing = await cli(['exec', name, 'no-such-command']);
    expect(execMissing.code).toBe(127);
    expectOneErrorLine(execMissing, 'exec');

    const logs = await cli(['logs', name]);
    expect(logs).toMatchObject({ code: 0, stdout: 'ready\n', stderr: 'warn\n' });
    const logsJson = (await cli(['logs', '--tail', '1', '--since', '10m', '--format', 'json', name])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(logsJson).toEqual([expect.objectContaining({ stream: 'stderr', line: 'warn' })]);

    const top = JSON.parse((await cli(['top', name, '--format', 'json'])).stdout);
    expect(top.map((p: { command: string }) => p.command)).toEqual(['sleep 100']);
    const stats = JSON.parse((await cli(['stats', '--no-stream', '--format', 'json'])).stdout);
    expect(stats).toEqual([expect.objectContaining({ id, name, pids: 1, memoryLimitBytes: 64 * 1024 * 1024 })]);

    expect(await cli(['update', name, '--memory', '128m'])).toMatchObject({ code: 0, stdout: `${name}\n` });
    expect((await cli(['stop', '-t', '1', name])).stdout).toBe(`${name}\n`);
    expect(JSON.parse((await cli(['ps', '-a', '--format', 'json'])).stdout)).toEqual([expect.objectContaining({ name, state: 'stopped' })]);
    expect((await cli(['wait', name])).stdout).toBe('137\n');
    expect(await cli(['rm', name])).toMatchObject({ code: 0, stdout: `${name}\n` });
    expect(JSON.parse((await cli(['ps', '-a', '--format', 'json'])).stdout)).toEqual([]);
  });

  it('create, start -a and rm of a running container needs -f', async () => {
    const name = `cli-created-${process.pid}`;
    const created = await cli(['create', '--name', name, IMAGE, 'sh', '-c', 'echo started; exit 2']);
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse((await cli(['ps', '-a', '--format', 'json'])).stdout)).toEqual([expect.objectContaining({ name, state: 'created' })]);
    expect(await cli(['start', '-a', name])).toMatchObject({ code: 2, stdout: 'started\n' });
    await cli(['rm', name]);

    const long = `cli-long-${process.pid}`;
    expect((await cli(['run', '-d', '--name', long, IMAGE, 'sleep', '100'])).code).toBe(0);
    const refused = await cli(['rm', long]);
    expect(refused.code).not.toBe(0);
    expectOneErrorLine(refused, 'rm');
    expect((await cli(['rm', '-f', long])).code).toBe(0);
  });

  it('prints JSON that parses for images, personalities, info and version', async () => {
    const images = JSON.parse((await cli(['images', '--format', 'json'])).stdout);
    expect(images).toEqual([expect.objectContaining({ ref: 'stratoswarm/base-agent:latest', repository: 'stratoswarm/base-agent', tag: 'latest' })]);
    const personalities = JSON.parse((await cli(['personalities', '--format', 'json'])).stdout);
    expect(personalities.personalities).toHaveLength(5);
    const info = JSON.parse((await cli(['info', '--format', 'json'])).stdout);
    expect(info).toMatchObject({ stateRoot: t.stateRoot, imageRoot: t.runtime.options.imageRoot, cgroupParent: t.runtime.options.cgroupParent });
    expect(info.spawner.path).toMatch(/stratoswarm-spawner$/);
    expect(JSON.parse((await cli(['version', '--format', 'json'])).stdout).node).toBe(process.versions.node);
    expect((await cli(['images'])).stdout).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\s+LAYERS\s+PLATFORM\n/);
  });

  it('--init: pid 1 forwards SIGTERM, so stop ends a sleep at once (143); orphans are reaped', async () => {
    const name = `cli-init-${process.pid}`;
    expect((await cli(['run', '-d', '--init', '--name', name, IMAGE, 'sleep', '1000'])).code).toBe(0);
    const top = await cli(['exec', name, 'ps', '-o', 'pid,args']);
    expect(top.stdout).toMatch(/^\s*1\s+\/dev\/init -- sleep 1000$/m);
    const t0 = Date.now();
    expect((await cli(['stop', '-t', '10', name])).code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(4_000);
    expect((await cli(['wait', name])).stdout).toBe('143\n');
    const [info] = JSON.parse((await cli(['inspect', '--format', 'json', name])).stdout);
    expect(info.status).toMatchObject({ state: 'stopped', exitCode: 143 });
    await cli(['rm', name]);

    const orphans = `cli-orphans-${process.pid}`;
    expect((await cli(['run', '-d', '--init', '--name', orphans, IMAGE, 'sh', '-c', '(sleep 0.2 &); exec sleep 30'])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1000));
    const ps = await cli(['exec', orphans, 'ps', '-o', 'stat,args']);
    expect(ps.stdout.split('\n').filter((l) => /^Z/.test(l.trim()))).toEqual([]);
    expect((await cli(['rm', '-f', orphans])).code).toBe(0);
    // The init exits with the command's code.
    expect((await cli(['run', '--rm', '--init', IMAGE, 'sh', '-c', 'exit 9'])).code).toBe(9);
  });

  it('-v: a root-owned 0700 host directory is written by container root as host root; :noidmap keeps the plain mapping', async () => {
    const dir = fs.mkdtempSync('/var/tmp/ss-cli-vol-');
    fs.chmodSync(dir, 0o700);
    try {
      const r = await cli(['run', '--rm', '-v', `${dir}:/data`, IMAGE, 'sh', '-c', 'stat -c %u:%g /data; echo hi > /data/f']);
      expect(r).toMatchObject({ code: 0, stdout: '0:0\n' });
      const st = fs.statSync(join(dir, 'f'));
      expect([st.uid, st.gid]).toEqual([0, 0]);
      const plain = await cli(['run', '--rm', '-v', `${dir}:/data:rw,noidmap`, IMAGE, 'sh', '-c', 'stat -c %u /data; echo hi > /data/g']);
      expect(plain.code).toBe(1);
      expect(plain.stdout).toBe('65534\n');
      expect(fs.existsSync(join(dir, 'g'))).toBe(false);
      const ro = await cli(['run', '--rm', '-v', `${dir}:/data:ro`, IMAGE, 'sh', '-c', 'cat /data/f; echo x > /data/h']);
      expect(ro.code).toBe(1);
      expect(ro.stdout).toBe('hi\n');
      const bad = await cli(['run', '--rm', '-v', `${dir}:/data:rw,shared`, IMAGE, 'true']);
      expect(bad.code).toBe(125);
      expectOneErrorLine(bad, 'run');
      expect(bad.stderr).toContain('"shared"');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('terminal flags that cannot work are refused with 125 and one line', async () => {
    const noTty = await cli(['run', '-i', IMAGE, 'cat']);
    expect(noTty.code).toBe(125);
    expectOneErrorLine(noTty, 'run');
    expect(noTty.stderr).toContain('-i needs -t');
    const name = `cli-notty-${process.pid}`;
    expect((await cli(['run', '-d', '--name', name, IMAGE, 'sleep', '100'])).code).toBe(0);
    const attach = await cli(['attach', name]);
    expect(attach.code).toBe(125);
    expectOneErrorLine(attach, 'attach');
    expect(attach.stderr).toContain('has no terminal');
    await cli(['rm', '-f', name]);
  });

  describe.skipIf(skipBecause(ptyUnavailable(), 'CLI terminal tests'))('at a terminal', () => {
    it('run -it: a shell on a terminal of our size, resized live, exits with its code', async () => {
      const s = cliInPty(['run', '-it', '--rm', IMAGE, 'sh'], { rows: 24, cols: 80 });
      s.type('stty size; tty; echo "a$((6*7))b"\r');
      await s.until(/24 80[\s\S]*\/dev\/console[\s\S]*a42b/);
      s.resize(40, 120);
      await new Promise((r) => setTimeout(r, 300));
      s.type('stty size\r');
      await s.until(/40 120/);
      // ^C reaches the container's foreground job, not the CLI.
      s.type('sleep 100\r');
      await new Promise((r) => setTimeout(r, 300));
      s.type('\x03');
      s.type('echo after-$((1+1))\r');
      await s.until(/after-2/);
      s.type('exit 3\r');
      expect(await s.exit).toBe(3);
      expect(JSON.parse((await cli(['ps', '-a', '--format', 'json'])).stdout)).toEqual([]);
    });

    it('ctrl-p ctrl-q detaches, leaving it running; attach comes back; logs kept the output', async () => {
      const name = `cli-tty-${process.pid}`;
      const s = cliInPty(['run', '-it', '--name', name, IMAGE, 'sh']);
      s.type('echo first-$((2+3))\r');
      await s.until(/first-5/);
      s.type('\x10\x11');
      expect(await s.exit).toBe(0);
      expect(JSON.parse((await cli(['ps', '--format', 'json'])).stdout)).toEqual([expect.objectContaining({ name, state: 'running' })]);
      const again = cliInPty(['attach', name]);
      await new Promise((r) => setTimeout(r, 300));
      again.type('echo second-$((3+4)); exit 4\r');
      await again.until(/second-7/);
      expect(await again.exit).toBe(4);
      const logs = await cli(['logs', name]);
      expect(logs.stdout).toMatch(/first-5[\s\S]*second-7/);
      await cli(['rm', name]);
    });

    it('exec -it: its own terminal; -t alone shows output without taking input', async () => {
      const name = `cli-exec-tty-${process.pid}`;
      expect((await cli(['run', '-d', '--name', name, IMAGE, 'sleep', '100'])).code).toBe(0);
      const s = cliInPty(['exec', '-it', name, 'sh'], { rows: 33, cols: 99 });
      s.type('stty size; test -t 0 && echo is-a-tty; tty\r');
      // A terminal of the container's own devpts: it has a name inside.
      await s.until(/33 99[\s\S]*is-a-tty[\s\S]*\/dev\/pts\/\d+/);
      s.type('exit 6\r');
      expect(await s.exit).toBe(6);
      const out = cliInPty(['exec', '-t', name, 'sh', '-c', 'stty size; exit 2'], { rows: 10, cols: 20 });
      expect(await out.exit).toBe(2);
      expect(out.output).toContain('10 20');
      await cli(['rm', '-f', name]);
    });
  });
});
