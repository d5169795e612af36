/**
 * What differs between a v1 hierarchy and the v2 tree, behind one interface: preparing the
 * runtime's parent, reading statistics, freezing, undoing a write. Which file gets which
 * value for a limit is not here but in the one table (mapping.ts).
 */
import type { Kernel } from '../kernel/kernel.js';
import type { Controller } from './layout.js';
import type { Write } from './mapping.js';

export interface CgroupStats {
  cpu?: {
    usageNs: number;
    /** CFS bandwidth periods that elapsed while the container had runnable tasks. */
    periods: number;
    throttledPeriods: number;
    throttledNs: number;
  };
  memory?: {
    currentBytes: number;
    /** The high-water mark (v1 max_usage_in_bytes, v2 memory.peak); current where absent. */
    peakBytes: number;
    /** Infinity when unlimited. */
    limitBytes: number;
    oomKills: number;
  };
  pids?: { current: number; /** Infinity when unlimited. */ limit: number };
  blockIo?: { readBytes: number; writeBytes: number; readOps: number; writeOps: number };
}

/** Reads a file of the container's directory in one hierarchy; `tryRead` gives undefined for a missing file. */
export interface DirReader {
  read(file: string): string;
  tryRead(file: string): string | undefined;
}

export interface ParentPlan {
  kernel: Kernel;
  /** Directories of the parent path, top-down, that this runtime owns and may write to. */
  owned: string[];
  /** The directory right above the first owned one (not ours: read only). */
  above: string;
  /** The controllers this hierarchy serves for the driver. */
  controllers: Controller[];
  /**
   * Directories above the parent, top-down, the runtime was explicitly allowed to write to
   * (CgroupDriverOptions.enableAncestorControllers); empty by default.
   */
  writableAncestors: string[];
}

export interface Backend {
  readonly version: 1 | 2;
  /**
   * Makes the parent ready for children; returns the controllers that turned out to be
   * unavailable below it (v2: not delegated by the ancestors).
   */
  prepareParent(plan: ParentPlan): Controller[];
  /** The file whose content is needed to undo `w` (v1 devices.allow → devices.list). */
  snapshotFile(w: Write): string;
  /** The writes undoing `w`, given the snapshot; `group` dedupes multi-write undos. */
  restore(w: Write, previous: string): { group?: string; writes: Write[] };
  /** Adds what `controller`'s files say to `into`; one read per file. */
  readStats(controller: Controller, dir: DirReader, into: CgroupStats): void;
  /** One read per controller: CPU time used (ns) or memory in use (bytes); undefined for others. */
  readUsage(controller: Controller, dir: DirReader): number | undefined;
  freezeWrite(frozen: boolean): Write;
  /** True once the kernel reports every task frozen (v1 FROZEN, v2 "frozen 1"). */
  isFrozen(dir: DirReader): boolean;
  oomKills(dir: DirReader): number;
}

/** "key value" lines (cpu.stat, memory.events, memory.oom_control) as a map. */
export function flatKeyed(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0) m.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return m;
}

/** v1 reports "no limit" as PAGE_COUNTER_MAX × page size (9223372036854771712 on x86-64), v2 as "max". */
export function parseLimit(text: string): number {
  const t = text.trim();
  if (t === 'max' || t === '-1') return Infinity;
  const n = Number(t);
  return n >= 2 ** 62 ? Infinity : n;
}
