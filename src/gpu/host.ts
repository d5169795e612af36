/**
 * The host side of GPUs for a runtime: where specs, device nodes, the linker cache and sysfs
 * are (overridable, so tests run against fakes), the driver discovery through the linker
 * cache, and the reservation of a container's GPUs before its plan is compiled.
 */
import { RuntimeError } from '../errors.js';
import type { ContainerConfig } from '../container/config.js';
import type { Kernel } from '../kernel/kernel.js';
import type { CdiRegistry } from './cdi/registry.js';
import { parseQualifiedName } from './cdi/spec.js';
import { driverFiles, nodeDriverHost, parseLdconfig, type DriverFiles } from './driver.js';
import type { GpuInventory } from './inventory.js';
import { migByName } from './mig.js';
import { NVIDIA_GPU_KIND, type GpuPrepareContext } from './prepare.js';
import { strategyOf, type GpuAssignmentRecord } from './scheduler.js';
import type { GpuAssignmentStore } from './store.js';
import { cpuList, numaDistance, numaNodeOfCpus, type HostTopology } from './topology.js';

export type { DriverFiles } from './driver.js';

export interface GpuHostOptions {
  /** CDI spec directories, lowest priority first (default /etc/cdi, /var/run/cdi; STRATOSWARM_CDI_SPEC_DIRS). */
  cdiSpecDirs?: string[] | undefined;
  /** Where the GPUs' device nodes are (default /dev). */
  devDir?: string | undefined;
  /** The dynamic linker's cache the driver's libraries are found in (default: ldconfig's own). */
  ldCache?: string | undefined;
  /** Directories searched for the driver's utilities (default: PATH). */
  binDirs?: string[] | undefined;
  /** The driver's MIG capability files (default /proc/driver/nvidia/capabilities). */
  nvidiaCapsDir?: string | undefined;
  /** MPS's pipe directory (default /tmp/nvidia-mps). */
  mpsPipeDir?: string | undefined;
  /** sysfs's /sys/devices/system and /sys/bus/pci/devices (topology). */
  sysDir?: string | undefined;
  pciDir?: string | undefined;
}

/** What prepare gets from the runtime about GPUs and CDI. */
export type GpuSetup = Pick<GpuPrepareContext, 'engine' | 'devDir' | 'mpsPipeDir' | 'capsDir'> & {
  cdi: () => CdiRegistry;
  driver: DriverFiles | undefined;
  assigned(id: string): { gpus: number[]; mig?: string[] | undefined } | undefined;
};

/** The driver's files, from `ldconfig -p` (of `ldCache` when given) and the driver version. */
export async function discoverDriver(kernel: Pick<Kernel, 'runProgram'>, driverVersion: string | undefined, opts: GpuHostOptions): Promise<DriverFiles> {
  const args = opts.ldCache ? ['-C', opts.ldCache, '-p'] : ['-p'];
  let text = '';
  try {
    const r = await kernel.runProgram('ldconfig', args);
    if (r.status === 0) text = r.stdout;
  } catch {
    // no ldconfig: no libraries to inject
  }
  const host = nodeDriverHost();
  return driverFiles(parseLdconfig(text), driverVersion, { ...host, binDirs: opts.binDirs ?? host.binDirs });
}

/**
 * Reserves GPUs for container `id` when its configuration asks for them; returns the
 * assignment, or undefined when it asks for none. The caller releases it if the create fails.
 */
export async function reserveGpus(
  parts: { gpus(): Promise<GpuInventory>; topology(inv?: GpuInventory): Promise<HostTopology>; gpuAssignments: GpuAssignmentStore; kernel: Pick<Kernel, 'numaNodeCpus'> },
  id: string,
  config: ContainerConfig,
  inventory?: GpuInventory,
): Promise<GpuAssignmentRecord | undefined> {
  const r = config.spec.resources;
  const affinity = config.hardwareAffinity();
  let devices = r.gpuDevices ?? (affinity?.spec.gpuDevice !== undefined ? [affinity.spec.gpuDevice] : undefined);
  // Whole GPUs named as CDI devices (nvidia.com/gpu=0, =GPU-<uuid>, =all) are held as exclusively
  // as those asked for by index, and MIG instances NVML knows (=0:1, =MIG-<uuid>) as those asked for by count.
  const named = (config.spec.devices ?? []).map(parseQualifiedName).filter((q) => q?.kind === NVIDIA_GPU_KIND).map((q) => q!.name);
  if (!r.gpuCount && !devices?.length && !r.gpuMig && named.length === 0) return undefined;
  const inv = inventory ?? (await parts.gpus());
  let migNames: string[] = [];
  if (named.length) {
    const instances = inv.devices.flatMap((d) => d.migInstances ?? []);
    migNames = [...new Set(named.map((n) => migByName(n, instances)?.id).filter((n): n is string => n !== undefined))];
    // `all` is every whole GPU the spec has: those with MIG on are reached through their instances.
    const byName = named.flatMap((n) => (n === 'all' ? inv.devices.filter((d) => d.migMode !== 1).map((d) => d.index) : inv.devices.filter((d) => String(d.index) === n || d.uuid === n).map((d) => d.index)));
    if (byName.length) devices = [...new Set([...(devices ?? []), ...byName])];
    if (!r.gpuCount && !devices?.length && !r.gpuMig && migNames.length === 0) return undefined;
  }
  const mig = r.gpuMig || migNames.length ? { count: r.gpuMig?.count, profile: r.gpuMig?.profile, names: migNames } : undefined;
  const topo = await parts.topology(inv);
  const cpus = affinity?.cpus((node) => parts.kernel.numaNodeCpus(node)) ?? (r.cpusetCpus ? cpuList(r.cpusetCpus) : undefined);
  const numaNode = affinity?.spec.numaNode ?? numaNodeOfCpus(cpus, topo.nodes);
  try {
    return parts.gpuAssignments.reserve(
      id,
      config.name,
      { count: r.gpuCount, devices, mig, shared: !!r.gpuShare, numaNode, strategy: strategyOf(config.spec.personality.traits()) },
      topo.gpus,
      numaDistance(topo.nodes),
    );
  } catch (e) {
    if (e instanceof RuntimeError) e.message = `create container ${config.name}: ${e.message}`;
    throw e;
  }
}
