/**
 * Provisioning through a rollback stack: a failure injected at every named step (through
 * the fakes) leaves nothing behind; and 1,000 create/remove cycles in one process leave no
 * listener, watcher or timer behind.
 */
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, PROVISION_STEPS, RuntimeError, type ProvisionStep } from '../../src/index.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import type { FakeSpawner } from '../helpers/fake-spawner.js';
import { fakeRuntime, NOTHING, type FakeRuntime } from '../helpers/fake-runtime.js';

let f: FakeRuntime;
let failAt: ProvisionStep | undefined;
let rt: Runtime;
let spawner: FakeSpawner;

beforeEach(() => {
  failAt = undefined;
  f = fakeRuntime((step) => {
    if (step === failAt) throw new RuntimeError(`injected failure at ${step}`, { code: 'ESYSCALL', step: 'none', errno: 'EIO' });
  });
  rt = f.rt;
  spawner = f.spawner;
});

afterEach(async () => {
  await f.cleanup();
});

const leftovers = () => f.leftovers();

function config(name: string): ContainerConfig {
  // A user namespace (so the id-range step runs) and a bridge (so the network step runs).
  return ContainerConfig.builder().name(name).image('test/agent:1').command(['/bin/agent']).network('bridge').security({ userNamespace: { size: 65536 }, seccomp: 'unconfined' }).build();
}

describe('provisioning with a failure injected at every step', () => {
  it('names every step it runs, in order', async () => {
    const seen: ProvisionStep[] = [];
    const r2 = f.again((s) => void seen.push(s));
    const c = await Container.create(config('steps'), { runtime: r2 });
    expect(seen).toEqual([...PROVISION_STEPS]);
    await c.remove();
  });

  for (const step of PROVISION_STEPS) {
    it(`a failure at "${step}" is reported and undoes everything done before it`, async () => {
      failAt = step;
      const err = await Container.create(config(`fail-${step}`), { runtime: rt }).catch((e: unknown) => e as RuntimeError);
      expect(err).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).message).toBe(`injected failure at ${step}`);
      expect(leftovers()).toEqual(NOTHING);
      // The name is free again: the same create succeeds once the fault is gone.
      failAt = undefined;
      const c = await Container.create(config(`fail-${step}`), { runtime: rt });
      expect(c.state).toBe('created');
      await c.remove();
      expect(leftovers()).toEqual(NOTHING);
    });
  }

  it('an aborted create undoes what it did and rejects with the abort reason', async () => {
    const ac = new AbortController();
    const r2 = f.again((s) => {
      if (s === 'network') ac.abort(new Error('host agent is shutting down'));
    });
    const err = await Container.create(config('aborted'), { runtime: r2, signal: ac.signal }).catch((e: unknown) => e as Error);
    expect(err.message).toBe('host agent is shutting down');
    expect(leftovers()).toEqual(NOTHING);
  });
});

describe('no leaks across many containers in one process', () => {
  it('1,000 create/start/stop/remove cycles leave no exit listener, event listener, watcher or timer', async () => {
    // What the process holds (timers, handles) by kind, counted: the cycles may add nothing.
    const resources = () => {
      const count: Record<string, number> = {};
      for (const r of process.getActiveResourcesInfo()) count[r] = (count[r] ?? 0) + 1;
      return count;
    };
    const before = resources();
    const events = rt.events();
    for (let i = 0; i < 1000; i++) {
      const c = await Container.create(config(`cycle-${i}`), { runtime: rt });
      c.on('exit', () => undefined);
      await c.start();
      await c.stop({ timeoutMs: 1 }); // the fake ignores SIGTERM: SIGKILL after 1 ms
      await c.remove();
    }
    await events.return(undefined);
    expect(leftovers()).toEqual(NOTHING);
    // Timers and handles: what the process had before, nothing more.
    await new Promise((r) => setImmediate(r));
    const after = resources();
    for (const [kind, n] of Object.entries(after)) expect(n, kind).toBeLessThanOrEqual(before[kind] ?? 0);
  });

  it('a dropped Container object is collected with its exit subscription; a waited-for one is kept until its exit', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const parts = runtimeParts(rt);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await Container.create(config(`dropped-${i}`), { runtime: rt })).id);
    const kept = await Container.create(config('kept'), { runtime: rt });
    const exit = kept.wait();
    const keptId = kept.id;
    expect(parts.exitListenerCount()).toBe(21);
    for (let i = 0; i < 10 && parts.exitListenerCount() > 1; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    // Only the one somebody waits for is left; its exit still arrives.
    expect(parts.exitListenerCount()).toBe(1);
    spawner.finish(keptId, 5);
    expect(await exit).toEqual({ exitCode: 5, signal: null, oomKilled: false });
    for (const id of [...ids, keptId]) await (await Container.load(id, { runtime: rt })).remove({ force: true });
    expect(leftovers()).toEqual(NOTHING);
  });
});
