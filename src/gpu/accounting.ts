/**
 * Per-container GPU usage from NVML's process accounting: of the compute processes NVML lists
 * on the container's GPUs, those whose host pid is in the container's cgroups, summed per GPU
 * (device memory; SM and memory-controller utilisation where the GPU samples it per process).
 */
import type { GpuInventory } from './inventory.js';

export interface ContainerGpuUsage {
  index: number;
  uuid?: string | undefined;
  /** The container's processes on this GPU. */
  processes: number;
  memoryUsedBytes: number;
  /** Percent of the GPU's SMs; undefined when the GPU does not sample it per process. */
  smUtilization?: number | undefined;
  memoryUtilization?: number | undefined;
}

export function containerGpuUsage(inv: GpuInventory, gpus: readonly number[], pids: ReadonlySet<number>): ContainerGpuUsage[] {
  return gpus.map((index) => {
    const d = inv.devices.find((x) => x.index === index);
    const mine = (d?.processes ?? []).filter((p) => pids.has(p.pid));
    const sum = (k: 'smUtilization' | 'memoryUtilization') => (mine.some((p) => p[k] >= 0) ? mine.reduce((n, p) => n + Math.max(0, p[k]), 0) : undefined);
    return {
      index,
      uuid: d?.uuid,
      processes: mine.length,
      memoryUsedBytes: mine.reduce((n, p) => n + Math.max(0, p.usedMemory), 0),
      smUtilization: sum('smUtilization'),
      memoryUtilization: sum('memoryUtilization'),
    };
  });
}

/** The pids listed in a container's cgroup.procs files (every hierarchy), as a set. */
export function cgroupPids(procsFiles: readonly string[], read: (path: string) => string): Set<number> {
  const out = new Set<number>();
  for (const f of procsFiles) {
    let text = '';
    try {
      text = read(f);
    } catch {
      continue; // a hierarchy that is gone
    }
    for (const l of text.split('\n')) if (/^\d+$/.test(l.trim())) out.add(Number(l.trim()));
  }
  return out;
}
