/**
 * What a long-running host agent relies on, against the real kernel (root): a process that
 * stopped and removed its containers exits at once; streaming exec; abort signals; the
 * runtime-wide event stream; `await using`; exec timeouts and OOM kills of non-init
 * processes; limits that are removed really are; requests too large for the spawner.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, RuntimeError, type RuntimeEvent } from '../../src/index.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipTest } from '../helpers/skip.js';

if (!IS_ROOT) console.warn(`host agent integration tests skipped: ${SKIP_REASON}`);

const IMAGE = 'stratoswarm/base-agent:latest';
let t: TestRuntime;
let rt: Runtime;
let n = 0;

function config(script: string, more: (b: ReturnType<typeof ContainerConfig.builder>) => void = () => {}) {
  const b = ContainerConfig.builder().name(`h${++n}-${process.pid}`).image(IMAGE).command(['/bin/sh', '-c', script]);
  more(b);
  return b.build();
}

async function running(script: string, more?: Parameters<typeof config>[1]): Promise<Container> {
  const c = await Container.create(config(script, more), { runtime: rt });
  await c.start();
  return c;
}

describe.skipIf(!IS_ROOT)(`host agent (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  beforeAll(() => {
    t = testRuntime();
    rt = t.runtime;
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('a Node process exits as soon as it has stopped and removed its containers (one ignores SIGTERM)', async () => {
    const agent = spawn(process.execPath, [join(__dirname, '../fixtures/stop-and-exit.mjs'), t.stateRoot, rt.options.imageRoot, rt.options.cgroupParent], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    agent.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exitedAt = await new Promise<number>((resolve) => agent.once('exit', () => resolve(Date.now())));
    const report = JSON.parse(out.trim()) as { removedAt: number; exits: unknown[] };
    expect(report.exits).toEqual([
      { exitCode: null, signal: 'SIGKILL', oomKilled: false },
      { exitCode: 0, signal: null, oomKilled: false },
    ]);
    console.log(`host agent exited ${exitedAt - report.removedAt} ms after its last remove() resolved`);
    // The polite container's 10 s grace timer would have held the process for 10 s.
    expect(exitedAt - report.removedAt).toBeLessThan(3000);
  });

  it('execStream: binary-safe stdin and stdout as Node streams, and the exit status', async () => {
    const c = await running('sleep 100');
    try {
      const p = await c.execStream(['/bin/sh', '-c', 'cat; echo done >&2; exit 3']);
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const chunks: Buffer[] = [];
      let err = '';
      p.stdout.on('data', (d: Buffer) => chunks.push(d));
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.stdin.end(bytes);
      expect(await p.exit).toEqual({ exitCode: 3, signal: null });
      await new Promise((r) => setImmediate(r));
      expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
      expect(err).toBe('done\n');
    } finally {
      await c.remove({ force: true });
    }
  });

  it('exec timeouts and aborts kill the workload through the spawner', async () => {
    const c = await running('sleep 100');
    try {
      const timed = await c.exec(['sleep', '30'], { timeoutMs: 200 });
      expect([timed.exitCode, timed.signal]).toEqual([null, 'SIGKILL']);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 200);
      const aborted = await c.exec(['sleep', '30'], { signal: ac.signal }).catch((e: unknown) => e as Error);
      expect((aborted as Error).name).toBe('AbortError');
      // Nothing of either is left in the container.
      expect((await c.exec(['/bin/sh', '-c', 'ps -o comm | grep -c "^sleep$"'])).stdout.trim()).toBe('1');
    } finally {
      await c.remove({ force: true });
    }
  });

  it('wait() gives up on an aborted signal without touching the container; start() aborted first leaves it created', async () => {
    const c = await Container.create(config('sleep 100'), { runtime: rt });
    try {
      const ac = new AbortController();
      ac.abort();
      await expect(c.start({ signal: ac.signal })).rejects.toMatchObject({ name: 'AbortError' });
      expect(c.state).toBe('created');
      await c.start();
      const ac2 = new AbortController();
      const w = c.wait({ signal: ac2.signal });
      ac2.abort();
      await expect(w).rejects.toMatchObject({ name: 'AbortError' });
      expect(c.state).toBe('running');
    } finally {
      await c.remove({ force: true });
    }
  });

  it('Runtime.events() yields every container event, and await using removes the container', async () => {
    const seen: string[] = [];
    const ac = new AbortController();
    const reading = (async () => {
      try {
        for await (const e of rt.events({ signal: ac.signal }) as AsyncIterable<RuntimeEvent>) {
          seen.push(e.type === 'state' ? `state:${e.data.to}` : e.type);
        }
      } catch (e) {
        if ((e as Error).name !== 'AbortError') throw e;
      }
    })();
    let id: string;
    {
      await using c = await running('exit 7');
      id = c.id;
      expect(await c.wait()).toEqual({ exitCode: 7, signal: null, oomKilled: false });
    }
    expect(fs.existsSync(runtimeParts(rt).state.dir(id))).toBe(false);
    ac.abort();
    await reading;
    expect(seen).toEqual(['state:created', 'state:running', 'state:stopped', 'exit', 'state:removed']);
  });

  it("an OOM kill of a process that is not the init emits 'oom' while the container runs on", async () => {
    const c = await running('sleep 100', (b) => b.memoryLimit(32 * 1024 * 1024).memorySwap(32 * 1024 * 1024));
    try {
      const oom = new Promise<{ id: string }>((resolve) => c.once('oom', resolve));
      // A child that allocates past the limit: the kernel kills it, not the init.
      const r = await c.exec(['/bin/sh', '-c', 'x=a; while true; do x="$x$x"; done']);
      expect(r.signal).toBe('SIGKILL');
      expect(await oom).toEqual({ id: c.id });
      expect(c.state).toBe('running');
    } finally {
      await c.remove({ force: true });
    }
  });

  it('update({ cpusetCpus: null }) gives the container back every CPU of its parent', async (ctx) => {
    const layout = runtimeParts(rt).cgroups.layout.controllers.cpuset;
    if (!layout) {
      skipTest(ctx, 'cpuset removal test', 'no cpuset controller on this host');
      return;
    }
    const c = await running('sleep 100', (b) => b.cpusetCpus('0'));
    try {
      const dir = runtimeParts(rt).cgroups.dirs(c.id).find((d) => d.startsWith(`${layout.mount}/`))!;
      expect(fs.readFileSync(`${dir}/cpuset.cpus`, 'utf8').trim()).toBe('0');
      await c.update({ cpusetCpus: null });
      const parentFile = fs.existsSync(join(dir, '..', 'cpuset.cpus.effective')) ? 'cpuset.cpus.effective' : 'cpuset.cpus';
      const parent = fs.readFileSync(join(dir, '..', parentFile), 'utf8').trim();
      expect(fs.readFileSync(`${dir}/cpuset.cpus${parentFile.endsWith('effective') ? '.effective' : ''}`, 'utf8').trim()).toBe(parent);
      expect(c.resources.cpusetCpus).toBeUndefined();
    } finally {
      await c.remove({ force: true });
    }
  });

  it('a command larger than the spawner accepts fails naming the field and the limit, leaving nothing', async () => {
    const before = runtimeParts(rt).state.ids().length;
    const huge = 'x'.repeat(5 * 1024 * 1024);
    const err = await Container.create(config('true', (b) => b.args([huge])), { runtime: rt }).catch((e: unknown) => e as RuntimeError);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err.message).toMatch(/^create container h\d+-\d+: command is \d+ bytes; a request to the spawner is limited to 4194304 bytes/);
    expect(runtimeParts(rt).state.ids().length).toBe(before);
  });
});
