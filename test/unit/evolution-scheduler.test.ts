import { afterEach, describe, expect, it, vi } from 'vitest';
import { GenerationScheduler, gridFor } from '../../src/evolution/scheduler.js';

describe('GenerationScheduler', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps one Node timer for any number of generations, and fires those due together from one wake-up', async () => {
    vi.useFakeTimers({ now: 0 });
    const s = new GenerationScheduler();
    const fired: string[] = [];
    for (let i = 0; i < 100; i++) s.add(() => fired.push(`c${i}`), 1000 + (i % 7) * 10, 1000);
    s.add(() => fired.push('late'), 2600, 1000); // rounds to 3000
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(999);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(fired.length).toBe(100);
    expect(fired.slice(0, 3)).toEqual(['c0', 'c1', 'c2']); // same due time: in the order added
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(2000);
    expect(fired.at(-1)).toBe('late');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('removes any entry, re-arming for the earliest that is left', async () => {
    vi.useFakeTimers({ now: 0 });
    const s = new GenerationScheduler();
    const fired: number[] = [];
    const handles = [5, 1, 4, 2, 3].map((k) => s.add(() => fired.push(k), k * 100, 100));
    s.remove(handles[1]); // the earliest
    s.remove(handles[1]); // twice is harmless
    s.remove(handles[2]);
    expect(s.size).toBe(3);
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired).toEqual([2, 3, 5]);
    s.remove(handles[0]); // already fired
    expect(s.size).toBe(0);
  });

  it('keeps a periodic generation on its period, and runs a 0 ms one at once', async () => {
    vi.useFakeTimers({ now: 130 });
    const s = new GenerationScheduler();
    const at: number[] = [];
    const tick = () => {
      at.push(Date.now());
      s.add(tick, 1200 - 3, gridFor(1200)); // the period less a little work
    };
    s.add(tick, 0, gridFor(1200));
    await vi.advanceTimersByTimeAsync(5000);
    expect(at).toEqual([130, 1200, 2400, 3600, 4800]);
  });

  it('a throwing callback does not cancel the others that share its wake-up', async () => {
    vi.useFakeTimers({ now: 0 });
    const s = new GenerationScheduler();
    const fired: string[] = [];
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    process.on('uncaughtException', onError);
    try {
      s.add(() => {
        throw new Error('boom');
      }, 100, 100);
      s.add(() => fired.push('b'), 100, 100);
      await vi.advanceTimersByTimeAsync(100);
      await new Promise((r) => queueMicrotask(() => r(undefined)));
    } finally {
      process.off('uncaughtException', onError);
    }
    expect(fired).toEqual(['b']);
  });

  it('grids divide the interval into parts of at most a second', () => {
    expect(gridFor(1000)).toBe(1000);
    expect(gridFor(300)).toBe(300);
    expect(gridFor(1200)).toBe(600);
    expect(gridFor(30_000)).toBe(1000);
    expect(gridFor(3_600_000)).toBe(1000);
  });
});
