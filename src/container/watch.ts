/**
 * How a Container object follows its init without leaking: the exit listener holds the
 * container weakly (a dropped container's listener is released with it), a container that
 * someone waits for or listens to is kept alive until its exit, and an OOM kill of a
 * non-init process is noticed through the cgroup's counter while someone listens for it.
 */
import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import type { RuntimeParts } from '../parts.js';
import type { SpawnerExit } from '../spawner/client.js';
import { abortError } from './exec.js';
import type { ExitStatus } from './types.js';

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

/**
 * The listener holds only a WeakRef. It is made in a function of its own because closures
 * made in one function share one context: a sibling closure that mentions `owner` would
 * keep it alive through the listener.
 */
function weakListener<T extends object>(ref: WeakRef<T>, onExit: (owner: T, e: SpawnerExit) => void): (e: SpawnerExit) => void {
  return (e) => {
    const o = ref.deref();
    if (o) onExit(o, e);
  };
}

/** Subscribes `owner` to its init's exit, weakly; returns the unsubscribe. */
export async function watchExitWeakly<T extends object>(parts: RuntimeParts, id: string, owner: T, onExit: (owner: T, e: SpawnerExit) => void): Promise<() => void> {
  const unwatch = await parts.watchExit(id, weakListener(new WeakRef(owner), onExit));
  const token = {};
  released.register(owner, unwatch, token);
  return () => {
    released.unregister(token);
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

/**
 * One container's exit as its object sees it: the promise every wait() shares, the weak
 * subscription to the spawner's exit event, what keeps the object alive (waiters, listeners,
 * open output streams), and the OOM watch while someone listens for 'oom'.
 */
export class ExitTracker {
  private current!: Promise<ExitStatus>;
  private resolveExit!: (s: ExitStatus) => void;
  private unwatch: (() => void) | undefined;
  private readonly retainer: Retainer;
  readonly oom: OomWatch;

  constructor(
    private readonly owner: EventEmitter,
    private readonly parts: RuntimeParts,
    private readonly id: string,
    private readonly live: () => boolean,
  ) {
    this.retainer = new Retainer(owner);
    this.oom = new OomWatch(() => this.oomKills(), () => owner.emit('oom', { id }));
    this.rearm();
    owner.on('newListener', (event: string) => this.listenersChanged(event, 1));
    owner.on('removeListener', (event: string) => this.listenersChanged(event, -1));
  }

  private listenersChanged(event: string, delta: 1 | -1): void {
    if (event === 'newListener' || event === 'removeListener') return;
    // newListener fires before the listener is added, removeListener after it is gone.
    const after = (e: string) => this.owner.listenerCount(e) + (delta > 0 ? 1 : 0);
    if (delta > 0 && after(event) === 1) this.retainer.change(1);
    if (delta < 0 && after(event) === 0) this.retainer.change(-1);
    if (event === 'oom') this.oom.set(after('oom') > 0 && this.live());
  }

  /** The cgroup's OOM-kill count; 0 once the cgroup is gone (an exit seen late). */
  oomKills(): number {
    try {
      return this.parts.cgroups.oomKills(this.id);
    } catch {
      return 0;
    }
  }

  async subscribe<T extends object>(owner: T, onExit: (owner: T, e: SpawnerExit) => void): Promise<void> {
    this.unwatch ??= await watchExitWeakly(this.parts, this.id, owner, onExit);
  }

  unsubscribe(): void {
    this.unwatch?.();
    this.unwatch = undefined;
    this.oom.set(false);
  }

  get exited(): Promise<ExitStatus> {
    return this.current;
  }

  /**
   * The cgroup's OOM-kill count when the current init started: the counter outlives a
   * restart, and only kills since then say that this run was OOM-killed.
   */
  oomKillsAtStart = 0;

  /** A new exit to wait for: the container runs again (`restart`: with a new init, in the same cgroup). */
  rearm(restart = false): void {
    if (restart) this.oomKillsAtStart = this.oomKills();
    this.current = new Promise((r) => (this.resolveExit = r));
    // Nobody has to wait() for a container: an unobserved exit is not an error.
    this.current.catch(() => undefined);
  }

  resolve(status: ExitStatus): void {
    this.resolveExit(status);
  }

  /** A wait for the exit: keeps the event loop (like a child process) and this object alive; `signal` abandons it. */
  wait(signal: AbortSignal | undefined, what: string): Promise<ExitStatus> {
    if (signal?.aborted) return Promise.reject(abortError(signal, what));
    this.parts.spawner.hold(1);
    this.retainer.change(1);
    const done = this.exited.finally(() => {
      this.parts.spawner.hold(-1);
      this.retainer.change(-1);
    });
    if (!signal) return done;
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(abortError(signal, what));
      signal.addEventListener('abort', onAbort, { once: true });
      done.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Keeps the owner alive while `stream` is open. */
  retainWhile<S extends Readable>(stream: S): S {
    this.retainer.change(1);
    stream.once('close', () => this.retainer.change(-1));
    return stream;
  }
}
