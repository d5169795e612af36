/**
 * The Container lifecycle against a fake kernel (MemoryCgroupFs) and a fake spawner: state
 * transitions, serialized operations, exit reporting, cleanup after a failed create, and
 * all-or-nothing updates — without root.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, RuntimeError } from '../../src/index.js';
import { CgroupDriver, detectCgroups, MemoryCgroupFs } from '../../src/isolation/index.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { FakeSpawner } from '../helpers/fake-spawner.js';

const HYBRID = [
  '30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  '31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw',
  ...['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids'].map(
    (c, i) => `${40 + i} 30 0:${40 + i} / /sys/fs/cgroup/${c} rw,nosuid,nodev,noexec,relatime shared:${20 + i} - cgroup cgroup rw,${c}`,
  ),
].join('\n');

let roots: string[] = [];
let spawner: FakeSpawner;
let memfs: MemoryCgroupFs;
let rt: Runtime;

function makeImage(imageRoot: string): void {
  const layer = join(imageRoot, 'layers', 'sha256-00');
  fs.mkdirSync(join(layer, 'etc'), { recursive: true });
  fs.writeFileSync(join(layer, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n');
  fs.writeFileSync(join(layer, 'etc/group'), 'root:x:0:\nagent:x:1000:\n');
  rt.images.save({ ref: 'test/agent:1', layers: ['sha256:00'], config: { env: ['PATH=/bin'], cmd: ['/bin/sh'], workingDir: '/', user: '0' }, createdAt: '' });
}

function config(name: string, more: (b: ReturnType<typeof ContainerConfig.builder>) => void = () => {}): ContainerConfig {
  // No user namespace (its chown needs root) and no seccomp compiler (the fake kernel has none).
  const b = ContainerConfig.builder().name(name).image('test/agent:1').command(['/bin/agent']).security({ userNamespace: false, seccomp: 'unconfined' });
  more(b);
  return b.build();
}

beforeEach(() => {
  const stateRoot = fs.mkdtempSync(join(tmpdir(), 'ss-fake-'));
  const imageRoot = fs.mkdtempSync(join(tmpdir(), 'ss-fake-img-'));
  roots = [stateRoot, imageRoot];
  spawner = new FakeSpawner();
  const layout = detectCgroups(HYBRID);
  memfs = MemoryCgroupFs.forLayout(layout);
  // The fake spawner's init is this test process: the fake kernel knows it.
  memfs.host.processes.set(process.pid, 'test-process');
  const cgroups = new CgroupDriver(memfs, layout, 'stratoswarm', { sleep: async () => {} });
  rt = new Runtime({ stateRoot, imageRoot, kernel: memfs, spawner, cgroups, logger: pino({ level: 'silent' }), env: {} });
  makeImage(imageRoot);
});

afterEach(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

describe('Container lifecycle (fake kernel and spawner, no root)', () => {
  it('create prepares state, cgroups and a plan; start, stop and remove clean everything up', async () => {
    const c = await Container.create(config('a', (b) => b.cpuLimit(0.5).pidsLimit(10)), { runtime: rt });
    expect(c.state).toBe('created');
    const create = spawner.calls[0]!;
    expect(create[0]).toBe('create');
    expect(create).not.toContain('/bin/agent');
    expect(create.filter((f) => f === 'cgroup-procs')).toHaveLength(9);
    expect(memfs.writes.some((w) => w.path.endsWith(`/stratoswarm/${c.id}/pids.max`) && w.value === '10')).toBe(true);
    expect(fs.existsSync(join(runtimeParts(rt).state.dir(c.id), 'state.json'))).toBe(true);

    const events: string[] = [];
    c.on('state', (e: { from: string; to: string }) => events.push(`${e.from}>${e.to}`));
    await c.start();
    // The process comes with start: the init parked before it.
    expect(spawner.calls.find((f) => f[0] === 'start')).toContain('/bin/agent');
    expect((await c.status()).state).toBe('running');
    const exit = await c.stop({ timeoutMs: 10 }); // SIGTERM ignored, SIGKILL after 10 ms
    expect(exit).toEqual({ exitCode: null, signal: 'SIGKILL', oomKilled: false });
    expect(spawner.calls.filter((f) => f[0] === 'kill').map((f) => f[2])).toEqual(['15', '9']);
    await c.remove();
    expect(events).toEqual(['created>running', 'running>stopped', 'stopped>removed']);
    expect(runtimeParts(rt).state.ids()).toEqual([]);
    expect(fs.existsSync(runtimeParts(rt).storageDir(c.id))).toBe(false);
    expect(runtimeParts(rt).cgroups.list()).toEqual([]);
    expect(spawner.verbs().at(-1)).toBe('forget');
    expect(spawner.holds).toBe(0);
  });

  it('reports the exit code of a workload that ends on its own, once, to every waiter', async () => {
    const c = await Container.create(config('b'), { runtime: rt });
    await c.start();
    const w1 = c.wait();
    const w2 = c.wait();
    let exits = 0;
    c.on('exit', () => exits++);
    spawner.finish(c.id, 3);
    const [a, b] = await Promise.all([w1, w2]);
    expect(a).toBe(b);
    expect(a).toEqual({ exitCode: 3, signal: null, oomKilled: false });
    expect(exits).toBe(1);
    expect((await c.status()).exitCode).toBe(3);
    // Another process sees the same from the state root.
    const listed = await Container.list({ runtime: rt });
    expect(listed.find((s) => s.id === c.id)).toMatchObject({ state: 'stopped', exitCode: 3 });
    await c.remove();
  });

  it('two concurrent starts: one wins, the other is ESTATE naming both states', async () => {
    const c = await Container.create(config('c'), { runtime: rt });
    const r = await Promise.allSettled([c.start(), c.start()]);
    expect(r.map((x) => x.status).sort()).toEqual(['fulfilled', 'rejected']);
    const err = (r.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason;
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err.message).toBe('start container c: cannot go from running to running');
    expect(spawner.calls.filter((f) => f[0] === 'start')).toHaveLength(1);
    await c.remove({ force: true });
  });

  it('a create that fails in the init leaves no state, storage, cgroup or name behind', async () => {
    spawner.failCreate = ['mount', 'ENOENT', 2, '/proc'];
    const err = await Container.create(config('d'), { runtime: rt }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: 'ESPAWN', step: 'mount', errno: 'ENOENT', path: '/proc' });
    expect((err as Error).message).toBe('create container d: step mount `/proc`: ENOENT');
    expect(runtimeParts(rt).state.ids()).toEqual([]);
    expect(fs.readdirSync(join(rt.options.imageRoot, 'containers'))).toEqual([]);
    expect(runtimeParts(rt).cgroups.list()).toEqual([]);
    expect(runtimeParts(rt).state.nameOwner('d')).toBeUndefined();
    // The name is free again.
    const c = await Container.create(config('d'), { runtime: rt });
    await c.remove();
  });

  it('update is all or nothing: a failing write restores what was written', async () => {
    const c = await Container.create(config('e', (b) => b.cpuLimit(0.5).memoryLimit(64 * 2 ** 20).pidsLimit(10)), { runtime: rt });
    await c.start();
    memfs.failOn('pids.max', 'EINVAL');
    const err = await c.update({ cpuLimit: 1, memoryLimit: 128 * 2 ** 20, pidsLimit: 20 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as Error).message).toMatch(/write `pids\.max`: EINVAL \(value "20"\)/);
    const dir = (ctl: string) => `/sys/fs/cgroup/${ctl}/stratoswarm/${c.id}`;
    expect(memfs.get(`${dir('cpu')}/cpu.cfs_quota_us`)).toBe('50000');
    expect(memfs.get(`${dir('memory')}/memory.limit_in_bytes`)).toBe(String(64 * 2 ** 20));
    expect(c.resources).toMatchObject({ cpuLimit: 0.5, memoryLimit: 64 * 2 ** 20, pidsLimit: 10 });
    await c.remove({ force: true });
  });

  it('pause and resume drive the freezer; illegal operations name both states', async () => {
    const c = await Container.create(config('f'), { runtime: rt });
    await expect(c.pause()).rejects.toThrow('pause container f: cannot go from created to paused');
    await c.start();
    await c.pause();
    expect(memfs.get(`/sys/fs/cgroup/freezer/stratoswarm/${c.id}/freezer.state`)).toBe('FROZEN');
    await expect(c.exec(['true'])).rejects.toMatchObject({ code: 'ESTATE' });
    await c.resume();
    expect(memfs.get(`/sys/fs/cgroup/freezer/stratoswarm/${c.id}/freezer.state`)).toBe('THAWED');
    await expect(c.remove()).rejects.toThrow(/cannot go from running to removed/);
    await c.remove({ force: true });
    await expect(c.start()).rejects.toThrow(/cannot go from removed to running/);
  });

  it('a duplicate name is EEXIST; a reloaded container keeps its record', async () => {
    const c = await Container.create(config('g'), { runtime: rt });
    await expect(Container.create(config('g'), { runtime: rt })).rejects.toMatchObject({ code: 'EEXIST' });
    await c.start();
    const again = await Container.load('g', { runtime: rt });
    expect(again.id).toBe(c.id);
    expect(again.state).toBe('running');
    await c.remove({ force: true });
    await expect(Container.load(c.id, { runtime: rt })).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });
});
