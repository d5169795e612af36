import { describe, expect, it } from 'vitest';
import { Container, ContainerConfig, Personality, Runtime } from '../../src/index.js';
import { IS_ROOT, SKIP_REASON, useTestRuntime, cgroupFile } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const IMAGE = 'stratoswarm/base-agent:latest';
const MIB = 1024 * 1024;

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'autoscale'))('autoscale (root, real kernel)', () => {
  let rt: Runtime;
  useTestRuntime((x) => (rt = x.runtime));

  it('a workload OOM-killed under a too-low limit gets a larger one by the personality\'s step and then completes', async () => {
    const c = await Container.create(
      ContainerConfig.builder()
        .name('hungry')
        .image(IMAGE)
        .personality(Personality.Balanced)
        // dd's 70 MiB buffer does not fit 64 MiB: the first try is OOM-killed, the shell lives on.
        .command(['sh', '-c', 'n=0; until dd if=/dev/zero of=/dev/null bs=70M count=1 2>/dev/null; do n=$((n+1)); sleep 0.3; done; echo done after $n'])
        .memoryLimit(64 * MIB)
        .autoscale({ intervalMs: 50 })
        .build(),
      { runtime: rt },
    );
    const events: { resource: string; from: number; to: number; reason: string }[] = [];
    c.on('autoscale', (e: (typeof events)[number]) => events.push(e));
    await c.start();
    const exit = await c.wait();
    expect(exit.exitCode).toBe(0);
    expect(c.logs().stdout.trim()).toBe('done after 1');
    const step = Personality.Balanced.decisions.saturationStep;
    expect(events).toEqual([{ id: c.id, resource: 'memory', from: 64 * MIB, to: Math.ceil((64 * MIB * step) / 4096) * 4096, reason: 'oom' }]);
    expect(c.record().resources).toMatchObject({ memoryLimit: events[0]!.to });
    await c.remove();
  });

  it('sustained CPU throttling raises the CPU limit, bounded by the cap', async () => {
    const c = await Container.create(
      ContainerConfig.builder().name('busy').image(IMAGE).command(['sh', '-c', 'while :; do :; done']).cpuLimit(0.2).autoscale({ intervalMs: 100, maxCpus: 0.3 }).build(),
      { runtime: rt },
    );
    const events: { resource: string; from: number; to: number; reason: string }[] = [];
    c.on('autoscale', (e: (typeof events)[number]) => events.push(e));
    await c.start();
    for (let i = 0; i < 100 && !events.some((e) => e.to === 0.3); i++) await new Promise((r) => setTimeout(r, 50));
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.resource === 'cpu' && e.reason === 'throttled' && e.to > e.from && e.to <= 0.3)).toBe(true);
    expect(events.at(-1)!.to).toBe(0.3);
    const quota = cgroupFile(rt, c.id, ['cpu.max', 'cpu.cfs_quota_us'])!;
    expect(quota.startsWith('30000')).toBe(true);
    await c.remove({ force: true });
  });
});
