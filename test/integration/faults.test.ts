/**
 * Failures at every named step, against the real kernel (root): a system call failing there
 * with ENOSPC, EMFILE or EIO makes the operation fail with an error that names the step and
 * the errno; a failed create leaves nothing at all (no reconcile needed), a failed operation
 * leaves the container as it was and removable. Also a real full disk: a state root on a
 * tmpfs with no room left.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, OPERATION_STEPS, PROVISION_STEPS, RuntimeError } from '../../src/index.js';
import type { FaultStep } from '../../src/parts.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { CLEAN, leftovers } from '../helpers/leftovers.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const ERRNOS = [
  ['ENOSPC', 28, 'write'],
  ['EMFILE', 24, 'open'],
  ['EIO', 5, 'read'],
] as const;

let t: TestRuntime;
let rt: Runtime;
/** The step to fail and how; undefined runs everything normally. */
let failing: { step: FaultStep; errno: (typeof ERRNOS)[number] } | undefined;

function injected(errno: (typeof ERRNOS)[number], step: FaultStep): NodeJS.ErrnoException {
  const [code, n, syscall] = errno;
  return Object.assign(new Error(`${syscall}: ${code} (injected at ${step})`), { code, errno: -n, syscall });
}

let n = 0;
const config = (network: 'none' | 'bridge') =>
  ContainerConfig.builder()
    .name(`fault-${++n}-${process.pid}`)
    .image('stratoswarm/base-agent:latest')
    .command(['/bin/sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.1; done'])
    .network(network)
    .build();

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'fault injection tests'))('a system call failing at every step (real kernel)', () => {
  beforeAll(() => {
    t = testRuntime();
    // The same roots, with a fault hook that fails the chosen step.
    rt = new Runtime({
      ...t.runtime.options,
      logger: pino({ level: 'silent' }),
      env: {},
      cgroups: runtimeParts(t.runtime).cgroups,
      spawnerIdleMs: 30_000,
      faults: (step) => {
        if (failing?.step === step) throw injected(failing.errno, step);
      },
    });
  });
  afterAll(async () => {
    failing = undefined;
    await rt?.close();
    await t?.cleanup();
  });

  it(`create: each of ${PROVISION_STEPS.length} steps failing with ENOSPC, EMFILE and EIO leaves nothing behind`, { timeout: 120_000 }, async () => {
    for (const step of PROVISION_STEPS) {
      for (const errno of ERRNOS) {
        failing = { step, errno };
        const cfg = config(step === 'network' ? 'bridge' : 'none');
        const err = await Container.create(cfg, { runtime: rt }).then(
          () => undefined,
          (e: unknown) => e,
        );
        failing = undefined;
        expect(err, `${step} ${errno[0]}`).toBeInstanceOf(RuntimeError);
        const e = err as RuntimeError;
        expect([step, e.message]).toEqual([step, expect.stringContaining(`step ${step}`)]);
        expect([step, e.errno, e.errnoNumber, e.syscall]).toEqual([step, errno[0], errno[1], errno[2]]);
        expect([step, errno[0], leftovers(rt)]).toEqual([step, errno[0], CLEAN]);
      }
    }
  });

  it(`start, exec, update, stop, remove: each failing leaves the container as it was, and removable`, { timeout: 120_000 }, async () => {
    for (const step of OPERATION_STEPS) {
      for (const errno of ERRNOS) {
        const c = await Container.create(config('none'), { runtime: rt });
        if (step !== 'start') await c.start();
        const before = (await c.status()).state;
        failing = { step, errno };
        const op: Record<typeof step, () => Promise<unknown>> = {
          start: () => c.start(),
          exec: () => c.exec(['true']),
          update: () => c.update({ pidsLimit: 64 }),
          stop: () => c.stop({ timeoutMs: 2000 }),
          remove: () => c.remove({ force: true }),
          teardown: () => c.remove({ force: true }),
        };
        const err = await op[step]().then(
          () => undefined,
          (e: unknown) => e,
        );
        failing = undefined;
        expect(err, `${step} ${errno[0]}`).toBeInstanceOf(RuntimeError);
        const e = err as RuntimeError;
        expect([step, e.message, e.errno, e.containerId === undefined]).toEqual([step, expect.stringContaining(`step ${step}`), errno[0], false]);
        // Teardown fails after remove killed the init: the container is stopped, not running.
        const after = (await Container.load(c.id, { runtime: rt }).then((x) => x.status())).state;
        expect([step, after]).toEqual([step, step === 'teardown' ? 'stopped' : before]);
        // The operation works once the fault is gone (a failed stop can be retried).
        if (step === 'start') await c.start();
        if (step === 'exec') expect((await c.exec(['true'])).exitCode).toBe(0);
        await c.remove({ force: true });
        expect([step, errno[0], leftovers(rt)]).toEqual([step, errno[0], CLEAN]);
      }
    }
  });

  it('a full disk under the state root: create fails with ENOSPC naming the step, and leaves nothing', { timeout: 60_000 }, async () => {
    const root = fs.mkdtempSync('/tmp/ss-full-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', root]);
    const full = new Runtime({ ...t.runtime.options, stateRoot: root, logger: pino({ level: 'silent' }), env: {}, cgroups: runtimeParts(t.runtime).cgroups, spawnerIdleMs: 30_000 });
    try {
      // A first container works; then the disk fills up.
      const ok = await Container.create(config('none'), { runtime: full });
      await ok.remove({ force: true });
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${join(root, 'filler')}`, 'bs=4k'], { stdio: 'ignore' });
      } catch {
        // dd ends with ENOSPC: the point
      }
      const err = await Container.create(config('none'), { runtime: full }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).errno).toBe('ENOSPC');
      expect((err as RuntimeError).message).toMatch(/^(claim name|create container \S+: step (state|id-range))/);
      fs.rmSync(join(root, 'filler'));
      // The tmpfs itself is the one mount under its root.
      expect(leftovers(full)).toEqual({ ...CLEAN, mounts: 1 });
    } finally {
      await full.close({ stopSpawner: true, force: true });
      execFileSync('umount', ['-l', root]);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
