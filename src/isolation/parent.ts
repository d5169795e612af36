/** Setting up the runtime's parent cgroup in every hierarchy, once per driver. */
import type { Kernel } from '../kernel/kernel.js';
import { inContext, type Hierarchy } from './hierarchy.js';
import type { Controller } from './layout.js';

/**
 * Creates the parent in every hierarchy and lets each backend prepare it; the controllers the
 * ancestors do not pass down are added to `undelegated`.
 */
export function prepareParents(
  kernel: Kernel,
  hier: readonly Hierarchy[],
  parent: string,
  enableAncestorControllers: boolean,
  undelegated: Set<Controller>,
): void {
  const parts = parent.split('/');
  for (const h of hier) {
    const mount = h.binding.mount;
    const paths = parts.map((_, i) => `${mount}/${parts.slice(0, i + 1).join('/')}`);
    let firstNew = paths.findIndex((p) => !kernel.exists(p));
    try {
      if (firstNew >= 0) for (const p of paths.slice(firstNew)) kernel.mkdir(p);
      // The configured parent is the runtime's even when an earlier run made it.
      if (firstNew < 0) firstNew = paths.length - 1;
      const owned = paths.slice(firstNew);
      const above = firstNew > 0 ? paths[firstNew - 1]! : mount;
      const writableAncestors = enableAncestorControllers ? [mount, ...paths.slice(0, firstNew)] : [];
      for (const c of h.backend.prepareParent({ kernel, owned, above, controllers: h.controllers, writableAncestors })) {
        undelegated.add(c);
      }
    } catch (e) {
      throw inContext(e, `prepare the parent cgroup ${paths[paths.length - 1]}`, undefined);
    }
  }
}
