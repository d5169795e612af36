/**
 * How a Container object follows its init without leaking: the exit listener holds the
 * container weakly (a dropped container's listener is released with it), a container that
 * someone waits for or listens to is kept alive until its exit, and an OOM kill of a
 * non-init process is noticed through the cgroup's counter while someone listens for it.
 */
import type { RuntimeParts } from '../parts.js';
import type { SpawnerExit } from '../spawner/client.js';

/** Containers someone still waits for or listens to. */
const retained = new Set<object>();
/** A dropped container's exit listener goes with it. */
const released = new FinalizationRegistry<() => void>((unwatch) => unwatch());

/** Counts reasons to keep `owner` alive; while there is one, it cannot be collected. */
export class Retainer {
  private holds = 0;
  constructor(private readonly owner: object) {}
  change(delta: 1 | -1): void {
    this.holds += delta;
    if (this.holds > 0) retained.add(this.owner);
    else retained.delete(this.owner);
  }
}

/** Subscribes `owner` to its init's exit, weakly; returns the unsubscribe. */
export async function watchExitWeakly<T extends object>(parts: RuntimeParts, id: string, owner: T, onExit: (owner: T, e: SpawnerExit) => void): Promise<() => void> {
  const ref = new WeakRef(owner);
  const unwatch = await parts.watchExit(id, (e) => {
    const o = ref.deref();
    if (o) onExit(o, e);
  });
  released.register(owner, unwatch, owner);
  return () => {
    released.unregister(owner);
    unwatch();
  };
}

/** How often the OOM-kill counter is read while someone listens for 'oom'. */
export const OOM_CHECK_MS = 1000;

/** Reports increases of a container's OOM-kill counter, polled only while wanted. */
export class OomWatch {
  private timer: NodeJS.Timeout | undefined;
  private seen = 0;
  constructor(
    private readonly read: () => number,
    private readonly report: () => void,
  ) {}

  /** Polls while `wanted`; the timer never keeps the process alive. */
  set(wanted: boolean): void {
    if (wanted && !this.timer) {
      this.seen = this.read();
      this.timer = setInterval(() => this.check(), OOM_CHECK_MS).unref();
    } else if (!wanted && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Reads the counter now; reports when it grew since the last reading. */
  check(count = this.read()): boolean {
    if (count <= this.seen) return false;
    this.seen = count;
    this.report();
    return true;
  }
}
