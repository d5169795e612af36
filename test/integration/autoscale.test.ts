import fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Container, ContainerConfig, EvolutionConfig, Personality, Runtime } from '../../src/index.js';
import { IS_ROOT, SKIP_REASON, useTestRuntime, cgroupFile } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const IMAGE = 'stratoswarm/base-agent:latest';
const MIB = 1024 * 1024;

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'autoscale'))('autoscale (root, real kernel)', () => {
  let rt: Runtime;
  useTestRuntime((x) => (rt = x.runtime));

  it('a workload OOM-killed under a too-low limit gets a larger one by the personality\'s step and then completes', async () => {
    // The shell retries once the limit has grown (the host drops a file when the autoscale
    // event comes), so a busy machine cannot make it retry before the new limit is there.
    const signal = fs.mkdtempSync(join(tmpdir(), 'ss-autoscale-'));
    fs.chmodSync(signal, 0o755);
    const c = await Container.create(
      ContainerConfig.builder()
        .name('hungry')
        .image(IMAGE)
        .personality(Personality.Balanced)
        .volume({ source: signal, target: '/signal', readOnly: true })
        // dd's 70 MiB buffer does not fit 64 MiB: the first try is OOM-killed, the shell lives on.
        .command(['sh', '-c', 'n=0; until dd if=/dev/zero of=/dev/null bs=70M count=1 2>/dev/null; do n=$((n+1)); w=0; until [ -e /signal/grown-$n ] || [ $w -gt 200 ]; do w=$((w+1)); sleep 0.05; done; done; echo done after $n'])
        .memoryLimit(64 * MIB)
        .autoscale({ intervalMs: 50 })
        .build(),
      { runtime: rt },
    );
    const events: { resource: string; from: number; to: number; reason: string }[] = [];
    c.on('autoscale', (e: (typeof events)[number]) => {
      events.push(e);
      fs.writeFileSync(join(signal, `grown-${events.length}`), '');
    });
    await c.start();
    const exit = await c.wait();
    expect(exit.exitCode).toBe(0);
    expect(c.logs().stdout.trim()).toBe('done after 1');
    const step = Personality.Balanced.decisions.saturationStep;
    expect(events).toEqual([{ id: c.id, resource: 'memory', from: 64 * MIB, to: Math.ceil((64 * MIB * step) / 4096) * 4096, reason: 'oom' }]);
    expect(c.record().resources).toMatchObject({ memoryLimit: events[0]!.to });
    await c.remove();
    fs.rmSync(signal, { recursive: true });
  });

  it('is on by default while a container evolves (evolution then proposes no less than the grown limit); autoscale(false) keeps it off', async () => {
    const hungry = (name: string, b: (x: ReturnType<typeof ContainerConfig.builder>) => unknown = () => undefined) => {
      const x = ContainerConfig.builder()
        .name(name)
        .image(IMAGE)
        .command(['sh', '-c', 'n=0; until dd if=/dev/zero of=/dev/null bs=70M count=1 2>/dev/null; do n=$((n+1)); [ $n -gt 8 ] && exit 3; sleep 0.3; done; echo done after $n'])
        .memoryLimit(64 * MIB);
      b(x);
      return Container.create(x.build(), { runtime: rt });
    };
    const evolution = EvolutionConfig.builder().generationInterval(500).bounds('cpuLimit', 0.5, 1).build();
    const on = await hungry('evolving');
    const events: { resource: string; reason: string; to: number }[] = [];
    on.on('autoscale', (e: (typeof events)[number]) => events.push(e));
    await on.start();
    await on.enableEvolution(evolution);
    expect((await on.wait()).exitCode).toBe(0);
    expect(events[0]).toMatchObject({ resource: 'memory', reason: 'oom' });
    await on.remove();
    const off = await hungry('opted-out', (x) => x.autoscale(false));
    off.on('autoscale', () => expect.fail('autoscale(false) must keep autoscale off'));
    await off.start();
    await off.enableEvolution(evolution);
    expect((await off.wait()).exitCode).toBe(3);
    await off.remove();
  }, 60_000);

  it('an init OOM-killed under its limit is restarted with the grown limit, which it keeps', async () => {
    const c = await Container.create(
      ContainerConfig.builder()
        .name('hungry-init')
        .image(IMAGE)
        .personality(Personality.Balanced)
        // The init itself needs 70 MiB under 64 MiB; the pause gives the growth after the restart time to land first.
        .command(['sh', '-c', 'sleep 0.5; exec dd if=/dev/zero of=/dev/null bs=70M count=1'])
        .memoryLimit(64 * MIB)
        .autoscale({ intervalMs: 50 })
        .restart('on-failure', { maxRetries: 3, initialBackoffMs: 50 })
        .build(),
      { runtime: rt },
    );
    const events: { resource: string; from: number; to: number; reason: string }[] = [];
    const exits: { exitCode: number | null; oomKilled: boolean }[] = [];
    c.on('autoscale', (e: (typeof events)[number]) => events.push(e));
    c.on('exit', (e: (typeof exits)[number]) => exits.push(e));
    await c.start();
    for (let i = 0; i < 200 && !exits.some((e) => e.exitCode === 0); i++) await new Promise((r) => setTimeout(r, 50));
    expect(exits.map((e) => e.oomKilled)).toEqual([true, false]);
    expect(exits.at(-1)!.exitCode).toBe(0);
    const grown = Math.ceil((64 * MIB * Personality.Balanced.decisions.saturationStep) / 4096) * 4096;
    expect(events).toEqual([{ id: c.id, resource: 'memory', from: 64 * MIB, to: grown, reason: 'oom' }]);
    expect((await c.status()).restartCount).toBe(1);
    expect(c.record().resources).toMatchObject({ memoryLimit: grown });
    expect(Number(cgroupFile(rt, c.id, ['memory.max', 'memory.limit_in_bytes']))).toBe(grown);
    await c.remove();
  }, 30_000);

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
