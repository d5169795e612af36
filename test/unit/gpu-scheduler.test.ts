/**
 * GPU scheduling on fake topologies: exclusive by default, sharing only between containers
 * that opt in, NUMA-nearest first, NVLink peers together, packing or spreading by
 * personality; the store keeps assignments across processes and drops stale ones.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RuntimeError } from '../../src/errors.js';
import { chooseMig, type MigInstance } from '../../src/gpu/mig.js';
import { chooseGpus, defaultDistance, strategyOf, type GpuAssignmentRecord, type SchedulableGpu } from '../../src/gpu/scheduler.js';
import { GpuAssignmentStore } from '../../src/gpu/store.js';
import { withFileLock } from '../../src/kernel/file-lock.js';
import { Personality } from '../../src/personality/personality.js';

// Two NUMA nodes, two GPUs on each; GPUs 0-1 and 2-3 are NVLink pairs.
const FOUR: SchedulableGpu[] = [
  { index: 0, numaNode: 0, nvlinkPeers: [1] },
  { index: 1, numaNode: 0, nvlinkPeers: [0] },
  { index: 2, numaNode: 1, nvlinkPeers: [3] },
  { index: 3, numaNode: 1, nvlinkPeers: [2] },
];
const held = (containerId: string, gpus: number[], shared = false): GpuAssignmentRecord => ({ containerId, name: `c-${containerId}`, gpus, shared, assignedAt: '' });

describe('GPU choice', () => {
  it('the personality picks packing or spreading', () => {
    expect(strategyOf(Personality.Cooperative.traits())).toBe('pack');
    expect(strategyOf(Personality.Conservative.traits())).toBe('pack');
    expect(strategyOf(Personality.Aggressive.traits())).toBe('spread');
    expect(strategyOf(Personality.Explorer.traits())).toBe('spread');
  });

  it('packing fills the busy node, spreading takes the idle one', () => {
    const busy = [held('a', [0])];
    expect(chooseGpus({ count: 1, strategy: 'pack' }, FOUR, busy)).toEqual([1]);
    expect(chooseGpus({ count: 1, strategy: 'spread' }, FOUR, busy)).toEqual([2]);
  });

  it('the node nearest the container comes first, by the kernel distance', () => {
    const far = (a: number, b: number) => (a === b ? 10 : 31);
    expect(chooseGpus({ count: 1, strategy: 'pack', numaNode: 1 }, FOUR, [held('a', [0])], far)).toEqual([2]);
    // On node 1 with its GPUs taken, the remote node's GPUs follow.
    expect(chooseGpus({ count: 1, strategy: 'spread', numaNode: 1 }, FOUR, [held('a', [2, 3])], far)).toEqual([0]);
  });

  it('two GPUs come as an NVLink pair on one node, else the nearest on PCIe', () => {
    expect(chooseGpus({ count: 2, strategy: 'spread' }, FOUR, [held('a', [0])])).toEqual([2, 3]);
    const noLink = FOUR.map((g) => ({ ...g, nvlinkPeers: undefined }));
    expect(chooseGpus({ count: 2, strategy: 'pack' }, noLink, [])).toEqual([0, 1]);
    // Without NVLink, the nearest on PCIe: GPU 0 shares a switch (10) with GPU 2 only.
    const pcie = noLink.map((g) => ({ ...g, numaNode: 0, pcieLevels: [[0, 30, 10, 30], [30, 0, 30, 10], [10, 30, 0, 30], [30, 10, 30, 0]][g.index] }));
    expect(chooseGpus({ count: 2, strategy: 'pack' }, pcie, [])).toEqual([0, 2]);
  });

  it('exclusive by default; sharing only between containers that opt in; a refusal names the holders', () => {
    const two = FOUR.slice(0, 2);
    const both = [held('aaaa', [0]), held('bbbb', [1], true)];
    const e = (() => {
      try {
        chooseGpus({ count: 1, strategy: 'pack' }, two, both);
      } catch (err) {
        return err as RuntimeError;
      }
    })();
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e).toMatchObject({ code: 'EBUSY' });
    expect(e!.message).toBe('gpuCount: 1 GPU requested but only 0 of 2 are free: GPU 0 is held by c-aaaa (aaaa); GPU 1 is held by c-bbbb (bbbb, shared)');
    expect(chooseGpus({ count: 1, strategy: 'pack', shared: true }, two, both)).toEqual([1]);
    expect(() => chooseGpus({ devices: [0], strategy: 'pack', shared: true }, two, both)).toThrow(/gpuDevices: GPU 0 is held by c-aaaa/);
    expect(() => chooseGpus({ devices: [5], strategy: 'pack' }, two, [])).toThrow(/gpuDevices: GPU 5 requested but this host has only GPUs 0, 1/);
    expect(() => chooseGpus({ count: 3, strategy: 'pack' }, two, [])).toThrow(/gpuCount: 3 GPUs requested but this host has only GPUs 0, 1/);
    // A GPU with MIG on is handed out only through its MIG instances (CDI names).
    const mig = [{ ...two[0]!, mig: true }, two[1]!];
    expect(chooseGpus({ count: 1, strategy: 'pack' }, mig, [])).toEqual([1]);
    expect(() => chooseGpus({ count: 1, strategy: 'pack' }, mig, [held('bbbb', [1])])).toThrow(/GPU 0 has MIG enabled \(ask for its instances with gpuMig\); GPU 1 is held by c-bbbb/);
    expect(() => chooseGpus({ devices: [0], strategy: 'pack' }, mig, [])).toThrow(/gpuDevices: GPU 0 has MIG enabled: ask for its MIG instances \(gpuMig/);
  });
});

// GPU 0 (node 0) and GPU 2 (node 1) have MIG on: two 1g.18gb and a 3g.71gb on GPU 0, two 1g.18gb on GPU 2.
const mi = (gpu: number, index: number, profile: string): MigInstance => ({ id: `${gpu}:${index}`, gpu, index, uuid: `MIG-${gpu}-${index}`, profile });
const MIG: SchedulableGpu[] = [
  { index: 0, numaNode: 0, mig: true, migInstances: [mi(0, 0, '1g.18gb'), mi(0, 1, '1g.18gb'), mi(0, 2, '3g.71gb')] },
  { index: 1, numaNode: 0 },
  { index: 2, numaNode: 1, mig: true, migInstances: [mi(2, 0, '1g.18gb'), mi(2, 1, '1g.18gb')] },
];
const heldMig = (containerId: string, mig: string[], shared = false): GpuAssignmentRecord => ({ containerId, name: `c-${containerId}`, gpus: [], mig, shared, assignedAt: '' });

describe('MIG instance choice', () => {
  it('by count and profile, nearest node first, packing or spreading over the parents', () => {
    expect(chooseMig({ count: 1, strategy: 'pack' }, MIG, [], defaultDistance)).toEqual(['0:0']);
    expect(chooseMig({ count: 1, profile: '3g.71gb', strategy: 'pack' }, MIG, [], defaultDistance)).toEqual(['0:2']);
    expect(chooseMig({ count: 2, profile: '1g.18gb', numaNode: 1, strategy: 'pack' }, MIG, [], defaultDistance)).toEqual(['2:0', '2:1']);
    // GPU 0 has a busy instance: packing stays on it, spreading goes to GPU 2.
    expect(chooseMig({ count: 1, profile: '1g.18gb', strategy: 'pack' }, MIG, [heldMig('a', ['0:0'])], defaultDistance)).toEqual(['0:1']);
    expect(chooseMig({ count: 1, profile: '1g.18gb', strategy: 'spread' }, MIG, [heldMig('a', ['0:0'])], defaultDistance)).toEqual(['2:0']);
  });

  it('exclusive by default: a request that cannot be met, or a held instance asked for by name, names the holder', () => {
    const busy = [heldMig('aaaa', ['0:2']), heldMig('bbbb', ['0:0', '0:1', '2:0', '2:1'], true)];
    expect(() => chooseMig({ count: 1, profile: '3g.71gb', strategy: 'pack' }, MIG, busy, defaultDistance)).toThrow(
      'gpuMig: 1 MIG instance of profile 3g.71gb requested but only 0 of 1 are free: MIG 0:2 (3g.71gb) is held by c-aaaa (aaaa)',
    );
    expect(() => chooseMig({ names: ['0:2'], strategy: 'pack' }, MIG, busy, defaultDistance)).toThrow(/^devices: MIG 0:2 \(3g\.71gb\) is held by c-aaaa \(aaaa\) \(MIG instances are exclusive/);
    expect(chooseMig({ count: 1, shared: true, strategy: 'pack' }, MIG, busy, defaultDistance)).toEqual(['0:0']);
    expect(() => chooseMig({ count: 4, profile: '3g.71gb', strategy: 'pack' }, MIG, [], defaultDistance)).toThrow(/gpuMig: 4 MIG instances of profile 3g\.71gb requested but this host has only 1 \(its MIG instances: 5, profiles 1g\.18gb, 3g\.71gb\)/);
    expect(() => chooseMig({ count: 1, strategy: 'pack' }, FOUR, [], defaultDistance)).toThrow(/this host has none \(no GPU has MIG on\)/);
    // A GPU held whole (before its MIG mode went on) holds its instances; one whose instances
    // are held is not handed out whole (should its MIG mode go off).
    expect(() => chooseMig({ names: ['0:0'], strategy: 'pack' }, MIG, [held('wwww', [0])], defaultDistance)).toThrow(/MIG 0:0 \(1g\.18gb\) is held by c-wwww/);
    expect(() => chooseGpus({ devices: [0], strategy: 'pack' }, FOUR, [heldMig('aaaa', ['0:1'])])).toThrow(/GPU 0 is held by c-aaaa/);
  });
});

describe('GPU assignment store', () => {
  let root: string;
  const records = new Set<string>();
  const host = { processStartTime: (pid: number) => (fs.existsSync(`/proc/${pid}`) ? fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19] : undefined), containerExists: (id: string) => records.has(id) };
  beforeEach(() => {
    root = fs.mkdtempSync(join(tmpdir(), 'ss-gpus-'));
    records.clear();
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('assignments persist for a second store on the same root, are idempotent per container and released', () => {
    const a = new GpuAssignmentStore(root, host);
    records.add('c1');
    expect(a.reserve('c1', 'one', { count: 1, strategy: 'pack' }, FOUR.slice(0, 2)).gpus).toEqual([0]);
    expect(a.reserve('c1', 'one', { count: 1, strategy: 'pack' }, FOUR.slice(0, 2)).gpus).toEqual([0]);
    const b = new GpuAssignmentStore(root, host); // another host agent on the same root
    records.add('c2');
    expect(b.reserve('c2', 'two', { count: 1, strategy: 'pack' }, FOUR.slice(0, 2)).gpus).toEqual([1]);
    b.confirm('c2');
    expect(() => b.reserve('c3', 'three', { count: 1, strategy: 'pack' }, FOUR.slice(0, 2))).toThrow(/GPU 0 is held by one .*GPU 1 is held by two/);
    expect(a.release('c1')).toBe(true);
    expect(b.list().map((x) => x.containerId)).toEqual(['c2']);
    // A container whose record is gone (removed while no agent ran) holds nothing; an
    // unconfirmed reservation is kept while the process that made it lives.
    b.reserve('c4', 'four', { count: 1, strategy: 'pack' }, FOUR.slice(0, 2));
    expect(b.list().map((x) => x.containerId)).toEqual(['c2', 'c4']);
    b.release('c4');
    records.delete('c2');
    expect(b.list()).toEqual([]);
    expect(withFileLock(join(root, 'gpus/lock'), 'test', () => 'free', 0)).toBe('free'); // nothing holds it
  });

  it('MIG reservations persist for a second store (a runtime restart), are kept by their container and released', () => {
    records.add('m1');
    const a = new GpuAssignmentStore(root, host);
    expect(a.reserve('m1', 'one', { mig: { count: 2, profile: '1g.18gb' }, strategy: 'pack' }, MIG)).toMatchObject({ gpus: [], mig: ['0:0', '0:1'] });
    a.confirm('m1');
    const b = new GpuAssignmentStore(root, host);
    expect(b.held('m1')?.mig).toEqual(['0:0', '0:1']);
    expect(b.reserve('m1', 'one', { mig: { count: 2 }, strategy: 'pack' }, MIG).mig).toEqual(['0:0', '0:1']);
    records.add('m2');
    expect(() => b.reserve('m2', 'two', { mig: { names: ['0:1'] }, strategy: 'pack' }, MIG)).toThrow(/devices: MIG 0:1 \(1g\.18gb\) is held by one \(m1\)/);
    expect(b.list().map((x) => x.containerId)).toEqual(['m1']); // the refusal left nothing
    expect(b.reserve('m2', 'two', { mig: { count: 1, profile: '1g.18gb' }, strategy: 'pack' }, MIG).mig).toEqual(['2:0']);
    expect(a.release('m1')).toBe(true);
    expect(b.reserve('m3', 'three', { mig: { names: ['0:1'] }, strategy: 'pack' }, MIG).mig).toEqual(['0:1']);
  });

  it('a lock file left by a dead process blocks nothing', () => {
    fs.mkdirSync(join(root, 'gpus'));
    const dead = spawnSync('true').pid!;
    fs.writeFileSync(join(root, 'gpus/lock'), `${dead} 1`);
    records.add('c1');
    expect(new GpuAssignmentStore(root, host).reserve('c1', 'one', { count: 1, strategy: 'pack' }, FOUR).gpus).toEqual([0]);
  });

  it('processes racing on one root never get the same GPU', async () => {
    const script = join(root, 'race.mjs');
    const storeUrl = new URL('../../dist/src/gpu/store.js', import.meta.url).href;
    fs.writeFileSync(
      script,
      `import { GpuAssignmentStore } from '${storeUrl}';
const host = { processStartTime: () => 'x', containerExists: () => true };
const s = new GpuAssignmentStore(process.argv[2], host);
const gpus = [0, 1, 2, 3].map((index) => ({ index, numaNode: 0 }));
try { console.log(s.reserve('c' + process.pid, 'n', { count: 1, strategy: 'pack' }, gpus).gpus[0]); } catch (e) { console.log('busy'); }`,
    );
    if (!fs.existsSync(new URL(storeUrl))) throw new Error('dist/ is not built: run npm run build');
    const { spawn } = await import('node:child_process');
    const outs = await Promise.all(
      Array.from({ length: 6 }, () => new Promise<string>((resolve) => {
        const p = spawn(process.execPath, [script, root]);
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('close', () => resolve(out.trim()));
      })),
    );
    const got = outs.filter((o) => o !== 'busy').sort();
    expect(got).toEqual(['0', '1', '2', '3']);
    expect(outs.filter((o) => o === 'busy')).toHaveLength(2);
  });

  it('processes racing for MIG instances never get the same one', async () => {
    const script = join(root, 'race-mig.mjs');
    const storeUrl = new URL('../../dist/src/gpu/store.js', import.meta.url).href;
    fs.writeFileSync(
      script,
      `import { GpuAssignmentStore } from '${storeUrl}';
const host = { processStartTime: () => 'x', containerExists: () => true };
const s = new GpuAssignmentStore(process.argv[2], host);
const gpus = [{ index: 0, mig: true, migInstances: [0, 1, 2].map((i) => ({ id: '0:' + i, gpu: 0, index: i, profile: '1g.18gb' })) }];
try { console.log(s.reserve('c' + process.pid, 'n', { mig: { count: 1 }, strategy: 'pack' }, gpus).mig[0]); } catch (e) { console.log(e.code === 'EBUSY' ? 'busy' : e.message); }`,
    );
    const { spawn } = await import('node:child_process');
    const outs = await Promise.all(
      Array.from({ length: 5 }, () => new Promise<string>((resolve) => {
        const p = spawn(process.execPath, [script, root]);
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.on('close', () => resolve(out.trim()));
      })),
    );
    expect(outs.filter((o) => o !== 'busy').sort()).toEqual(['0:0', '0:1', '0:2']);
    expect(outs.filter((o) => o === 'busy')).toHaveLength(2);
  });
});
