/**
 * NVML through the addon (dlopen at run time), against a stand-in library the test builds
 * from test/fixtures/fake-nvml.c: the same calls a real driver answers on a GPU host.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeError } from '../../src/errors.js';
import { assignGpus, gpuInventory } from '../../src/gpu/inventory.js';
import { NativeKernel } from '../../src/kernel/kernel.js';
import { candidatePaths } from '../../src/kernel/native.js';

const HAVE_CC = spawnSync('sh', ['-c', 'command -v cc']).status === 0;
const BUILT = candidatePaths('stratoswarm_native.node').some((p) => fs.existsSync(p));
const SKIP = !BUILT ? 'the addon is not built (npm run build:native)' : !HAVE_CC ? 'needs a C compiler to build the stand-in NVML library' : '';
if (SKIP) console.warn(`NVML tests skipped: ${SKIP}`);

let dir: string;
let lib: string;

describe.skipIf(!!SKIP)(`NVML through the addon${SKIP ? ` — skipped: ${SKIP}` : ''}`, () => { // reason printed above
  beforeAll(() => {
    dir = fs.mkdtempSync(join(tmpdir(), 'ss-nvml-'));
    lib = join(dir, 'libnvidia-ml.so.1');
    const r = spawnSync('cc', ['-shared', '-fPIC', '-O1', '-o', lib, join(__dirname, '../fixtures/fake-nvml.c')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the stand-in NVML failed: ${r.stderr}`);
  });
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads every GPU: name, UUID, minor number, memory, utilisation, PCI bus', async () => {
    const inv = await new NativeKernel().nvmlInventory(lib);
    expect(inv.library).toBe(lib);
    expect(inv.driverVersion).toBe('999.99.fake');
    expect(inv.devices).toEqual([
      { index: 0, name: 'Fake H200', uuid: 'GPU-fake-0', pciBusId: '00000000:18:00.0', minor: 4, memoryTotal: 141 * 2 ** 30, memoryUsed: 0, gpuUtilization: 42, memoryUtilization: 7, processes: [], migMode: 0, migDevices: [], nvlinkPeerBusIds: ['00000000:19:00.0'], pcieLevels: [0, 10] },
      // A GPU that does not report utilisation says so with -1.
      { index: 1, name: 'Fake H200', uuid: 'GPU-fake-1', pciBusId: '00000000:19:00.0', minor: 5, memoryTotal: 141 * 2 ** 30, memoryUsed: 2 ** 30, gpuUtilization: -1, memoryUtilization: -1, processes: [], migMode: 0, migDevices: [], nvlinkPeerBusIds: ['00000000:18:00.0'], pcieLevels: [10, 0] },
    ]);
  });

  it('a library that cannot be loaded is ELOAD naming dlopen; a failing init names the call and NVML\'s message', async () => {
    const k = new NativeKernel();
    const missing = join(dir, 'missing.so');
    const e = await k.nvmlInventory(missing).then(() => undefined, (err: unknown) => err);
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e).toMatchObject({ code: 'ELOAD', step: 'none', path: missing });
    expect((e as Error).message).toMatch(/^NVML: dlopen .*missing\.so/);
    process.env.FAKE_NVML_FAIL_INIT = '1';
    try {
      const init = await k.nvmlInventory(lib).then(() => undefined, (err: unknown) => err);
      expect(init).toBeInstanceOf(RuntimeError);
      expect(init).toMatchObject({ code: 'ESYSCALL', step: 'none', path: lib, message: 'NVML: nvmlInit: Driver Not Loaded (9)' });
    } finally {
      delete process.env.FAKE_NVML_FAIL_INIT;
    }
  });

  it('the event loop keeps running while NVML is slow to initialise', async () => {
    process.env.FAKE_NVML_DELAY_MS = '300';
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      const started = Date.now();
      const inv = await new NativeKernel().nvmlInventory(lib);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(inv.devices).toHaveLength(2);
      expect(ticks).toBeGreaterThanOrEqual(5);
    } finally {
      clearInterval(timer);
      delete process.env.FAKE_NVML_DELAY_MS;
    }
  });

  it('the inventory maps NVML indexes to their /dev/nvidia<minor> nodes for assignment', async () => {
    const inv = await gpuInventory(new NativeKernel(), lib);
    expect(inv.source).toBe('nvml');
    const dev = fs.mkdtempSync(join(tmpdir(), 'ss-dev-'));
    try {
      for (const n of ['nvidia4', 'nvidia5', 'nvidiactl']) fs.writeFileSync(join(dev, n), '');
      const a = assignGpus({ gpuDevices: [1] }, dev, { deviceNames: fs.readdirSync(dev), procDevices: 'Character devices:\n195 nvidia\n' }, inv)!;
      expect(a.deviceNodes).toEqual([join(dev, 'nvidiactl'), join(dev, 'nvidia5')]);
      expect(a.rules.filter((r) => r.major === 195 && r.allow).map((r) => r.minor)).toEqual([255, 5]);
    } finally {
      fs.rmSync(dev, { recursive: true, force: true });
    }
  });

  it('compute processes with their memory and utilisation, and NVLink peers as indexes', async () => {
    process.env.FAKE_NVML_PROCS = '1:4242:512:37,0:77:1:0,1:4343:2048:5';
    try {
      const inv = await gpuInventory(new NativeKernel(), lib);
      expect(inv.devices[1]!.processes).toEqual([
        { pid: 4242, usedMemory: 512 * 2 ** 20, smUtilization: 37, memoryUtilization: 18 },
        { pid: 4343, usedMemory: 2048 * 2 ** 20, smUtilization: 5, memoryUtilization: 2 },
      ]);
      expect(inv.devices.map((d) => d.nvlinkPeers)).toEqual([[1], [0]]);
    } finally {
      delete process.env.FAKE_NVML_PROCS;
    }
  });

  it('a GPU with MIG on lists its MIG devices: index, UUID, profile, memory, GPU and compute instance', async () => {
    process.env.FAKE_NVML_MIG = '1g.18gb,,3g.71gb';
    try {
      const raw = await new NativeKernel().nvmlInventory(lib);
      expect(raw.devices[0]!.migMode).toBe(1);
      expect(raw.devices[0]!.migDevices).toEqual([
        { index: 0, name: 'Fake H200 MIG 1g.18gb', uuid: 'MIG-fake-0-0', memoryTotal: 18 * 2 ** 30, gpuInstanceId: 1, computeInstanceId: 0 },
        { index: 2, name: 'Fake H200 MIG 3g.71gb', uuid: 'MIG-fake-0-2', memoryTotal: 71 * 2 ** 30, gpuInstanceId: 5, computeInstanceId: 0 },
      ]);
      expect(raw.devices[1]).toMatchObject({ migMode: 0, migDevices: [] });
      const inv = await gpuInventory(new NativeKernel(), lib);
      expect(inv.devices[0]!.migInstances).toEqual([
        { id: '0:0', gpu: 0, index: 0, uuid: 'MIG-fake-0-0', profile: '1g.18gb', memoryBytes: 18 * 2 ** 30, gpuInstanceId: 1, computeInstanceId: 0 },
        { id: '0:2', gpu: 0, index: 2, uuid: 'MIG-fake-0-2', profile: '3g.71gb', memoryBytes: 71 * 2 ** 30, gpuInstanceId: 5, computeInstanceId: 0 },
      ]);
      expect(inv.devices[1]!.migInstances).toBeUndefined();
      expect('migDevices' in inv.devices[0]!).toBe(false);
    } finally {
      delete process.env.FAKE_NVML_MIG;
    }
  });

  it('without NVML the inventory falls back to /dev and says why', async () => {
    const inv = await gpuInventory(new NativeKernel(), join(dir, 'missing.so'), '/nonexistent');
    expect(inv).toMatchObject({ source: 'dev', devices: [] });
    expect(inv.nvmlError).toMatch(/dlopen/);
  });
});
