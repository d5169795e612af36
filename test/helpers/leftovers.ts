/**
 * What containers leave on a host, counted under a test runtime's roots and cgroup parent:
 * state, name claims, id ranges, storage, mounts and cgroups. CLEAN is none of each.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { runtimeParts, type Runtime } from '../../src/runtime.js';

export function mountsUnder(...roots: string[]): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => roots.some((r) => l.includes(r)));
}

export interface Leftovers {
  state: string[];
  names: string[];
  idRanges: unknown[];
  storage: string[];
  mounts: number;
  cgroups: string[];
}

export const CLEAN: Leftovers = { state: [], names: [], idRanges: [], storage: [], mounts: 0, cgroups: [] };

export function leftovers(rt: Runtime): Leftovers {
  const parts = runtimeParts(rt);
  const dir = (p: string) => (fs.existsSync(p) ? fs.readdirSync(p) : []);
  return {
    state: parts.state.ids(),
    // names/.lock is the takeover lock (kernel/file-lock.ts), kept for good: not a container's.
    names: dir(join(rt.options.stateRoot, 'names')).filter((n) => n !== '.lock'),
    idRanges: parts.idRanges.claims(),
    storage: dir(join(rt.options.imageRoot, 'containers')),
    mounts: mountsUnder(rt.options.stateRoot, rt.options.imageRoot).length,
    cgroups: parts.cgroups.list(),
  };
}
