/**
 * The host's CPUs, NUMA nodes (with the kernel's distances between them) and GPUs (PCI bus,
 * NUMA node of the PCI device, NVLink peers when NVML reports them), from sysfs, /proc/cpuinfo
 * and the GPU inventory: what GPU scheduling ranks by and runtime.topology() returns.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { MigInstance } from './mig.js';

export interface NumaNodeInfo {
  id: number;
  cpus: number[];
  memoryBytes: number | undefined;
  /** The kernel's distance to each node by id (node<N>/distance; 10 is local). */
  distances?: Record<number, number> | undefined;
}

export interface CpuTopology {
  model: string | undefined;
  online: number[];
  nodes: NumaNodeInfo[];
}

/** "0-3,6" → [0, 1, 2, 3, 6] */
export function cpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

/** [0, 1, 2, 3, 6] → "0-3,6" */
export function cpuRanges(cpus: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < cpus.length; ) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j]! + 1) j++;
    out.push(j > i ? `${cpus[i]}-${cpus[j]}` : `${cpus[i]}`);
    i = j + 1;
  }
  return out.join(',');
}

function read(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function readTopology(sys = '/sys/devices/system', cpuinfo = '/proc/cpuinfo'): CpuTopology {
  const online = cpuList(read(join(sys, 'cpu/online')) ?? '');
  const model = /^model name\s*:\s*(.+)$/m.exec(read(cpuinfo) ?? '')?.[1]?.trim();
  let nodes: NumaNodeInfo[] = [];
  try {
    nodes = fs
      .readdirSync(join(sys, 'node'))
      .filter((d) => /^node\d+$/.test(d))
      .map((d) => {
        const id = Number(d.slice(4));
        const kb = /MemTotal:\s+(\d+) kB/.exec(read(join(sys, 'node', d, 'meminfo')) ?? '')?.[1];
        return { id, cpus: cpuList(read(join(sys, 'node', d, 'cpulist')) ?? ''), memoryBytes: kb ? Number(kb) * 1024 : undefined, distance: read(join(sys, 'node', d, 'distance')) };
      })
      .sort((a, b) => a.id - b.id)
      .map(({ distance, ...n }, _, all) => {
        // The distance file lists one number per node, in the order of the node ids.
        const nums = (distance ?? '').trim().split(/\s+/).filter(Boolean).map(Number);
        return nums.length === all.length ? { ...n, distances: Object.fromEntries(all.map((o, i) => [o.id, nums[i]!])) } : n;
      });
  } catch {
    // no NUMA support compiled in: one implicit node
  }
  if (nodes.length === 0) nodes = [{ id: 0, cpus: online, memoryBytes: undefined }];
  return { model, online, nodes };
}

/** The NUMA node of a PCI device ("00000000:17:00.0" as NVML spells it); undefined when unknown. */
export function pciNumaNode(busId: string | undefined, bus = '/sys/bus/pci/devices'): number | undefined {
  if (!busId) return undefined;
  const id = busId.toLowerCase().replace(/^0000(?=[0-9a-f]{4}:)/, '');
  const n = Number(read(join(bus, id, 'numa_node'))?.trim());
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export interface GpuTopology {
  index: number;
  uuid?: string | undefined;
  pciBusId?: string | undefined;
  numaNode?: number | undefined;
  nvlinkPeers?: number[] | undefined;
  pcieLevels?: number[] | undefined;
  mig?: boolean | undefined;
  migInstances?: MigInstance[] | undefined;
}

export interface HostTopology extends CpuTopology {
  gpus: GpuTopology[];
}

/** The host's topology: CPUs and NUMA nodes from sysfs, GPUs from the inventory placed on their nodes. */
export function hostTopology(
  gpus: readonly { index: number; uuid?: string | undefined; pciBusId?: string | undefined; nvlinkPeers?: number[] | undefined; pcieLevels?: number[] | undefined; migMode?: number | undefined; migInstances?: MigInstance[] | undefined }[],
  sys = '/sys/devices/system',
  bus = '/sys/bus/pci/devices',
): HostTopology {
  const topo = readTopology(sys);
  return { ...topo, gpus: gpus.map((g) => ({ index: g.index, uuid: g.uuid, pciBusId: g.pciBusId, numaNode: pciNumaNode(g.pciBusId, bus), nvlinkPeers: g.nvlinkPeers, pcieLevels: g.pcieLevels, mig: g.migMode === 1, ...(g.migInstances ? { migInstances: g.migInstances } : {}) })) };
}

/** The NUMA node a container's CPUs are on (the node holding most of them); undefined when unknown. */
export function numaNodeOfCpus(cpus: readonly number[] | undefined, nodes: readonly NumaNodeInfo[]): number | undefined {
  if (!cpus?.length || nodes.length < 2) return undefined;
  const counts = nodes.map((n) => ({ id: n.id, count: cpus.filter((c) => n.cpus.includes(c)).length }));
  const best = counts.sort((a, b) => b.count - a.count || a.id - b.id)[0]!;
  return best.count > 0 ? best.id : undefined;
}

/** Node-to-node distance from the topology, 10 local and 20 remote where the kernel does not say. */
export function numaDistance(nodes: readonly NumaNodeInfo[]): (a: number, b: number) => number {
  return (a, b) => nodes.find((n) => n.id === a)?.distances?.[b] ?? (a === b ? 10 : 20);
}
