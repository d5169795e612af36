/** The host's CPUs and NUMA nodes, from sysfs (and the CPU model from /proc/cpuinfo). */
import * as fs from 'node:fs';
import { join } from 'node:path';

export interface NumaNodeInfo {
  id: number;
  cpus: number[];
  memoryBytes: number | undefined;
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
        return { id, cpus: cpuList(read(join(sys, 'node', d, 'cpulist')) ?? ''), memoryBytes: kb ? Number(kb) * 1024 : undefined };
      })
      .sort((a, b) => a.id - b.id);
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
