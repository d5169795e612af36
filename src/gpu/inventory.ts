/**
 * GPUs of the host, as device nodes. A container given GPUs gets their device nodes bound
 * into its /dev and device-cgroup rules that allow exactly them (plus the control and UVM
 * nodes the driver needs). Discovery reads /dev, so it needs no driver library; NVML (for
 * memory, utilisation and topology) and CDI specs come on top of it.
 */
import { RuntimeError } from '../errors.js';
import { DEFAULT_DEVICE_RULES, nvidiaDeviceRules } from '../isolation/devices.js';
import type { DeviceRule } from '../isolation/resources.js';
import type { Kernel } from '../kernel/kernel.js';
import type { NvmlDevice } from '../kernel/native.js';
import { migInstances, type MigInstance } from './mig.js';

export interface GpuInventory {
  /** "nvml" when the driver's library answered, "dev" when only /dev was read. */
  source: 'nvml' | 'dev';
  driverVersion?: string;
  /** Why NVML was not used, when it was not. */
  nvmlError?: string;
  devices: (Omit<Partial<NvmlDevice>, 'migDevices'> & {
    index: number;
    minor: number;
    /** GPUs it has an active NVLink to. */
    nvlinkPeers?: number[];
    /** Its MIG instances, when MIG is on (mig.ts). */
    migInstances?: MigInstance[];
    /** Containers holding it (runtime.gpus()). */
    assignedTo?: string[];
  })[];
}

/**
 * The host's GPUs: from NVML when it loads (names, UUIDs, memory, utilisation, and the minor
 * number of each device node), else from the /dev/nvidia<N> nodes alone.
 */
export async function gpuInventory(kernel: Pick<Kernel, 'nvmlInventory' | 'deviceNames'>, library?: string, devDir = '/dev'): Promise<GpuInventory> {
  try {
    const inv = await kernel.nvmlInventory(library);
    return {
      source: 'nvml',
      driverVersion: inv.driverVersion,
      devices: inv.devices.map(({ migDevices, ...d }) => {
        // NVLink peers as indexes: the far end's PCI bus id is one of the other GPUs'.
        const norm = (b: string) => b.toLowerCase().replace(/^0+(?=[0-9a-f]{4}:)/, '');
        const peers = (d.nvlinkPeerBusIds ?? []).map((b) => inv.devices.find((o) => o.pciBusId && norm(o.pciBusId) === norm(b))?.index).filter((i): i is number => i !== undefined);
        return { ...d, minor: d.minor >= 0 ? d.minor : d.index, nvlinkPeers: peers, ...(d.migMode === 1 ? { migInstances: migInstances(d.index, migDevices) } : {}) };
      }),
    };
  } catch (e) {
    return {
      source: 'dev',
      nvmlError: (e as Error).message,
      devices: hostGpus(kernel.deviceNames(devDir)).map((minor, index) => ({ index, minor })),
    };
  }
}

export interface GpuAssignment {
  indexes: number[];
  /** Host device nodes to bind into the container's /dev. */
  deviceNodes: string[];
  rules: DeviceRule[];
}

/** The N of each nvidia<N> among a device directory's names, in order. */
export function hostGpus(deviceNames: readonly string[]): number[] {
  return deviceNames
    .map((n) => /^nvidia(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** What assignment needs to know of the host: the device directory's names and /proc/devices. */
export interface GpuHost {
  deviceNames: readonly string[];
  procDevices: string;
}

/**
 * Picks the GPUs for a container: the listed indexes, or the first `count`. Throws when the
 * host does not have them, so a container never starts believing it has a GPU it lacks.
 */
export function assignGpus(request: { gpuCount?: number | undefined; gpuDevices?: number[] | undefined }, devDir: string, host: GpuHost, inventory?: GpuInventory): GpuAssignment | undefined {
  const wanted = request.gpuDevices ?? (request.gpuCount ? Array.from({ length: request.gpuCount }, (_, i) => i) : []);
  if (wanted.length === 0) return undefined;
  // GPU i is NVML's index i; its device node is /dev/nvidia<minor>, which need not be i.
  const inv = inventory ?? { source: 'dev' as const, devices: hostGpus(host.deviceNames).map((minor, index) => ({ index, minor })) };
  const present = inv.devices.map((d) => d.index);
  const missing = wanted.filter((g) => !present.includes(g));
  if (missing.length > 0) {
    const field = request.gpuDevices ? 'gpuDevices' : 'gpuCount';
    throw new RuntimeError(
      `${field}: GPU ${missing.join(', ')} requested but this host has ${present.length ? `only GPUs ${present.join(', ')}` : 'no NVIDIA GPU'} (no ${devDir}/nvidia${missing[0]}${inv.source === 'dev' && 'nvmlError' in inv && inv.nvmlError ? `; ${inv.nvmlError}` : ''})`,
      { code: 'EUNSUPPORTED', step: 'config', path: `${devDir}/nvidia${missing[0]}` },
    );
  }
  const minors = wanted.map((g) => inv.devices.find((d) => d.index === g)!.minor);
  const extra = ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools'].filter((n) => host.deviceNames.includes(n)).map((n) => `${devDir}/${n}`);
  return {
    indexes: wanted,
    deviceNodes: [...extra, ...minors.map((m) => `${devDir}/nvidia${m}`)],
    rules: [...DEFAULT_DEVICE_RULES, ...nvidiaDeviceRules(minors, host.procDevices)],
  };
}
