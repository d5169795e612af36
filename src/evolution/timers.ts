import { gridFor, sharedScheduler } from './scheduler.js';

export interface EvolutionTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Timers that fire on a shared grid of `granularityMs`: every callback due near the same
 * grid point runs from one wake-up. A hundred controllers each on its own 1-second timer
 * wake the process a hundred times a second, and on a small host those wake-ups alone cost
 * more than the evolution they drive. Due times are rounded to the nearest grid point (not
 * up), so a periodic timer keeps its period instead of drifting by a grid step each time.
 * The timers are unref'd: evolution never keeps a process alive.
 */
export function coalescingTimers(granularityMs = 250): EvolutionTimers {
  const slots = new Map<number, { timer: NodeJS.Timeout; fns: Set<() => void> }>();
  const fire = (due: number) => {
    const slot = slots.get(due);
    slots.delete(due);
    if (!slot) return;
    // One throwing callback must not cancel the others that share its wake-up; its error
    // still surfaces, as it would from a timer of its own.
    for (const fn of slot.fns) {
      try {
        fn();
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  };
  return {
    setTimeout(fn, ms) {
      const now = Date.now();
      let due = Math.round((now + ms) / granularityMs) * granularityMs;
      if (due <= now) due += granularityMs;
      let slot = slots.get(due);
      if (!slot) {
        const timer = setTimeout(() => fire(due), due - now);
        timer.unref?.();
        slot = { timer, fns: new Set() };
        slots.set(due, slot);
      }
      slot.fns.add(fn);
      return { due, fn };
    },
    clearTimeout(handle) {
      const { due, fn } = handle as { due: number; fn: () => void };
      const slot = slots.get(due);
      if (!slot) return;
      slot.fns.delete(fn);
      if (slot.fns.size === 0) {
        clearTimeout(slot.timer);
        slots.delete(due);
      }
    },
  };
}

/**
 * The default timers for an interval: a view of the process's one GenerationScheduler whose
 * due times round to gridFor(interval), so every controller with the interval wakes together.
 */
export function defaultTimers(intervalMs: number): EvolutionTimers {
  return sharedScheduler().timers(gridFor(intervalMs));
}
