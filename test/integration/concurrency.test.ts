/**
 * Several host agents over one state root, against the real kernel (root): separate
 * processes, each with its own Runtime, as a fleet's agents would be. Two creating the same
 * name at once: exactly one wins. A create racing a remove: whatever the order, nothing is
 * left. Four agents churning containers side by side: every cycle works, nothing is left.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Container } from '../../src/index.js';
import type { Runtime } from '../../src/runtime.js';
import { CLEAN, leftovers } from '../helpers/leftovers.js';
import { IS_ROOT, SKIP_REASON, useTestRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

let t: TestRuntime;
let rt: Runtime;

interface Agent {
  go(): void;
  result: Promise<Record<string, unknown>>;
}

/** A host agent process, held until go() so that several begin at once. */
function agent(...args: string[]): Agent {
  const child = spawn(process.execPath, [join(__dirname, '../fixtures/agent.mjs'), t.stateRoot, rt.options.imageRoot, rt.options.cgroupParent, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const result = new Promise<Record<string, unknown>>((resolve, reject) =>
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(out) as Record<string, unknown>);
      } catch {
        reject(new Error(`agent ${args.join(' ')} exited ${code} printing ${JSON.stringify(out)}`));
      }
    }),
  );
  return { go: () => child.stdin.end('go\n'), result };
}

/** Starts the agents together (each has loaded the runtime and waits on stdin) and collects their results. */
async function together(agents: Agent[]): Promise<Record<string, unknown>[]> {
  // Node and the runtime's modules load first; then one line sets them all off.
  await new Promise((r) => setTimeout(r, 1500));
  for (const a of agents) a.go();
  return Promise.all(agents.map((a) => a.result));
}

async function removeAll(): Promise<void> {
  for (const s of await Container.list({ runtime: rt })) await (await Container.load(s.id, { runtime: rt })).remove({ force: true });
}

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'concurrency tests'))('several host agents on one state root (real kernel)', () => {
  useTestRuntime((x) => {
    t = x;
    rt = x.runtime;
  });

  it('two agents creating the same name at once: exactly one wins, the other is told who holds it', { timeout: 120_000 }, async () => {
    for (let round = 0; round < 5; round++) {
      const name = `same-${round}-${process.pid}`;
      const results = await together([agent('create', name), agent('create', name)]);
      const won = results.filter((r) => r.ok);
      const lost = results.filter((r) => !r.ok);
      expect([round, won.length, lost.length]).toEqual([round, 1, 1]);
      expect(lost[0]).toMatchObject({ code: 'EEXIST', message: expect.stringContaining(`the name is in use by ${won[0]!.id as string}`) });
      const listed = (await Container.list({ runtime: rt })).filter((s) => s.name === name);
      expect(listed).toEqual([expect.objectContaining({ id: won[0]!.id, state: 'running' })]);
      await removeAll();
      expect(leftovers(rt)).toEqual(CLEAN);
    }
  });

  it('a create racing a remove of the same name leaves nothing, whichever wins', { timeout: 120_000 }, async () => {
    for (let round = 0; round < 5; round++) {
      const name = `race-${round}-${process.pid}`;
      const [created, removed] = await together([agent('create', name), agent('remove', name, '8000')]);
      // The remover saw it and removed it; the creator either finished first or was told it went.
      expect([round, removed]).toEqual([round, expect.objectContaining({ ok: true, removed: 1 })]);
      if (!created!.ok) expect(created!.message).toEqual(expect.any(String));
      await removeAll();
      expect([round, leftovers(rt)]).toEqual([round, CLEAN]);
    }
  });

  it('four agents churning 10 containers each at once: every cycle works, nothing is left', { timeout: 180_000 }, async () => {
    const results = await together([0, 1, 2, 3].map((i) => agent('cycles', `churn${i}-${process.pid}`, '10')));
    expect(results).toEqual([0, 1, 2, 3].map(() => ({ ok: true, errors: [] })));
    expect(leftovers(rt)).toEqual(CLEAN);
  });
});
