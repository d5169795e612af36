/** Removing a container's cgroup directory and everything its processes made below it. */
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import { errnoOf } from './hierarchy.js';

/** rmdir of `dir` and its child cgroups, deepest first, retrying EBUSY until `deadline`. */
export async function removeTree(kernel: Kernel, dir: string, deadline: number, sleep: (ms: number) => Promise<void>): Promise<void> {
  if (!kernel.exists(dir)) return;
  // A container with its own cgroup namespace may have made cgroups below its own; rmdir
  // refuses a cgroup with children, so they go first, deepest first.
  for (const name of kernel.readdir(dir)) {
    if (kernel.exists(`${dir}/${name}/cgroup.procs`)) await removeTree(kernel, `${dir}/${name}`, deadline, sleep);
  }
  for (let attempt = 0; ; attempt++) {
    try {
      kernel.rmdir(dir);
      return;
    } catch (e) {
      if (errnoOf(e) !== 'EBUSY' || Date.now() >= deadline) throw e;
      await sleep(Math.min(5 << attempt, 100));
    }
  }
}

/** The EBUSY error of a destroy that timed out, naming (some of) the processes still inside. */
export function stillBusyError(id: string, first: RuntimeError, left: readonly number[]): RuntimeError {
  const still = left.length > 0 ? ` (processes still in it: ${left.slice(0, 10).join(', ')}${left.length > 10 ? ', …' : ''})` : '';
  return new RuntimeError(`destroy cgroup of "${id}": ${first.message}${still}`, {
    code: 'EBUSY',
    step: 'cleanup',
    errno: first.errno,
    errnoNumber: first.errnoNumber,
    syscall: first.syscall,
    path: first.path,
    containerId: id,
    cause: first,
  });
}
