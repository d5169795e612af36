/**
 * Reconciliation against the fakes: what crashed processes left is quarantined or removed
 * completely, what a live process is still making is left alone.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, RuntimeError } from '../../src/index.js';
import { runtimeParts } from '../../src/runtime.js';
import type { ContainerRecord } from '../../src/state.js';
import { fakeRuntime, NOTHING, type FakeRuntime } from '../helpers/fake-runtime.js';

let f: FakeRuntime;

beforeEach(() => {
  f = fakeRuntime();
});
afterEach(async () => {
  await f.cleanup();
});

function config(name: string): ContainerConfig {
  return ContainerConfig.builder().name(name).image('test/agent:1').command(['/bin/agent']).security({ userNamespace: { size: 65536 }, seccomp: 'unconfined' }).build();
}

/** Makes a container, then rewrites its record as a crash at some moment would have left it. */
async function leftBehind(name: string, change: (rec: ContainerRecord) => void): Promise<string> {
  const c = await Container.create(config(name), { runtime: f.rt });
  const parts = runtimeParts(f.rt);
  const rec = parts.state.load(c.id);
  change(rec);
  parts.state.save(rec);
  return c.id;
}

describe('reconciliation', () => {
  it('quarantines state files that are not records; listing and loading others keep working', async () => {
    const parts = runtimeParts(f.rt);
    const good = await Container.create(config('good'), { runtime: f.rt });
    const junk = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
    const foreign = 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
    for (const [id, text] of [[junk, '{"version":1,"id":"aaaa'], [foreign, JSON.stringify({ ...parts.state.load(good.id), id: 'cccccccccccccccccccccccccccccccc' })]] as const) {
      fs.mkdirSync(parts.state.dir(id));
      fs.writeFileSync(join(parts.state.dir(id), 'state.json'), text);
    }
    expect((await Container.list({ runtime: f.rt })).map((s) => s.name)).toEqual(['good']);
    const err = await Container.load(junk, { runtime: f.rt }).catch((e: unknown) => e as RuntimeError);
    expect(err).toMatchObject({ code: 'EPROTO', step: 'state' });
    expect(err.message).toMatch(/^state of container a{32} is unusable \(not JSON \(23 bytes\)/);
    const report = await f.rt.reconcile();
    expect(report).toEqual({ removed: [], quarantined: [junk, foreign].sort() });
    expect(parts.state.ids()).toEqual([good.id]);
    const quarantined = fs.readdirSync(join(parts.options.stateRoot, 'quarantine'));
    expect(quarantined.map((d) => d.split('.')[0]).sort()).toEqual([junk, foreign].sort());
    expect(fs.readFileSync(join(parts.options.stateRoot, 'quarantine', quarantined.find((d) => d.startsWith(foreign))!, 'reason'), 'utf8')).toMatch(/record of container c{32} in the directory of b{32}/);
    await good.remove();
  });

  it('tears down a container half-made by a process that died, and one from an earlier boot', async () => {
    const dead = await leftBehind('half-made', (r) => {
      r.state = 'creating';
      r.creator = { pid: 999_999, startTime: '1' };
    });
    const old = await leftBehind('old-boot', (r) => {
      r.bootId = 'boot-0';
    });
    const report = await f.rt.reconcile();
    expect(report.removed.sort()).toEqual([dead, old].sort());
    expect(f.spawner.knows(dead)).toBe(false);
    expect(f.leftovers()).toEqual(NOTHING);
  });

  it('leaves alone what a live process is still making', async () => {
    const making = await leftBehind('in-progress', (r) => {
      r.state = 'creating';
      // Another live process: the fake kernel knows it.
      r.creator = { pid: 4242, startTime: 'x' };
    });
    f.kernel.host.processes.set(4242, 'x');
    expect(await f.rt.reconcile()).toEqual({ removed: [], quarantined: [] });
    expect(runtimeParts(f.rt).state.ids()).toEqual([making]);
    f.kernel.host.processes.delete(4242);
    expect((await f.rt.reconcile()).removed).toEqual([making]);
  });

  it('a cgroup with no state: the spawner kills the init it knows; stray processes are frozen, killed, and the cgroup goes', async () => {
    const parts = runtimeParts(f.rt);
    const known = await Container.create(config('lost-state'), { runtime: f.rt });
    // Its creator died after the spawner made the init but before the record was kept.
    parts.state.remove(known.id);
    const stray = 'dddddddddddddddddddddddddddddddd';
    parts.cgroups.create(stray, {});
    const procs = parts.cgroups.dirs(stray).map((d) => `${d}/cgroup.procs`);
    for (const p of procs) f.kernel.files.set(p, '4343\n');
    f.kernel.host.processes.set(4343, 'y');
    // The fake kernel's kill empties the cgroup, as the process's death would.
    const signal = f.kernel.signalProcess.bind(f.kernel);
    f.kernel.signalProcess = (pid, sig) => {
      for (const p of procs) f.kernel.files.set(p, '');
      return signal(pid, sig);
    };
    const report = await f.rt.reconcile();
    expect(report.removed.sort()).toEqual([known.id, stray].sort());
    const verbs = f.spawner.calls.filter((c) => c[1] === known.id).map((c) => c[0]);
    // Asked, killed, polled until it exited, forgotten.
    expect(verbs.slice(0, 3)).toEqual(['create', 'status', 'kill']);
    expect(verbs.at(-1)).toBe('forget');
    expect(new Set(verbs.slice(3, -1))).toEqual(new Set(['status']));
    expect(f.kernel.host.signals).toEqual([{ pid: 4343, signal: 9 }]);
    // Frozen before the kill, so the pid could not be reused meanwhile.
    expect(f.kernel.writes.filter((w) => w.path.includes(stray) && w.path.endsWith('freezer.state')).map((w) => w.value)).toEqual(['FROZEN', 'THAWED']);
    expect(f.leftovers()).toMatchObject({ cgroups: [], spawnerLive: 0 });
  });

  it('remove({ force: true }) of a half-made record without a pid kills the init through the spawner', async () => {
    const id = await leftBehind('no-pid', (r) => {
      r.state = 'creating';
      delete r.pid;
      delete r.pidStartTime;
    });
    const c = await Container.load(id, { runtime: f.rt });
    await c.remove({ force: true });
    expect(f.spawner.knows(id)).toBe(false);
    expect(f.leftovers()).toEqual(NOTHING);
  });
});
