/**
 * A Runtime made of fakes: the in-memory kernel (MemoryCgroupFs) on a hybrid layout, the
 * in-memory spawner, storage and a bridge that only record, over private temporary state
 * and image roots with one tiny image. Lifecycle, provisioning and reconciliation run on it
 * without root.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { ContainerPaths, ContainerStorage, FaultHook } from '../../src/index.js';
import { CgroupDriver, detectCgroups, MemoryCgroupFs } from '../../src/isolation/index.js';
import type { NetworkAttacher } from '../../src/parts.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { FakeSpawner } from './fake-spawner.js';

export const HYBRID = [
  '30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  ...['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'].map(
    (c, i) => `${40 + i} 30 0:${40 + i} / /sys/fs/cgroup/${c} rw,nosuid,nodev,noexec,relatime shared:${20 + i} - cgroup cgroup rw,${c}`,
  ),
].join('\n');

/** Storage that records what exists instead of making it (the id-mapped upper dir's chown needs root). */
export class FakeStorage implements ContainerStorage {
  readonly made = new Set<string>();
  create(paths: ContainerPaths): void {
    this.made.add(paths.storageDir);
  }
  remove(paths: ContainerPaths): void {
    this.made.delete(paths.storageDir);
  }
}

/** A bridge that hands out addresses and remembers who has one. */
export class FakeNetwork implements NetworkAttacher {
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

export interface FakeRuntime {
  rt: Runtime;
  spawner: FakeSpawner;
  kernel: MemoryCgroupFs;
  storage: FakeStorage;
  network: FakeNetwork;
  cgroups: CgroupDriver;
  roots: string[];
  /** Another runtime over the same roots and fakes (a second host agent), with its own fault hook. */
  again(faults?: FaultHook): Runtime;
  /** Everything a container could hold, from every part's own view. */
  leftovers(): Record<string, unknown>;
  cleanup(): Promise<void>;
}

export const NOTHING = { state: [], names: [], idRanges: [], storage: [], cgroups: [], network: [], spawnerLive: 0, exitListeners: 0 };

export function fakeRuntime(faults?: FaultHook): FakeRuntime {
  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'ss-fake-'));
  const imageRoot = fs.mkdtempSync(join(tmpdir(), 'ss-fake-img-'));
  const spawner = new FakeSpawner();
  const layout = detectCgroups(HYBRID);
  const kernel = MemoryCgroupFs.forLayout(layout);
  // The fake spawner's init is this test process: the fake kernel knows it.
  kernel.host.processes.set(process.pid, 'test-process');
  const storage = new FakeStorage();
  const network = new FakeNetwork();
  const cgroups = new CgroupDriver(kernel, layout, 'stratoswarm', { sleep: async () => {} });
  const make = (f?: FaultHook) =>
    new Runtime({ stateRoot, imageRoot, kernel, spawner, storage, network, cgroups, faults: f, logger: pino({ level: 'silent' }), env: {} });
  const rt = make(faults);
  const layer = join(imageRoot, 'layers', 'sha256-00');
  fs.mkdirSync(join(layer, 'etc'), { recursive: true });
  fs.writeFileSync(join(layer, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n');
  fs.writeFileSync(join(layer, 'etc/group'), 'root:x:0:\nagent:x:1000:\n');
  rt.images.save({ ref: 'test/agent:1', layers: ['sha256:00'], config: { env: ['PATH=/bin'], cmd: ['/bin/sh'], workingDir: '/', user: '0' }, createdAt: '' });
  const others: Runtime[] = [];
  return {
    rt,
    spawner,
    kernel,
    storage,
    network,
    cgroups,
    roots: [stateRoot, imageRoot],
    again(f) {
      const r = make(f);
      others.push(r);
      return r;
    },
    leftovers() {
      const parts = runtimeParts(rt);
      const names = join(stateRoot, 'names');
      return {
        state: parts.state.ids(),
        names: fs.existsSync(names) ? fs.readdirSync(names) : [],
        idRanges: parts.idRanges.claims(),
        storage: [...storage.made],
        cgroups: parts.cgroups.list(),
        network: [...network.attached],
        spawnerLive: spawner.live(),
        exitListeners: parts.exitListenerCount(),
      };
    },
    async cleanup() {
      for (const r of [rt, ...others]) await r.close();
      for (const r of [stateRoot, imageRoot]) fs.rmSync(r, { recursive: true, force: true });
    },
  };
}
