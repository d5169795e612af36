/** One mounted cgroup hierarchy as the driver sees it, and the small helpers every part of the driver shares. */
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import type { Backend, DirReader } from './backend.js';
import { CONTROLLERS, hierarchies, type Binding, type CgroupLayout, type Controller } from './layout.js';
import { V1 } from './v1.js';
import { V2 } from './v2.js';

export interface Hierarchy {
  binding: Binding;
  backend: Backend;
  controllers: Controller[];
}

/** Every mounted hierarchy with its backend and the controllers the layout binds to it. */
export function buildHierarchies(layout: CgroupLayout): Hierarchy[] {
  return hierarchies(layout).map((binding) => ({
    binding,
    backend: binding.version === 1 ? V1 : V2,
    controllers: CONTROLLERS.filter((c) => {
      const b = layout.controllers[c];
      return b !== undefined && b.version === binding.version && b.mount === binding.mount;
    }),
  }));
}

export function findHierarchy(hier: readonly Hierarchy[], layout: CgroupLayout, c: Controller): Hierarchy | undefined {
  const b = layout.controllers[c];
  return b && hier.find((h) => h.binding.version === b.version && h.binding.mount === b.mount);
}

/** Reads files of one cgroup directory; tryRead is for files only newer kernels have. */
export function dirReader(kernel: Kernel, dir: string): DirReader {
  return {
    read: (file) => kernel.readFile(`${dir}/${file}`),
    tryRead: (file) => {
      try {
        return kernel.readFile(`${dir}/${file}`);
      } catch (e) {
        if (e instanceof RuntimeError && e.code === 'ENOTFOUND') return undefined;
        throw e;
      }
    },
  };
}

export function errnoOf(e: unknown): string | undefined {
  return e instanceof RuntimeError ? e.errno : undefined;
}

/** Prefixes a RuntimeError with the operation (and container) it happened in; other errors pass as they are. */
export function inContext(e: unknown, what: string, id: string | undefined): unknown {
  if (!(e instanceof RuntimeError)) return e;
  if (id !== undefined) e.containerId ??= id;
  return e.wrap(what);
}
