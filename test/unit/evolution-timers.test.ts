import { afterEach, describe, expect, it, vi } from 'vitest';
import { coalescingTimers } from '../../src/evolution/timers.js';

describe('coalescingTimers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires callbacks due near the same grid point from one timer', async () => {
    vi.useFakeTimers({ now: 0 });
    const t = coalescingTimers(100);
    const fired: string[] = [];
    t.setTimeout(() => fired.push('a'), 1000);
    t.setTimeout(() => fired.push('b'), 1030);
    const c = t.setTimeout(() => fired.push('c'), 1090);
    t.setTimeout(() => fired.push('d'), 1);
    expect(vi.getTimerCount()).toBe(3); // slots at 100, 1000 and 1100
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired).toEqual(['d', 'a', 'b']);
    t.clearTimeout(c);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(fired).toEqual(['d', 'a', 'b']);
  });

  it('keeps a periodic timer on its period', async () => {
    vi.useFakeTimers({ now: 0 });
    const t = coalescingTimers(250);
    const at: number[] = [];
    const tick = () => {
      at.push(Date.now());
      t.setTimeout(tick, 997); // the period less a little work
    };
    t.setTimeout(tick, 1000);
    await vi.advanceTimersByTimeAsync(5000);
    expect(at).toEqual([1000, 2000, 3000, 4000, 5000]);
  });
});
