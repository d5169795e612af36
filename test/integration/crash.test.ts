/**
 * Crash safety against the real kernel (root): a host agent SIGKILLed at every named step of
 * create, start, exec, update, stop and remove — and, separately, its spawner SIGKILLed there
 * — leaves nothing that a fresh runtime's reconcile() and remove({ force: true }) do not
 * clear: no state, name claim, id range, storage, mount, cgroup or process.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, OPERATION_STEPS, PROVISION_STEPS } from '../../src/index.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { CLEAN, leftovers } from '../helpers/leftovers.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

if (!IS_ROOT) console.warn(`crash integration tests skipped: ${SKIP_REASON}`);

let t: TestRuntime;
let rt: Runtime;

function agent(step: string, mode: 'agent' | 'spawner'): Promise<{ code: number | null; signal: string | null; out: string }> {
  const child = spawn(process.execPath, [join(__dirname, '../fixtures/die-at.mjs'), t.stateRoot, rt.options.imageRoot, rt.options.cgroupParent, step, mode], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, out })));
}

describe.skipIf(!IS_ROOT)(`crash safety (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  beforeAll(() => {
    t = testRuntime();
    rt = t.runtime;
  });
  afterAll(async () => {
    await t.cleanup();
  });

  const steps = [...PROVISION_STEPS, ...OPERATION_STEPS];
  for (const mode of ['agent', 'spawner'] as const) {
    it(`${mode} SIGKILLed at each of ${steps.length} steps: a fresh runtime clears everything`, { timeout: 240_000 }, async () => {
      for (const step of steps) {
        const r = await agent(step, mode);
        if (mode === 'agent') expect([step, r.signal]).toEqual([step, 'SIGKILL']);
        else expect([step, r.out]).toEqual([step, 'done\n']);
        // A fresh host agent over the same roots, as after a restart.
        const fresh = new Runtime({ ...rt.options, logger: pino({ level: 'silent' }), env: {}, cgroups: runtimeParts(rt).cgroups, spawnerIdleMs: 30_000 });
        try {
          await fresh.reconcile();
          for (const s of await Container.list({ runtime: fresh })) await (await Container.load(s.id, { runtime: fresh })).remove({ force: true });
          expect([step, leftovers(rt)]).toEqual([step, CLEAN]);
        } finally {
          await fresh.close();
        }
      }
    });
  }
});
