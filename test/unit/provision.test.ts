/**
 * Provisioning through a rollback stack: a failure injected at every named step (through
 * the fakes) leaves nothing behind; and 1,000 create/remove cycles in one process leave no
 * listener, watcher or timer behind.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, PROVISION_STEPS, RuntimeError, type ContainerPaths, type ContainerStorage, type ProvisionStep } from '../../src/index.js';
import { CgroupDriver, detectCgroups, MemoryCgroupFs } from '../../src/isolation/index.js';
import type { NetworkAttacher } from '../../src/parts.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { FakeSpawner } from '../helpers/fake-spawner.js';

const HYBRID = [
  '30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  ...['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'].map(
    (c, i) => `${40 + i} 30 0:${40 + i} / /sys/fs/cgroup/${c} rw,nosuid,nodev,noexec,relatime shared:${20 + i} - cgroup cgroup rw,${c}`,
  ),
].join('\n');

/** Storage that records what exists instead of making it (the id-mapped upper dir's chown needs root). */
class FakeStorage implements ContainerStorage {
  readonly made = new Set<string>();
  create(paths: ContainerPaths): void {
    this.made.add(paths.storageDir);
  }
  remove(paths: ContainerPaths): void {
    this.made.delete(paths.storageDir);
  }
}

/** A bridge that hands out addresses and remembers who has one. */
class FakeNetwork implements NetworkAttacher {
  readonly attached = new Set<string>();
  async add(id: string) {
    this.attached.add(id);
    return { ip: '10.88.0.2', gateway: '10.88.0.1', ifname: 'eth0', result: { cniVersion: '1.0.0' } };
  }
  async del(id: string) {
    this.attached.delete(id);
  }
  async setBandwidth(_id: string, _ns: string, result: never) {
    return result;
  }
}

let roots: string[];
let spawner: FakeSpawner;
let memfs: MemoryCgroupFs;
let storage: FakeStorage;
let network: FakeNetwork;
let failAt: ProvisionStep | undefined;
let rt: Runtime;

beforeEach(() => {
  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'ss-prov-'));
  const imageRoot = fs.mkdtempSync(join(tmpdir(), 'ss-prov-img-'));
  roots = [stateRoot, imageRoot];
  spawner = new FakeSpawner();
  const layout = detectCgroups(HYBRID);
  memfs = MemoryCgroupFs.forLayout(layout);
  memfs.host.processes.set(process.pid, 'test-process');
  storage = new FakeStorage();
  network = new FakeNetwork();
  failAt = undefined;
  rt = new Runtime({
    stateRoot,
    imageRoot,
    kernel: memfs,
    spawner,
    storage,
    network,
    cgroups: new CgroupDriver(memfs, layout, 'stratoswarm', { sleep: async () => {} }),
    faults: (step) => {
      if (step === failAt) throw new RuntimeError(`injected failure at ${step}`, { code: 'ESYSCALL', step: 'none', errno: 'EIO' });
    },
    logger: pino({ level: 'silent' }),
    env: {},
  });
  const layer = join(imageRoot, 'layers', 'sha256-00');
  fs.mkdirSync(join(layer, 'etc'), { recursive: true });
  fs.writeFileSync(join(layer, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(join(layer, 'etc/group'), 'root:x:0:\n');
  rt.images.save({ ref: 'test/agent:1', layers: ['sha256:00'], config: { env: [], cmd: ['/bin/sh'], workingDir: '/', user: '0' }, createdAt: '' });
});

afterEach(async () => {
  await rt.close();
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** Everything a container could hold, from every part's own view. */
function leftovers() {
  const parts = runtimeParts(rt);
  return {
    state: parts.state.ids(),
    names: fs.existsSync(join(parts.options.stateRoot, 'names')) ? fs.readdirSync(join(parts.options.stateRoot, 'names')) : [],
    idRanges: parts.idRanges.claims(),
    storage: [...storage.made],
    cgroups: parts.cgroups.list(),
    network: [...network.attached],
    spawnerLive: spawner.verbs().filter((v) => v === 'create').length - spawner.verbs().filter((v) => v === 'forget').length,
    exitListeners: parts.exitListenerCount(),
  };
}

const NOTHING = { state: [], names: [], idRanges: [], storage: [], cgroups: [], network: [], spawnerLive: 0, exitListeners: 0 };

function config(name: string): ContainerConfig {
  // A user namespace (so the id-range step runs) and a bridge (so the network step runs).
  return ContainerConfig.builder().name(name).image('test/agent:1').command(['/bin/agent']).network('bridge').security({ userNamespace: { size: 65536 }, seccomp: 'unconfined' }).build();
}

describe('provisioning with a failure injected at every step', () => {
  it('names every step it runs, in order', async () => {
    const seen: ProvisionStep[] = [];
    const r2 = new Runtime({ ...rt.options, kernel: memfs, spawner, storage, network, cgroups: runtimeParts(rt).cgroups, faults: (s) => void seen.push(s), logger: pino({ level: 'silent' }), env: {} });
    const c = await Container.create(config('steps'), { runtime: r2 });
    expect(seen).toEqual([...PROVISION_STEPS]);
    await c.remove();
    await r2.close();
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
    const r2 = new Runtime({
      ...rt.options, kernel: memfs, spawner, storage, network, cgroups: runtimeParts(rt).cgroups, logger: pino({ level: 'silent' }), env: {},
      faults: (s) => {
        if (s === 'network') ac.abort(new Error('host agent is shutting down'));
      },
    });
    const err = await Container.create(config('aborted'), { runtime: r2, signal: ac.signal }).catch((e: unknown) => e as Error);
    expect(err.message).toBe('host agent is shutting down');
    expect(leftovers()).toEqual(NOTHING);
    await r2.close();
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
