/** Reading usage and limits: which hierarchy serves each statistic, and the reads themselves. */
import type { CgroupStats, DirReader } from './backend.js';
import type { Hierarchy } from './hierarchy.js';
import type { Controller } from './layout.js';

export interface StatTarget {
  controller: Controller;
  h: Hierarchy;
}

const STAT_CONTROLLERS: readonly Controller[] = ['cpu', 'cpuacct', 'memory', 'pids', 'blkio'];

/** The controllers to read statistics from, each once. */
export function statTargets(hierarchyOf: (c: Controller) => Hierarchy | undefined): StatTarget[] {
  const out: StatTarget[] = [];
  for (const c of STAT_CONTROLLERS) {
    const h = hierarchyOf(c);
    // On v2 cpu.stat serves both cpu and cpuacct; read it once.
    if (!h || (c === 'cpuacct' && h.binding.version === 2 && hierarchyOf('cpu')?.binding.version === 2)) continue;
    out.push({ controller: c, h });
  }
  return out;
}

export function readStats(
  targets: readonly StatTarget[],
  skip: ReadonlySet<Controller>,
  readerOf: (h: Hierarchy) => DirReader,
  only?: readonly Controller[],
): CgroupStats {
  const out: CgroupStats = {};
  for (const { controller, h } of targets) {
    if (skip.has(controller)) continue;
    if (only && !only.includes(controller)) continue;
    h.backend.readStats(controller, readerOf(h), out);
  }
  return out;
}

export function readUsage(
  targets: readonly StatTarget[],
  skip: ReadonlySet<Controller>,
  readerOf: (h: Hierarchy) => DirReader,
): { cpuNs: number; memoryBytes: number } {
  const out = { cpuNs: 0, memoryBytes: 0 };
  for (const { controller, h } of targets) {
    if (skip.has(controller)) continue;
    const v = h.backend.readUsage(controller, readerOf(h));
    if (v === undefined) continue;
    if (controller === 'memory') out.memoryBytes = v;
    else out.cpuNs = v;
  }
  return out;
}
