/** Freezing and thawing one container's cgroup, on v1 (freezer.state) or v2 (cgroup.freeze). */
import { RuntimeError } from '../errors.js';
import type { Kernel } from '../kernel/kernel.js';
import type { DirReader } from './backend.js';
import type { Hierarchy } from './hierarchy.js';

export interface FreezerTarget {
  kernel: Kernel;
  h: Hierarchy;
  /** The container's directory in the freezer's hierarchy. */
  dir: string;
  reader: DirReader;
  timeoutMs: number;
  sleep: (ms: number) => Promise<void>;
}

/** Resolves once the kernel says every task is frozen; thaws again and throws ETIMEDOUT otherwise. */
export async function freezeCgroup({ kernel, h, dir, reader, timeoutMs, sleep }: FreezerTarget): Promise<void> {
  const w = h.backend.freezeWrite(true);
  if (h.binding.version === 2 && !kernel.exists(`${dir}/cgroup.freeze`)) {
    throw new RuntimeError('cgroup.freeze is missing (the v2 freezer needs Linux 5.2+)', { code: 'EUNSUPPORTED', step: 'freezer', path: dir });
  }
  kernel.cgroupWrite(`${dir}/${w.file}`, w.value);
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (h.backend.isFrozen(reader)) return;
    if (Date.now() >= deadline) break;
    // v1 leaves FREEZING while a task sleeps uninterruptibly; writing FROZEN again makes the
    // kernel retry the tasks it could not freeze (runc does the same).
    if (h.binding.version === 1 && attempt >= 4) kernel.cgroupWrite(`${dir}/${w.file}`, w.value);
    await sleep(Math.min(1 << attempt, 50));
  }
  const thaw = h.backend.freezeWrite(false);
  kernel.cgroupWrite(`${dir}/${thaw.file}`, thaw.value);
  throw new RuntimeError(`freeze: tasks did not all stop within ${timeoutMs} ms (thawed again)`, {
    code: 'ETIMEDOUT',
    step: 'freezer',
    path: dir,
  });
}

/** Resolves once the cgroup no longer reads frozen. */
export async function thawCgroup({ kernel, h, dir, reader, timeoutMs, sleep }: FreezerTarget): Promise<void> {
  const w = h.backend.freezeWrite(false);
  kernel.cgroupWrite(`${dir}/${w.file}`, w.value);
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; h.backend.isFrozen(reader); attempt++) {
    if (Date.now() >= deadline) {
      throw new RuntimeError('thaw: the cgroup still reads frozen (is an ancestor frozen?)', { code: 'ETIMEDOUT', step: 'freezer', path: dir });
    }
    await sleep(Math.min(1 << attempt, 50));
  }
}
