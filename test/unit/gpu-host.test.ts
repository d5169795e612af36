/**
 * The host side of GPUs without root: the linker cache read as the NVIDIA container toolkit
 * reads it (driver version match), the visible-device environment, MPS quotas, NUMA
 * topology from a fake sysfs, and the GPU plan part for each engine.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CdiRegistry } from '../../src/gpu/cdi/registry.js';
import { driverFiles, parseLdconfig, visibleDevicesEnv } from '../../src/gpu/driver.js';
import type { GpuInventory } from '../../src/gpu/inventory.js';
import { prepareGpus, type GpuPrepareContext } from '../../src/gpu/prepare.js';
import { mpsParts } from '../../src/gpu/quota.js';
import { hostTopology, numaDistance, numaNodeOfCpus } from '../../src/gpu/topology.js';

const LDCONFIG = `5 libs found in cache \`/etc/ld.so.cache'
	libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1
	libnvidia-ml.so.1 (libc6) => /usr/lib/i386-linux-gnu/libnvidia-ml.so.1
	libnvidia-ml.so (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so
	libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1
	libnvidia-ptxjitcompiler.so.1 (libc6,x86-64) => /opt/old/libnvidia-ptxjitcompiler.so.1
	libz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1
`;
const REAL: Record<string, string> = {
  '/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1': '/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.15',
  '/usr/lib/x86_64-linux-gnu/libcuda.so.1': '/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15',
  '/opt/old/libnvidia-ptxjitcompiler.so.1': '/opt/old/libnvidia-ptxjitcompiler.so.470.1',
  '/usr/bin/nvidia-smi': '/usr/bin/nvidia-smi',
};
const host = {
  realpath: (p: string) => REAL[p] ?? p,
  exists: (p: string) => p === '/usr/bin/nvidia-smi' || p === '/run/nvidia-persistenced/socket' || p === '/lib/firmware/nvidia/550.54.15',
  binDirs: ['/usr/local/bin', '/usr/bin'],
  firmwareDir: '/lib/firmware/nvidia',
};

describe('driver injection', () => {
  it('takes the libraries of the driver version, the utilities, the persistenced socket and the firmware', () => {
    const entries = parseLdconfig(LDCONFIG);
    expect(entries).toHaveLength(6);
    const files = driverFiles(process.arch === 'x64' ? entries : entries.map((e) => ({ ...e, flags: e.flags.replace('x86-64', 'AArch64') })), '550.54.15', host);
    expect(files.mounts).toEqual([
      { source: '/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15', target: '/usr/local/nvidia/lib64/libcuda.so.550.54.15' },
      { source: '/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15', target: '/usr/local/nvidia/lib64/libcuda.so.1' },
      { source: '/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.15', target: '/usr/local/nvidia/lib64/libnvidia-ml.so.550.54.15' },
      { source: '/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.550.54.15', target: '/usr/local/nvidia/lib64/libnvidia-ml.so.1' },
      { source: '/usr/bin/nvidia-smi', target: '/usr/bin/nvidia-smi' },
      { source: '/run/nvidia-persistenced/socket', target: '/run/nvidia-persistenced/socket' },
      { source: '/lib/firmware/nvidia/550.54.15', target: '/lib/firmware/nvidia/550.54.15' },
    ]);
    expect(files.skipped).toEqual(['/opt/old/libnvidia-ptxjitcompiler.so.1 (libnvidia-ptxjitcompiler.so.470.1, not driver 550.54.15)']);
  });

  it('the environment names exactly the container\'s GPUs and puts the libraries on the linker path', () => {
    expect(visibleDevicesEnv([{ uuid: 'GPU-b' }], ['LD_LIBRARY_PATH=/opt/lib'])).toEqual([
      'NVIDIA_VISIBLE_DEVICES=GPU-b',
      'CUDA_VISIBLE_DEVICES=GPU-b',
      'NVIDIA_DRIVER_CAPABILITIES=compute,utility',
      'LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/opt/lib',
    ]);
    expect(visibleDevicesEnv([{}, {}], [])[0]).toBe('NVIDIA_VISIBLE_DEVICES=0,1');
  });
});

describe('MPS quotas', () => {
  it('limits come as MPS client variables when its daemon runs, and are refused when it does not', () => {
    const running = (p: string) => p === '/tmp/nvidia-mps/control';
    expect(mpsParts({ computePercent: 25, memoryLimit: 4 * 2 ** 30 }, 2, '/tmp/nvidia-mps', running)).toEqual({
      env: ['CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps', 'CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=25', 'CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=4096M,1=4096M'],
      mounts: [{ source: '/tmp/nvidia-mps', target: '/tmp/nvidia-mps', readOnly: false }],
    });
    expect(mpsParts({}, 1, '/tmp/nvidia-mps', () => false)).toBeUndefined();
    expect(() => mpsParts({ computePercent: 25 }, 1, '/tmp/nvidia-mps', () => false)).toThrow(/^gpuShare\.computePercent: GPU limits need an MPS control daemon/);
  });
});

describe('topology', () => {
  let sys: string;
  beforeEach(() => {
    sys = fs.mkdtempSync(join(tmpdir(), 'ss-topo-'));
    const w = (p: string, s: string) => {
      fs.mkdirSync(join(sys, p, '..'), { recursive: true });
      fs.writeFileSync(join(sys, p), s);
    };
    w('system/cpu/online', '0-7\n');
    w('system/node/node0/cpulist', '0-3\n');
    w('system/node/node0/distance', '10 21\n');
    w('system/node/node0/meminfo', 'Node 0 MemTotal:       1024 kB\n');
    w('system/node/node1/cpulist', '4-7\n');
    w('system/node/node1/distance', '21 10\n');
    w('pci/0000:18:00.0/numa_node', '0\n');
    w('pci/0000:86:00.0/numa_node', '1\n');
  });
  afterEach(() => fs.rmSync(sys, { recursive: true, force: true }));

  it('NUMA nodes with CPUs, memory and distances; GPUs on the node of their PCI device', () => {
    const t = hostTopology([{ index: 0, pciBusId: '00000000:18:00.0' }, { index: 1, pciBusId: '00000000:86:00.0' }], join(sys, 'system'), join(sys, 'pci'));
    expect(t.nodes).toEqual([
      { id: 0, cpus: [0, 1, 2, 3], memoryBytes: 1024 * 1024, distances: { 0: 10, 1: 21 } },
      { id: 1, cpus: [4, 5, 6, 7], memoryBytes: undefined, distances: { 0: 21, 1: 10 } },
    ]);
    expect(t.gpus.map((g) => g.numaNode)).toEqual([0, 1]);
    expect(numaNodeOfCpus([5, 6], t.nodes)).toBe(1);
    expect(numaNodeOfCpus(undefined, t.nodes)).toBeUndefined();
    expect(numaDistance(t.nodes)(0, 1)).toBe(21);
  });
});

describe('the GPU plan part', () => {
  const inventory: GpuInventory = { source: 'nvml', driverVersion: '550.54.15', devices: [{ index: 0, minor: 0, uuid: 'GPU-a' }, { index: 1, minor: 1, uuid: 'GPU-b' }] };
  const base = (more: Partial<GpuPrepareContext>): GpuPrepareContext => ({
    engine: 'native',
    inventory,
    host: { deviceNames: ['nvidia0', 'nvidia1', 'nvidiactl'], procDevices: 'Character devices:\n195 nvidia\n' },
    devDir: '/dev',
    mpsPipeDir: '/tmp/nvidia-mps',
    exists: () => false,
    ...more,
  });

  it('native: the assigned GPU\'s nodes only, no driver files, no environment', () => {
    const p = prepareGpus({ gpuCount: 1 }, base({ assigned: { gpus: [1] }, driver: { driverVersion: 'x', mounts: [{ source: '/l', target: '/t' }], skipped: [] } }))!;
    expect(p.hostNodes).toEqual(['/dev/nvidiactl', '/dev/nvidia1']);
    expect(p.mounts).toEqual([]);
    expect(p.env).toEqual([]);
    expect(p.gpus).toEqual({ indexes: [1], uuids: ['GPU-b'] });
  });

  it('nvidia with an nvidia.com/gpu spec: the GPU goes through CDI by its index or UUID', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'ss-cdi-'));
    try {
      fs.writeFileSync(join(dir, 'nv.json'), JSON.stringify({ cdiVersion: '0.5.0', kind: 'nvidia.com/gpu', devices: [{ name: 'GPU-b', containerEdits: { deviceNodes: [{ path: '/dev/nvidia0', hostPath: '/dev/null' }] } }] }));
      const p = prepareGpus({ gpuCount: 1 }, base({ engine: 'nvidia', assigned: { gpus: [1] }, cdi: () => CdiRegistry.load([dir]) }))!;
      expect(p.gpus?.cdi).toEqual(['nvidia.com/gpu=GPU-b']);
      expect(p.hostNodes).toEqual([]);
      expect(p.deviceNodes).toEqual([{ hostPath: '/dev/null', path: '/dev/nvidia0' }]);
      expect(p.env).toContain('CUDA_VISIBLE_DEVICES=GPU-b');
      expect(() => prepareGpus({ gpuCount: 1 }, base({ engine: 'nvidia', assigned: { gpus: [0] }, cdi: () => CdiRegistry.load([dir]) }))).toThrow(/gpuCount: GPU 0 has no device in the CDI specs of nvidia\.com\/gpu \(they have GPU-b\)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const migInv: GpuInventory = {
    source: 'nvml',
    devices: [
      { index: 0, minor: 0, uuid: 'GPU-a', migMode: 1, migInstances: [{ id: '0:0', gpu: 0, index: 0, uuid: 'MIG-a0', profile: '1g.18gb', gpuInstanceId: 1, computeInstanceId: 0 }, { id: '0:2', gpu: 0, index: 2, uuid: 'MIG-a2', profile: '3g.71gb', gpuInstanceId: 5, computeInstanceId: 0 }] },
      { index: 1, minor: 1, uuid: 'GPU-b' },
    ],
  };

  it('MIG without a spec: the parent\'s node and the two capability nodes the driver lists, allowed and nothing else', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'ss-caps-'));
    try {
      const caps = join(dir, 'caps');
      fs.mkdirSync(join(caps, 'gpu0/mig/gi5/ci0'), { recursive: true });
      fs.writeFileSync(join(caps, 'gpu0/mig/gi5/access'), 'DeviceFileMinor: 48\nDeviceFileMode: 292\n');
      fs.writeFileSync(join(caps, 'gpu0/mig/gi5/ci0/access'), 'DeviceFileMinor: 49\nDeviceFileMode: 292\n');
      const ctx = base({
        inventory: migInv,
        assigned: { gpus: [], mig: ['0:2'] },
        capsDir: caps,
        host: { deviceNames: ['nvidia0', 'nvidia1', 'nvidiactl'], procDevices: 'Character devices:\n195 nvidia\n237 nvidia-caps\n' },
        exists: (p) => p.startsWith('/dev/nvidia-caps/'),
        read: (p) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : undefined),
      });
      const p = prepareGpus({ gpuMig: { count: 1 } }, ctx)!;
      expect(p.gpus).toEqual({ indexes: [], mig: ['0:2'] });
      expect(p.hostNodes).toEqual(['/dev/nvidiactl', '/dev/nvidia0']);
      expect(p.deviceNodes).toEqual([
        { hostPath: '/dev/nvidia-caps/nvidia-cap48', path: '/dev/nvidia-caps/nvidia-cap48' },
        { hostPath: '/dev/nvidia-caps/nvidia-cap49', path: '/dev/nvidia-caps/nvidia-cap49' },
      ]);
      expect(p.rules.filter((r) => r.major === 237).map((r) => r.minor)).toEqual([48, 49]);
      expect(p.rules.some((r) => r.major === 195 && r.minor === 1)).toBe(false);
      // The nvidia engine names the instance by its UUID.
      expect(prepareGpus({ gpuMig: { count: 1 } }, { ...ctx, engine: 'nvidia' })!.env).toContain('CUDA_VISIBLE_DEVICES=MIG-a2');
      // What the driver does not list is an error naming the field and the file.
      expect(() => prepareGpus({ gpuMig: { count: 1 } }, { ...ctx, assigned: { gpus: [], mig: ['0:0'] } })).toThrow(/^gpuMig: MIG 0:0 cannot be given without a CDI spec: cannot read .*gpu0\/mig\/gi1\/access/);
      expect(() => prepareGpus({ gpuMig: { count: 1 } }, { ...ctx, host: { ...ctx.host, procDevices: '' } })).toThrow(/no nvidia-caps character device in \/proc\/devices/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('MIG with the nvidia engine and a spec: the instance goes through CDI by its name or UUID', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'ss-cdi-'));
    try {
      fs.writeFileSync(join(dir, 'nv.json'), JSON.stringify({ cdiVersion: '0.5.0', kind: 'nvidia.com/gpu', devices: [{ name: '0:2', containerEdits: { deviceNodes: [{ path: '/dev/nvidia0', hostPath: '/dev/null' }] } }] }));
      const ctx = base({ engine: 'nvidia', inventory: migInv, cdi: () => CdiRegistry.load([dir]) });
      const p = prepareGpus({ gpuMig: { count: 1 } }, { ...ctx, assigned: { gpus: [], mig: ['0:2'] } })!;
      expect(p.deviceNodes).toEqual([{ hostPath: '/dev/null', path: '/dev/nvidia0' }]);
      expect(p.env).toContain('NVIDIA_VISIBLE_DEVICES=MIG-a2');
      expect(() => prepareGpus({ gpuMig: { count: 1 } }, { ...ctx, assigned: { gpus: [], mig: ['0:0'] } })).toThrow(/gpuMig: MIG 0:0 has no device in the CDI specs of nvidia\.com\/gpu \(they have 0:2\)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
