/**
 * Log time index against a real container (root): the spawner indexes the container's logs
 * as they grow, and logLines uses the index for `since`.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { logLines, type LogLine } from '../../src/container/logs.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

const IMAGE = 'stratoswarm/base-agent:latest';
let t: TestRuntime;

function records(path: string): { time: number; size: number }[] {
  const b = fs.readFileSync(path);
  const out = [];
  for (let o = 0; o + 16 <= b.length; o += 16) out.push({ time: Number(b.readBigUInt64LE(o)), size: Number(b.readBigUInt64LE(o + 8)) });
  return out;
}

describe.skipIf(!IS_ROOT)(`log time index (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  beforeAll(() => {
    t = testRuntime();
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  it('indexes each write of a container and lets logLines pick lines by time', async () => {
    const config = ContainerConfig.builder()
      .name(`logs-${process.pid}`)
      .image(IMAGE)
      .command(['/bin/sh', '-c', 'echo a; sleep 1.2; echo b; echo oops >&2'])
      .build();
    const c = await Container.create(config, { runtime: t.runtime });
    const { stdoutLog, stderrLog } = c.record().paths;
    const exited = c.wait();
    await c.start();
    await exited;

    const idx = records(`${stdoutLog}.idx`);
    expect(idx.length).toBeGreaterThanOrEqual(2);
    expect(idx.map((r) => r.size)).toEqual([2, 4]);
    expect(idx[1]!.time - idx[0]!.time).toBeGreaterThanOrEqual(1000);
    expect(fs.statSync(`${stdoutLog}.idx`).mode & 0o777).toBe(0o640);

    const files = { stdout: stdoutLog, stderr: stderrLog };
    const all: LogLine[] = [];
    for await (const l of logLines(files, exited)) all.push(l);
    expect(all.map((l) => `${l.stream}:${l.line}`)).toEqual(['stdout:a', 'stdout:b', 'stderr:oops']);
    expect(all[0]!.time).toBe(idx[0]!.time);

    const since = idx[0]!.time + 600;
    const later: LogLine[] = [];
    for await (const l of logLines(files, exited, { since, streams: ['stdout'] })) later.push(l);
    expect(later.map((l) => l.line)).toEqual(['b']);
    expect(later[0]!.time).toBeGreaterThanOrEqual(since);

    await c.remove();
  });

  it('keeps the inotify and index fds out of the container and closes them when it is forgotten', async () => {
    const config = ContainerConfig.builder().name(`logs-fds-${process.pid}`).image(IMAGE).command(['/bin/sh', '-c', 'echo hi; sleep 30']).build();
    const c = await Container.create(config, { runtime: t.runtime });
    await c.start();
    const { stdoutLog } = c.record().paths;
    const fdsOf = (pid: number) =>
      fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return '';
        }
      });
    const init = fdsOf(c.record().pid!);
    expect(init.filter((l) => l.includes('inotify') || l.endsWith('.idx'))).toEqual([]);
    const spawner = Number(fs.readFileSync(`/proc/${c.record().pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    expect(fdsOf(spawner)).toContain(`${stdoutLog}.idx`);
    await c.stop({ timeoutMs: 100 });
    await c.remove();
    expect(fdsOf(spawner).filter((l) => l.startsWith(stdoutLog))).toEqual([]);
  });

  it('writes at most one record a millisecond and has indexed the whole log by the exit', async () => {
    const config = ContainerConfig.builder()
      .name(`logs-burst-${process.pid}`)
      .image(IMAGE)
      .command(['/bin/sh', '-c', 'i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done'])
      .build();
    const c = await Container.create(config, { runtime: t.runtime });
    const { stdoutLog, stderrLog } = c.record().paths;
    const exited = c.wait();
    await c.start();
    await exited;
    const idx = records(`${stdoutLog}.idx`);
    expect(idx.at(-1)!.size).toBe(fs.statSync(stdoutLog).size);
    for (let i = 1; i < idx.length; ++i) {
      expect(idx[i]!.size).toBeGreaterThan(idx[i - 1]!.size);
      expect(idx[i]!.time).toBeGreaterThan(idx[i - 1]!.time);
    }
    const lines: LogLine[] = [];
    for await (const l of logLines({ stdout: stdoutLog, stderr: stderrLog }, exited, { tail: 2 })) lines.push(l);
    expect(lines.map((l) => l.line)).toEqual(['line 2998', 'line 2999']);
    expect(lines[1]!.time).toBe(idx.at(-1)!.time);
    await c.remove();
  });
});
