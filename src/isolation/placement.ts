/**
 * A container's cgroup placed at a path of its own rather than under the runtime's parent
 * (an OCI bundle's linux.cgroupsPath): the same relative path in every hierarchy, its
 * missing ancestors made and prepared as the runtime's parent is.
 */
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import { inContext, type Hierarchy } from './hierarchy.js';
import type { Controller } from './layout.js';
import { prepareParents } from './parent.js';

const COMPONENT_RE = /^[A-Za-z0-9_.:@+-]+$/;

/**
 * Checks a placement (relative to each hierarchy's root, no leading "/"): components of
 * cgroup-name characters, none "." or "..", at least one.
 */
export function checkPlacement(path: string, field = 'cgroup path'): void {
  const parts = path.split('/');
  if (path === '' || parts.some((c) => c === '' || c === '.' || c === '..' || !COMPONENT_RE.test(c)) || path.length > 4096) {
    throw new RuntimeError(`${field} ${JSON.stringify(path)}: expected a cgroup path like "/machine/ctr1" (letters, digits, "_", ".", ":", "@", "+", "-"; no "." or ".." components)`, {
      code: 'EINVAL',
      step: 'cgroup',
    });
  }
}

/** The directory a placement's cgroup goes in ('' for a hierarchy's root). */
export function placementParent(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/**
 * Makes the parent of a placement in every hierarchy (the directories missing on the way,
 * v1 cpusets filled, the v2 controllers enabled top-down, as runc's cgroupfs driver does);
 * returns the v2 controllers the ancestors do not pass down.
 */
export function preparePlacementParent(kernel: Kernel, hier: readonly Hierarchy[], parent: string): Set<Controller> {
  const undelegated = new Set<Controller>();
  if (parent !== '') {
    prepareParents(kernel, hier, parent, true, undelegated);
    return undelegated;
  }
  // Right under the root: nothing to make; v2 still needs the controllers enabled there.
  for (const h of hier) {
    if (h.binding.version !== 2) continue;
    const mount = h.binding.mount;
    try {
      for (const c of h.backend.prepareParent({ kernel, owned: [], above: mount, controllers: h.controllers, writableAncestors: [mount] })) undelegated.add(c);
    } catch (e) {
      throw inContext(e, `prepare the cgroup root ${mount}`, undefined);
    }
  }
  return undelegated;
}

/**
 * A new v1 cpuset has no cpus and no mems until they are written, and a task cannot join
 * it before (ENOSPC): a placed container's copies its parent's where the parent does not
 * hand them down (clone_children off, as on a hierarchy's root).
 */
export function fillCpuset(kernel: Kernel, h: Hierarchy, dir: string): void {
  if (h.binding.version !== 1 || !h.controllers.includes('cpuset')) return;
  const up = dir.slice(0, dir.lastIndexOf('/'));
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    if (kernel.readFile(`${dir}/${file}`).trim() === '') kernel.cgroupWrite(`${dir}/${file}`, kernel.readFile(`${up}/${file}`).trim());
  }
}

/** Which containers a driver has placed where: set at create, looked up once otherwise, dropped at destroy. */
export class Placements {
  private readonly placed = new Map<string, string | null>();
  private readonly parents = new Map<string, Set<Controller>>();

  constructor(private readonly lookup: ((id: string) => string | undefined) | undefined) {}

  /** The container's path relative to each hierarchy's root; undefined for one under the runtime's parent. */
  path(id: string): string | undefined {
    let path = this.placed.get(id);
    if (path === undefined) {
      path = this.lookup?.(id) ?? null;
      this.placed.set(id, path);
    }
    return path ?? undefined;
  }

  set(id: string, path: string): void {
    checkPlacement(path);
    this.placed.set(id, path);
  }

  forget(id: string): void {
    this.placed.delete(id);
  }

  /** Prepares the parent of a placed container once; its undelegated controllers. */
  prepare(kernel: Kernel, hier: readonly Hierarchy[], path: string): Set<Controller> {
    const parent = placementParent(path);
    let undelegated = this.parents.get(parent);
    if (!undelegated) {
      undelegated = preparePlacementParent(kernel, hier, parent);
      this.parents.set(parent, undelegated);
    }
    return undelegated;
  }
}
