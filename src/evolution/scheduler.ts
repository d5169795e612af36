/**
 * One timer for every evolving controller of the process: generations due are kept in a
 * min-heap, and a single unref'd Node timer is armed for the earliest. Each due time is
 * rounded to a grid, so controllers with the same interval come due together and run from
 * one wake-up: their counter reads then share one native call (cgroup-counters.ts) and run
 * while the code and the caches are warm. On a small host, a wake-up and its cold caches
 * cost more than the generation it runs.
 */
import type { EvolutionTimers } from './timers.js';

interface Entry {
  due: number;
  seq: number;
  fn: () => void;
  /** Position in the heap; -1 once fired or cleared. */
  at: number;
}

export class GenerationScheduler {
  private readonly heap: Entry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;
  private seq = 0;

  /** Generations waiting, for tests and statistics. */
  get size(): number {
    return this.heap.length;
  }

  /**
   * Runs `fn` in `ms`, rounded to the nearest multiple of `gridMs` (never before now: a due
   * time that rounds into the past moves one grid step on). `ms` 0 runs at the next wake-up,
   * off the grid: a controller's first tick only opens its measurement window.
   */
  add(fn: () => void, ms: number, gridMs: number): Entry {
    const now = Date.now();
    let due = now;
    if (ms > 0) {
      due = Math.round((now + ms) / gridMs) * gridMs;
      if (due <= now) due += gridMs;
    }
    const e: Entry = { due, seq: this.seq++, fn, at: this.heap.length };
    this.heap.push(e);
    this.up(e.at);
    this.arm();
    return e;
  }

  remove(handle: unknown): void {
    const e = handle as Entry;
    if (!e || e.at < 0 || this.heap[e.at] !== e) return;
    const last = this.heap.pop()!;
    if (last !== e) {
      this.heap[e.at] = last;
      last.at = e.at;
      this.down(last.at);
      this.up(last.at);
    }
    e.at = -1;
    if (this.heap.length === 0) this.disarm();
  }

  /** A view with the EvolutionTimers shape whose due times round to `gridMs`. */
  timers(gridMs: number): EvolutionTimers {
    return { setTimeout: (fn, ms) => this.add(fn, ms, gridMs), clearTimeout: (h) => this.remove(h) };
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = Date.now();
    const due: Entry[] = [];
    while (this.heap.length > 0 && this.heap[0]!.due <= now) {
      const e = this.heap[0]!;
      this.remove(e);
      due.push(e);
    }
    // One throwing callback must not cancel the others that share its wake-up; its error
    // still surfaces, as it would from a timer of its own.
    for (const e of due) {
      try {
        e.fn();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    this.arm();
  }

  private arm(): void {
    const top = this.heap[0];
    if (!top || top.due >= this.armedFor) return;
    this.disarm();
    this.armedFor = top.due;
    this.timer = setTimeout(() => this.fire(), Math.max(0, top.due - Date.now()));
    this.timer.unref?.();
  }

  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private less(a: Entry, b: Entry): boolean {
    return a.due < b.due || (a.due === b.due && a.seq < b.seq);
  }

  private swap(i: number, j: number): void {
    const h = this.heap;
    [h[i], h[j]] = [h[j]!, h[i]!];
    h[i]!.at = i;
    h[j]!.at = j;
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(this.heap[i]!, this.heap[p]!)) return;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(this.heap[l]!, this.heap[m]!)) m = l;
      if (r < n && this.less(this.heap[r]!, this.heap[m]!)) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}

/**
 * The grid for an interval: the interval itself up to a second, else the largest divisor of
 * the interval into whole parts no longer than a second — so a periodic generation keeps its
 * exact period and every controller with that interval shares its wake-ups.
 */
export function gridFor(intervalMs: number): number {
  return Math.max(1, intervalMs / Math.ceil(intervalMs / 1000));
}

let shared: GenerationScheduler | undefined;

/** The process's one scheduler. */
export function sharedScheduler(): GenerationScheduler {
  shared ??= new GenerationScheduler();
  return shared;
}
