/**
 * The spawner's fd limit (root, real kernel): it holds fds for every container, so it raises
 * its soft RLIMIT_NOFILE to the hard limit at start, and its containers get back the limit
 * it was started with. Started here under a soft limit of 32, it runs 40 containers.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { Runtime, runtimeParts } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const SPAWNER = join(__dirname, '../../build/Release/stratoswarm-spawner');

let t: TestRuntime;
let rt: Runtime;

function openFilesLimit(pid: number): { soft: number; hard: number } {
  const line = fs
    .readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'))!;
  const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/).map(Number);
  return { soft: soft!, hard: hard! };
}

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'spawner limit tests'))('the spawner under a low fd limit (real kernel)', () => {
  beforeAll(() => {
    t = testRuntime();
    // A spawner started as a host agent under `ulimit -Sn 32` would start it.
    execFileSync('prlimit', ['--nofile=32:8192', SPAWNER, '--root', t.stateRoot, '--idle-ms', '30000']);
    rt = new Runtime({ ...t.runtime.options, logger: pino({ level: 'silent' }), env: {}, cgroups: runtimeParts(t.runtime).cgroups, spawnerIdleMs: 30_000 });
  });
  afterAll(async () => {
    await rt?.close();
    await t?.cleanup();
  });

  it('raises its own soft limit to the hard one, gives containers the limit it started with, and runs more containers than that limit', { timeout: 120_000 }, async () => {
    const spawner = Number((await runtimeParts(rt).spawner.request(['ping'], 'ping'))[1]);
    expect(openFilesLimit(spawner)).toEqual({ soft: 8192, hard: 8192 });
    const live: Container[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const c = await Container.create(
          ContainerConfig.builder().name(`nofile-${i}-${process.pid}`).image('stratoswarm/base-agent:latest').command(['sleep', '1000']).init(true).build(),
          { runtime: rt },
        );
        live.push(c);
        await c.start();
      }
      expect(fs.readdirSync(`/proc/${spawner}/fd`).length).toBeGreaterThan(32);
      const r = await live[39]!.exec(['/bin/sh', '-c', 'ulimit -Sn; ulimit -Hn']);
      expect(r.stdout).toBe('32\n8192\n');
      expect(openFilesLimit(live[0]!.pid!)).toEqual({ soft: 32, hard: 8192 });
    } finally {
      for (const c of live) await c.remove({ force: true });
    }
  });
});
