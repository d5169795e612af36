/** GPUs, id ranges, images, CNI configuration, hardware affinity: the parts that need no root. */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, HardwareAffinity, NumaNode, RuntimeError } from '../../src/index.js';
import { parseCpuList } from '../../src/container/hardware-affinity.js';
import { assignGpus, hostGpus } from '../../src/gpu/inventory.js';
import { IdRangeAllocator } from '../../src/idmap.js';
import { ImageStore } from '../../src/image/images.js';
import { nativeHostFacts, type ProgramResult } from '../../src/kernel/host.js';
import { BridgeNetwork, bandwidthLimits } from '../../src/network/cni.js';
import { StateStore } from '../../src/state.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(join(tmpdir(), 'ss-unit-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('GPU assignment', () => {
  function fakeDev(gpus: number[], uvm = true): string {
    const d = tmp();
    for (const g of gpus) fs.writeFileSync(join(d, `nvidia${g}`), '');
    fs.writeFileSync(join(d, 'nvidiactl'), '');
    if (uvm) fs.writeFileSync(join(d, 'nvidia-uvm'), '');
    return d;
  }

  it('finds /dev/nvidia<N> and nothing else', () => {
    const d = fakeDev([1, 0, 3]);
    fs.writeFileSync(join(d, 'nvidia-modeset'), '');
    expect(hostGpus(fs.readdirSync(d))).toEqual([0, 1, 3]);
    expect(hostGpus([])).toEqual([]);
  });

  it('gives the first N GPUs, their nodes and device rules', () => {
    const d = fakeDev([0, 1]);
    const a = assignGpus({ gpuCount: 2 }, d, { deviceNames: fs.readdirSync(d), procDevices: 'Character devices:\n195 nvidia\n508 nvidia-uvm\n' })!;
    expect(a.indexes).toEqual([0, 1]);
    expect(a.deviceNodes).toEqual([join(d, 'nvidiactl'), join(d, 'nvidia-uvm'), join(d, 'nvidia0'), join(d, 'nvidia1')]);
    const allowed = a.rules.filter((r) => r.allow && r.major === 195).map((r) => r.minor);
    expect(allowed).toEqual([255, 0, 1]);
    expect(a.rules.some((r) => r.major === 508)).toBe(true);
  });

  it('names the missing GPU', () => {
    const d = fakeDev([0]);
    expect(() => assignGpus({ gpuDevices: [0, 2] }, d, { deviceNames: fs.readdirSync(d), procDevices: '' })).toThrow(/gpuDevices: GPU 2 requested but this host has only GPUs 0/);
    expect(() => assignGpus({ gpuCount: 1 }, '/dev', { deviceNames: [], procDevices: '' })).toThrow(/no NVIDIA GPU/);
    expect(assignGpus({}, d, { deviceNames: fs.readdirSync(d), procDevices: '' })).toBeUndefined();
  });
});

describe('user namespace id ranges', () => {
  it('hands out disjoint ranges, reuses released ones, and takes over stale claims', () => {
    const root = tmp();
    const live = new Set<string>();
    const a = new IdRangeAllocator(root, (o) => live.has(o));
    live.add('a').add('b');
    const ra = a.allocate('a');
    const rb = a.allocate('b');
    expect(ra.hostId).toBe(100000);
    expect(rb.hostId).toBe(100000 + 65536);
    a.release(ra, 'a');
    live.delete('a');
    // Round robin: the next search starts after the last range handed out.
    expect(a.allocate('c').index).toBe(2);
    live.add('c');
    const small = new IdRangeAllocator(root, (o) => live.has(o), 100000, 65536, 3);
    expect(small.allocate('e').index).toBe(0); // the released range
    live.add('e');
    // "b" disappears without releasing: its range is taken over.
    live.delete('b');
    expect(small.allocate('d').index).toBe(1);
    expect(small.claims().map((c) => c.owner).sort()).toEqual(['c', 'd', 'e']);
    a.release(rb, 'b'); // not the holder any more: nothing happens
    expect(a.claims()).toHaveLength(3);
  });

  it('says so when every range is taken', () => {
    const a = new IdRangeAllocator(tmp(), () => true, 100000, 65536, 2);
    a.allocate('x');
    a.allocate('y');
    expect(() => a.allocate('z')).toThrow(/no free user namespace id range/);
  });
});

describe('container names', () => {
  it('claims a name once; a stale claim is taken over', () => {
    const s = new StateStore(tmp());
    expect(s.claimName('web', 'a'.repeat(32))).toBeUndefined();
    expect(s.claimName('web', 'b'.repeat(32))).toBe('a'.repeat(32)); // fresh claim: held
    const file = join(s.root, 'names', 'web');
    const old = new Date(Date.now() - 120_000);
    fs.utimesSync(file, old, old);
    expect(s.claimName('web', 'b'.repeat(32))).toBeUndefined(); // no state.json and old: stale
    expect(s.nameOwner('web')).toBe('b'.repeat(32));
    s.releaseName('web', 'a'.repeat(32));
    expect(s.nameOwner('web')).toBe('b'.repeat(32));
    s.releaseName('web', 'b'.repeat(32));
    expect(s.nameOwner('web')).toBeUndefined();
    expect(() => s.load('nope')).toThrow(RuntimeError);
  });
});

describe('image store', () => {
  it('normalizes references and reports a missing image with its path', () => {
    const store = new ImageStore(tmp(), 'registry.example.org');
    expect(store.normalize('registry.example.org/team/agent')).toBe('team/agent:latest');
    expect(store.normalize('x:1')).toBe('x:1');
    expect(store.canonical('team/agent')).toBe('registry.example.org/team/agent:latest');
    expect(() => store.canonical('Bad Ref')).toThrow(/invalid image reference/);
    expect(() => store.resolve('no/such:1')).toThrow(/image "no\/such:1" not found/);
    try {
      store.resolve('no/such:1');
    } catch (e) {
      expect(e).toMatchObject({ code: 'ENOTFOUND', step: 'image' });
    }
  });

  it('refuses an image whose layer is missing, lists images, reads accounts without following links', () => {
    const store = new ImageStore(tmp(), 'r.example');
    store.save({ ref: 'a/b:1', layers: ['sha256:00'], config: { env: [], cmd: ['sh'], workingDir: '/', user: '0' }, createdAt: '' });
    expect(store.list()).toEqual(['a/b:1']);
    expect(() => store.resolve('a/b:1')).toThrow(/layer directory .* is missing/);
    const layer = store.layerPath('sha256:00');
    fs.mkdirSync(join(layer, 'etc'), { recursive: true });
    fs.writeFileSync(join(layer, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nbad line\nagent:x:1000:1000::/home/agent:/bin/sh\n');
    fs.symlinkSync('/etc/group', join(layer, 'etc/group'));
    const img = store.resolve('a/b:1');
    const acc = store.accounts(img);
    expect(acc.users.map((u) => u.name)).toEqual(['root', 'agent']);
    expect(acc.groups).toEqual([]); // a symlinked /etc/group is not followed to the host's
  });

  it('a base image build without busybox names the file', async () => {
    const store = new ImageStore(tmp(), 'r.example');
    await expect(store.buildBaseImage('/nonexistent/busybox')).rejects.toThrow(/read busybox `\/nonexistent\/busybox`/);
  });
});

describe('CNI configuration', () => {
  it('builds the bridge, host-local and bandwidth list', () => {
    const n = new BridgeNetwork({ dataDir: '/run/x/cni', kernel: nativeHostFacts });
    const plain = n.conflist();
    expect(plain.plugins.map((p) => p.type)).toEqual(['bridge']);
    const shaped = n.conflist(100);
    expect(shaped.plugins[1]).toMatchObject({ type: 'bandwidth', ingressRate: 100_000_000, egressRate: 100_000_000 });
    expect(shaped.plugins[0]).toMatchObject({ bridge: 'ssbr0', ipam: { type: 'host-local', dataDir: '/run/x/cni', ranges: [[{ subnet: '10.88.0.0/16' }]] } });
  });

  it('bursts are about 10 ms of traffic, never below 64 KiB', () => {
    expect(bandwidthLimits(1000).ingressBurst).toBe(10_000_000);
    expect(bandwidthLimits(1).ingressBurst).toBe(64 * 1024 * 8);
  });

  it('a missing plugin is a clear error', async () => {
    const n = new BridgeNetwork({ dataDir: tmp(), pluginDirs: [tmp()], kernel: nativeHostFacts });
    await expect(n.add('id', '/proc/1/ns/net')).rejects.toThrow(/CNI plugin "bridge" not found/);
  });

  it('a failing plugin reports the CNI error message and undoes what was added', async () => {
    const plugins = tmp();
    const log = join(plugins, 'calls.log');
    fs.writeFileSync(join(plugins, 'bridge'), `#!/bin/sh\necho "$CNI_COMMAND bridge" >> ${log}\ncat >/dev/null\necho '{"cniVersion":"1.0.0","ips":[{"address":"10.88.0.9/16","gateway":"10.88.0.1"}]}'\n`, { mode: 0o755 });
    fs.writeFileSync(join(plugins, 'bandwidth'), `#!/bin/sh\necho "$CNI_COMMAND bandwidth" >> ${log}\ncat >/dev/null\necho '{"code":7,"msg":"no ifb","details":"module missing"}'\nexit 1\n`, { mode: 0o755 });
    const n = new BridgeNetwork({ dataDir: tmp(), pluginDirs: [plugins], kernel: nativeHostFacts });
    await expect(n.add('cid', '/proc/self/ns/net', 10)).rejects.toThrow(/CNI bandwidth ADD for cid: no ifb: module missing/);
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toEqual(['ADD bridge', 'ADD bandwidth', 'DEL bridge']);
    const ok = await n.add('cid', '/proc/self/ns/net');
    expect(ok).toMatchObject({ ip: '10.88.0.9', gateway: '10.88.0.1', ifname: 'eth0' });
  });

  it('a DEL that fails while undoing a failed ADD is noted on the ADD failure, which is what is thrown', async () => {
    const plugins = tmp();
    fs.writeFileSync(
      join(plugins, 'bridge'),
      `#!/bin/sh\ncat >/dev/null\nif [ "$CNI_COMMAND" = DEL ]; then echo '{"code":11,"msg":"veth busy"}'; exit 1; fi\necho '{"cniVersion":"1.0.0","ips":[{"address":"10.88.0.9/16"}]}'\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(join(plugins, 'bandwidth'), `#!/bin/sh\ncat >/dev/null\necho '{"code":7,"msg":"no ifb"}'\nexit 1\n`, { mode: 0o755 });
    const n = new BridgeNetwork({ dataDir: tmp(), pluginDirs: [plugins], kernel: nativeHostFacts });
    const err = await n.add('cid', '/proc/self/ns/net', 10).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as Error).message).toBe('CNI bandwidth ADD for cid: no ifb (undoing the attach failed too: CNI bridge DEL for cid: veth busy)');
    const suppressed = (err as { suppressed?: unknown[] }).suppressed;
    expect(suppressed).toHaveLength(1);
    expect((suppressed![0] as Error).message).toBe('CNI bridge DEL for cid: veth busy');
  });

  it('setBandwidth errors name what was asked and the step that failed', async () => {
    const plugins = tmp();
    fs.writeFileSync(join(plugins, 'bandwidth'), `#!/bin/sh\ncat >/dev/null\necho '{"code":7,"msg":"no ifb"}'\nexit 1\n`, { mode: 0o755 });
    // tc runs through the kernel seam; this one fails as tc does for a veth that is gone.
    const programs: string[][] = [];
    const n = new BridgeNetwork({
      dataDir: tmp(),
      pluginDirs: [plugins],
      kernel: {
        runProgram: async (file, args): Promise<ProgramResult> => {
          programs.push([file, ...args]);
          return { status: 1, stdout: '', stderr: 'Cannot find device "veth1"\n' };
        },
      },
    });
    const result = { cniVersion: '1.0.0', interfaces: [{ name: 'ssbr0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/proc/1/ns/net' }] };
    await expect(n.setBandwidth('cid', '/proc/self/ns/net', result, undefined, 10)).rejects.toMatchObject({
      code: 'ESYSCALL',
      step: 'network',
      message: 'limit bandwidth of cid to 10 Mbit/s: CNI bandwidth ADD for cid: no ifb',
    });
    const err = await n.setBandwidth('cid', '/proc/self/ns/net', result, 10, 20).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: 'ESYSCALL', step: 'network', path: 'tc' });
    expect((err as Error).message).toBe(
      'change bandwidth of cid from 10 to 20 Mbit/s: tc qdisc change dev veth1 root tbf rate 20000000bit burst 65536b latency 25ms: Cannot find device "veth1"',
    );
    expect(programs).toEqual([['tc', 'qdisc', 'change', 'dev', 'veth1', 'root', 'tbf', 'rate', '20000000bit', 'burst', '65536b', 'latency', '25ms']]);
  });
});

describe('hardware affinity', () => {
  it('builds the spec example: a cpuset, an affinity mask and a memory policy', () => {
    const a = HardwareAffinity.builder().cpuCores([3, 0, 1, 2]).gpuDevice(0).numaNode(new NumaNode(0)).preferLocalMemory(true).build();
    expect(a.cpuset()).toEqual({ cpus: '0,1,2,3', mems: undefined });
    expect(a.cpus()).toEqual([0, 1, 2, 3]);
    expect(a.memoryPolicy()).toEqual({ mode: 1, nodes: [0] }); // MPOL_PREFERRED
    expect(HardwareAffinity.builder().numaNode(1).preferLocalMemory(false).build().memoryPolicy()).toEqual({ mode: 2, nodes: [1] }); // MPOL_BIND
    expect(HardwareAffinity.builder().build().memoryPolicy()).toBeUndefined();
  });

  it("a NUMA node without CPUs given takes the node's CPUs, from the lookup the caller passes", () => {
    const nodes = new Map([[1, parseCpuList('4-6,9\n')]]);
    const nodeCpus = (n: number) => {
      const cpus = nodes.get(n);
      if (!cpus) throw new RuntimeError(`no NUMA node ${n}`, { code: 'ENOTFOUND' });
      return cpus;
    };
    expect(HardwareAffinity.builder().numaNode(1).build().cpus(nodeCpus)).toEqual([4, 5, 6, 9]);
    expect(() => HardwareAffinity.builder().numaNode(7).build().cpus(nodeCpus)).toThrow(expect.objectContaining({ code: 'ENOTFOUND' }));
    expect(parseCpuList('0-2,5')).toEqual([0, 1, 2, 5]);
  });

  it('names every bad field', () => {
    try {
      HardwareAffinity.builder().cpuCores([-1, 1.5]).gpuDevice(-2).numaNode(-1).build();
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).fields()).toEqual(['cpuCores[0]', 'cpuCores[1]', 'gpuDevice', 'numaNode']);
    }
  });
});
