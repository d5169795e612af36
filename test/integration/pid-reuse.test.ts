import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Container, ContainerConfig, RuntimeError } from '../../src/index.js';
import { runtimeParts, type Runtime } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, useTestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const NS_LAST_PID = '/proc/sys/kernel/ns_last_pid';

/** A host process with exactly `pid`, made by steering the next pid the kernel hands out. */
async function processWithPid(pid: number): Promise<ChildProcess | undefined> {
  for (let attempt = 0; attempt < 50; attempt++) {
    fs.writeFileSync(NS_LAST_PID, String(pid - 1));
    const p = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
    await new Promise((r) => p.once('spawn', r));
    if (p.pid === pid) return p;
    p.kill('SIGKILL');
    // Another process forked in between: try again.
  }
  return undefined;
}

describe.skipIf(skipBecause((!IS_ROOT && SKIP_REASON) || (!fs.existsSync(NS_LAST_PID) && `${NS_LAST_PID} is missing`), 'pid reuse'))('pid reuse (root, real kernel)', () => {
  let rt: Runtime;
  useTestRuntime((x) => (rt = x.runtime));

  it('an init whose pid is reused by a host process: its exit goes to its container only, and no signal reaches the new process', async () => {
    const a = await Container.create(ContainerConfig.builder().name('reused').image('stratoswarm/base-agent:latest').command(['sleep', '1000']).build(), { runtime: rt });
    await a.start();
    const pid = a.record().pid!;
    const exits: { id: string; pid: number }[] = [];
    const off = await runtimeParts(rt).spawner.onExit((e) => exits.push({ id: e.id, pid: e.pid }));
    process.kill(pid, 'SIGKILL');
    expect((await a.wait()).signal).toBe('SIGKILL');
    const other = await processWithPid(pid);
    expect(other, `no host process could be given pid ${pid}`).toBeDefined();
    try {
      // The container is stopped; a kill is refused and the host process with its old pid
      // is untouched (the spawner signals through the init's pidfd, closed at its reaping).
      const err = await a.kill('SIGKILL').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RuntimeError);
      expect((err as RuntimeError).code).toBe('ESTATE');
      const direct = await runtimeParts(rt).spawner.request(['kill', a.id, '9'], 'kill').catch((e: unknown) => e);
      expect((direct as RuntimeError).code).toBe('ESTATE');
      expect(fs.existsSync(`/proc/${pid}`)).toBe(true);
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('sleep');
      // A fresh load of the record sees a stopped container, not the process now at its pid.
      expect((await (await Container.load(a.id, { runtime: rt })).status()).state).toBe('stopped');
      // One exit, for that container: the new process's end is nobody's exit.
      other!.kill('SIGKILL');
      await new Promise((r) => other!.once('exit', r));
      const b = await Container.create(ContainerConfig.builder().name('after').image('stratoswarm/base-agent:latest').command(['true']).build(), { runtime: rt });
      await b.start();
      await b.wait();
      expect(exits.filter((e) => e.pid === pid)).toEqual([{ id: a.id, pid }]);
      expect(exits.filter((e) => e.id === a.id)).toHaveLength(1);
      await b.remove();
    } finally {
      off();
      other?.kill('SIGKILL');
      await a.remove({ force: true });
    }
  });
});
