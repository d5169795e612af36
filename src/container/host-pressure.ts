/**
 * Whether the host as a whole is short of memory or CPU, for autoscale's rule that
 * cooperative personalities yield first. From the kernel's pressure stall information
 * (/proc/pressure/{memory,cpu}: the share of the last 10 s in which some task waited for
 * the resource) and, for memory, MemAvailable in /proc/meminfo. A host without PSI
 * (CONFIG_PSI off, or psi=0) is judged by MemAvailable alone, and never short of CPU.
 */
import type { Kernel } from '../kernel/kernel.js';

export type PressureResource = 'memory' | 'cpu';

export interface HostPressure {
  /** Which resources the host is short of now. */
  short(): Record<PressureResource, boolean>;
}

export interface HostPressureThresholds {
  /** PSI memory "some avg10" (percent of the last 10 s some task stalled on memory) above which memory is short (default 10). */
  memorySomeAvg10?: number;
  /**
   * PSI cpu "some avg10" above which CPU is short (default 40): some runnable task waits for
   * a CPU a fair share of the time on any busy host, so only a large share means short.
   */
  cpuSomeAvg10?: number;
  /** MemAvailable / MemTotal below which memory counts as short (default 0.1). */
  memAvailableFraction?: number;
}

/** The "some" line's avg10 of a /proc/pressure file, in percent; undefined when absent. */
export function psiSomeAvg10(text: string): number | undefined {
  const m = /^some avg10=([\d.]+)/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** MemTotal and MemAvailable of /proc/meminfo, in kB; undefined when either is absent. */
export function memInfo(text: string): { totalKb: number; availableKb: number } | undefined {
  const total = /^MemTotal:\s+(\d+) kB/m.exec(text);
  const avail = /^MemAvailable:\s+(\d+) kB/m.exec(text);
  return total && avail ? { totalKb: Number(total[1]), availableKb: Number(avail[1]) } : undefined;
}

/** Reads the host's pressure at most once per `cacheMs`: every autoscaled container asks each tick. */
export class ProcHostPressure implements HostPressure {
  private at = -Infinity;
  private value: Record<PressureResource, boolean> = { memory: false, cpu: false };

  constructor(
    private readonly read: (path: string) => string | undefined,
    private readonly thresholds: HostPressureThresholds = {},
    private readonly now: () => number = Date.now,
    private readonly cacheMs = 500,
  ) {
    for (const k of ['memorySomeAvg10', 'cpuSomeAvg10'] as const) {
      const t = thresholds[k];
      if (t !== undefined && !(t >= 0 && t <= 100)) throw new RangeError(`${k}: expected a percentage 0..100, got ${t}`);
    }
    const f = thresholds.memAvailableFraction;
    if (f !== undefined && !(f >= 0 && f <= 1)) throw new RangeError(`memAvailableFraction: expected 0..1, got ${f}`);
  }

  short(): Record<PressureResource, boolean> {
    const t = this.now();
    if (t - this.at < this.cacheMs) return this.value;
    this.at = t;
    const over = (path: string, limit: number) => {
      const v = psiSomeAvg10(this.read(path) ?? '');
      return v !== undefined && v > limit;
    };
    const mem = memInfo(this.read('/proc/meminfo') ?? '');
    const lowMem = mem !== undefined && mem.availableKb < (this.thresholds.memAvailableFraction ?? 0.1) * mem.totalKb;
    this.value = {
      memory: lowMem || over('/proc/pressure/memory', this.thresholds.memorySomeAvg10 ?? 10),
      cpu: over('/proc/pressure/cpu', this.thresholds.cpuSomeAvg10 ?? 40),
    };
    return this.value;
  }
}

const byKernel = new WeakMap<Kernel, HostPressure>();

/** The host pressure source of a kernel (one per process for the native kernel). */
export function hostPressure(kernel: Kernel): HostPressure {
  let p = byKernel.get(kernel);
  if (!p) {
    p = new ProcHostPressure((path) => {
      try {
        return kernel.readFile(path);
      } catch {
        return undefined; // no PSI on this kernel, or no such file in a test's fake
      }
    });
    byKernel.set(kernel, p);
  }
  return p;
}
