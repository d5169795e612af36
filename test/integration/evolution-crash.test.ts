/**
 * A host agent that dies mid-run loses at most the generation in flight: a child process
 * evolving a real container is SIGKILLed at a random moment; a new process loads the
 * container, enables evolution again and resumes at the journal's last complete generation,
 * with its genome.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig, EvolutionConfig } from '../../src/index.js';
import { EvolutionEngine } from '../../src/evolution/engine.js';
import { JOURNAL_FILE, replayJournal } from '../../src/evolution/journal.js';
import type { EvolutionSnapshot } from '../../src/evolution/controller.js';
import { Runtime } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const FIXTURE = join(__dirname, '../fixtures/evolve-agent.mjs');
const BUILT = fs.existsSync(join(__dirname, '../../dist/src/index.js'));
const skip = !IS_ROOT ? SKIP_REASON : !BUILT ? 'dist/ is not built (npm run build:ts)' : '';
if (skip) console.warn(`evolution crash test skipped: ${skip}`);

const INTERVAL_MS = 150;
// A little CPU and a lot of sleep: measurements that move with the limits and with noise.
const WORKLOAD = 'while :; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; usleep 30000; done';

let t: TestRuntime;
let rt: Runtime;

describe.skipIf(skipBecause(skip, 'evolution crash-resume'))("evolution survives a host agent's SIGKILL (root)", () => {
  beforeAll(() => {
    t = testRuntime();
    rt = t.runtime;
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('resumes at the generation and genome of the journal’s last complete record', { timeout: 90_000 }, async () => {
    const cfg = ContainerConfig.builder().name(`crash-${process.pid}`).image('stratoswarm/base-agent:latest').command(['/bin/sh', '-c', WORKLOAD]).cpuLimit(1).memoryLimit(256 * 2 ** 20).build();
    const c = await Container.create(cfg, { runtime: rt });
    await c.start();
    try {
      const agent = spawn(process.execPath, [FIXTURE, t.stateRoot, rt.options.imageRoot, rt.options.cgroupParent, c.id, String(INTERVAL_MS)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let seen = 0;
      let buffered = '';
      const target = 12 + Math.floor(Math.random() * 8);
      await new Promise<void>((resolve, reject) => {
        agent.once('exit', (code, signal) => reject(new Error(`the agent exited early (${code ?? signal})`)));
        agent.stdout.on('data', (d: Buffer) => {
          buffered += d.toString();
          const lines = buffered.split('\n');
          buffered = lines.pop()!;
          for (const l of lines) seen = Math.max(seen, (JSON.parse(l) as { generation?: number }).generation ?? 0);
          if (seen >= target) resolve();
        });
      });
      // Somewhere inside a generation: sampling, updating, or between ticks.
      await new Promise((r) => setTimeout(r, Math.random() * INTERVAL_MS));
      const died = new Promise((r) => agent.once('exit', r));
      agent.kill('SIGKILL');
      await died;

      // What the dead agent left: the state file's base and the journal after it.
      const fresh = new Runtime({ ...rt.options, logger: pino({ level: 'silent' }), env: {} });
      try {
        const again = await Container.load(c.id, { runtime: fresh });
        expect(again.state).toBe('running'); // the container outlived its host agent
        const base = (again.record().evolution as { snapshot: EvolutionSnapshot }).snapshot;
        expect(base.engine.generation).toBe(0); // the state file was written at enable only
        const replayed = replayJournal(join(again.record().paths.stateDir, JOURNAL_FILE), base.engine)!;
        expect(replayed).toBeDefined();
        const last = replayed.engine.generation;
        console.log(`killed after generation ${seen} was reported; the journal's last complete generation is ${last} (${replayed.records} records)`);
        expect(last).toBeGreaterThanOrEqual(target - 1);
        expect(last).toBeGreaterThanOrEqual(seen - 1); // at most the generation in flight is lost
        const expected = EvolutionEngine.restore(replayed.engine).state();

        const config = EvolutionConfig.builder().generationInterval(INTERVAL_MS).bounds('cpuLimit', 0.1, 2).bounds('memoryLimit', 64 * 2 ** 20, 512 * 2 ** 20).seed(17).build();
        await again.enableEvolution(config);
        const resumed = again.evolutionState()!;
        expect(resumed.generation).toBe(last);
        expect(resumed.current).toEqual(expected.current);
        expect(resumed.best).toEqual(expected.best);
        expect(resumed.stepSizes).toEqual(expected.stepSizes);
        expect(resumed.history.at(-1)?.generation).toBe(last);
        while (again.evolutionState()!.generation < last + 2) await new Promise((r) => setTimeout(r, 50));
        // The genome the journal had proposed is the one measured next.
        expect(again.evolutionState()!.history.find((h) => h.generation === last + 1)?.genome).toEqual(expected.current);
        await again.disableEvolution();
        expect(again.state).toBe('running');
      } finally {
        await fresh.close();
      }
    } finally {
      await c.remove({ force: true });
    }
  });
});
