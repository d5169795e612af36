import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Container, ContainerConfig, Runtime } from '../../src/index.js';
import { IS_ROOT, SKIP_REASON, useTestRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const IMAGE = 'stratoswarm/base-agent:latest';

function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - t0 > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'restart supervisor'))('restart supervisor (root, real kernel)', () => {
  let t: TestRuntime;
  let rt: Runtime;
  useTestRuntime((x) => {
    t = x;
    rt = x.runtime;
  });

  it('on-failure restarts a failing container with exponential backoff, keeps its identity and writable layer, and stops after its retries', async () => {
    const cfg = ContainerConfig.builder()
      .name('crashy')
      .image(IMAGE)
      .command(['sh', '-c', 'echo run >> /runs; echo pid $$; exit 3'])
      .restart('on-failure', { maxRetries: 3, initialBackoffMs: 150, multiplier: 2, maxBackoffMs: 1000 })
      .build();
    const c = await Container.create(cfg, { runtime: rt });
    const exits: number[] = [];
    const restarts: { at: number; count: number }[] = [];
    let exhausted: { count: number } | undefined;
    c.on('exit', () => exits.push(Date.now()));
    c.on('restart', (e: { count: number }) => restarts.push({ at: Date.now(), count: e.count }));
    c.on('restartsExhausted', (e: { count: number }) => (exhausted = e));
    const id = c.id;
    await c.start();
    await until('the retries to be spent', () => exhausted !== undefined, 15_000);
    expect(restarts.map((r) => r.count)).toEqual([1, 2, 3]);
    expect(exits).toHaveLength(4);
    // Each restart follows its exit by the backoff: 150, 300, 600 ms (the timer's lateness allowed).
    const delays = restarts.map((r, i) => r.at - exits[i]!);
    [150, 300, 600].forEach((want, i) => {
      expect(delays[i]!).toBeGreaterThanOrEqual(want - 5);
      expect(delays[i]!).toBeLessThan(want + 400);
    });
    expect(c.id).toBe(id);
    const s = await c.status();
    expect(s.state).toBe('stopped');
    expect(s.restartCount).toBe(3);
    expect(s.exitCode).toBe(3);
    // One container all along: its writable layer saw every run, its log every pid.
    const r = await c.exec(['cat', '/runs']).catch(() => undefined);
    expect(r).toBeUndefined(); // stopped: exec refused
    expect(c.logs().stdout.match(/^pid \d+$/gm)).toHaveLength(4);
    expect(fs.readFileSync(join(c.record().paths.upper, 'runs'), 'utf8')).toBe('run\nrun\nrun\nrun\n');
    await c.remove();
  });

  it('always restarts a clean exit; stop() ends it for good', async () => {
    const c = await Container.create(
      ContainerConfig.builder().name('always').image(IMAGE).command(['sh', '-c', 'sleep 0.1']).restart('always', { initialBackoffMs: 50, maxRetries: 100 }).build(),
      { runtime: rt },
    );
    let count = 0;
    c.on('restart', (e: { count: number }) => (count = e.count));
    await c.start();
    await until('two restarts', () => count >= 2);
    await c.stop({ timeoutMs: 1000 });
    const after = count;
    await new Promise((r) => setTimeout(r, 400));
    expect(count).toBe(after);
    expect(c.state).toBe('stopped');
    await c.remove();
  });

  it('on-failure leaves a clean exit alone, and "no" never restarts', async () => {
    for (const [policy, cmd] of [['on-failure', 'exit 0'], ['no', 'exit 1']] as const) {
      const c = await Container.create(ContainerConfig.builder().name(`p-${policy}`).image(IMAGE).command(['sh', '-c', cmd]).restart(policy, { initialBackoffMs: 20 }).build(), { runtime: rt });
      let restarted = false;
      c.on('restart', () => (restarted = true));
      await c.start();
      await c.wait();
      await new Promise((r) => setTimeout(r, 200));
      expect(restarted).toBe(false);
      expect((await c.status()).restartCount).toBe(0);
      await c.remove();
    }
  });

  it('supervision survives the host agent: a container that exits after its agent was SIGKILLed is restarted by the next runtime', async () => {
    const script = `
      import { Container, ContainerConfig, Runtime } from ${JSON.stringify(join(process.cwd(), 'dist/src/index.js'))};
      import { writeFileSync } from 'node:fs';
      const rt = new Runtime({ stateRoot: ${JSON.stringify(t.stateRoot)}, imageRoot: ${JSON.stringify(rt.options.imageRoot)}, cgroupParent: ${JSON.stringify(rt.options.cgroupParent)}, logLevel: 'silent', env: {} });
      const c = await Container.create(ContainerConfig.builder().name('orphaned').image(${JSON.stringify(IMAGE)}).command(['sh', '-c', 'sleep 1; exit 7']).restart('on-failure', { initialBackoffMs: 50, maxRetries: 5 }).build(), { runtime: rt });
      await c.start();
      writeFileSync(${JSON.stringify(join(t.stateRoot, 'agent.ready'))}, c.id);
      setInterval(() => {}, 1000);`;
    const file = join(t.stateRoot, 'restart-agent.mjs');
    fs.writeFileSync(file, script);
    const ready = join(t.stateRoot, 'agent.ready');
    execFileSync('bash', ['-c', `node ${file} & pid=$!; for i in $(seq 1 400); do [ -s ${ready} ] && break; sleep 0.05; done; kill -9 $pid; wait $pid 2>/dev/null; true`]);
    const id = fs.readFileSync(ready, 'utf8');
    // The agent is gone; the container exits 7 about a second later with nobody watching.
    await new Promise((r) => setTimeout(r, 1300));
    // A new host agent on the same state root resumes supervision on first use.
    const next = new Runtime({ stateRoot: t.stateRoot, imageRoot: rt.options.imageRoot, cgroupParent: rt.options.cgroupParent, logLevel: 'silent', env: {} });
    try {
      const c = await Container.load(id, { runtime: next });
      await until('the restart by the next runtime', () => c.record().restarts?.count === 1 && c.state === 'running', 5000);
      expect(c.state).toBe('running');
      expect((await c.status()).restartCount).toBe(1);
      await c.stop({ timeoutMs: 500 });
      await c.remove();
    } finally {
      await next.close();
    }
  });
});
