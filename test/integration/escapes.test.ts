/**
 * Escape routes real runtimes have had, tried against this one: an image whose /proc, /dev
 * and a volume target are symlinks to host paths (mount-target redirection), and a
 * container that tries to open the runtime's binary for writing while execs enter it
 * (CVE-2019-5736 class). Also: one container cannot see or signal another.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { spawnerPath } from '../../src/kernel/native.js';
import type { Runtime } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';

if (!IS_ROOT) console.warn(`escape tests skipped: ${SKIP_REASON}`);

let t: TestRuntime;
let rt: Runtime;
const hostProc = `/tmp/ss-host-proc-${process.pid}`;
const hostDev = `/tmp/ss-host-dev-${process.pid}`;
const hostVol = `/tmp/ss-host-vol-${process.pid}`;

function hostMountsUnder(prefix: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4]?.startsWith(prefix));
}

describe.skipIf(!IS_ROOT)(`escape routes (root, real kernel)${SKIP_REASON ? ` — skipped: ${SKIP_REASON}` : ''}`, () => {
  beforeAll(() => {
    t = testRuntime();
    rt = t.runtime;
    // A hostile layer on top of the base image: /proc, /dev and /data are symlinks to host
    // paths, absolute and through "..".
    const base = rt.images.resolve('stratoswarm/base-agent:latest');
    const digest = 'sha256:' + createHash('sha256').update(`hostile-${process.pid}`).digest('hex');
    const layer = rt.images.layerPath(digest);
    fs.mkdirSync(layer, { recursive: true });
    fs.symlinkSync(hostProc, join(layer, 'proc'));
    fs.symlinkSync(`../../../../../../..${hostDev}`, join(layer, 'dev'));
    fs.symlinkSync(hostVol, join(layer, 'data'));
    rt.images.save({ ref: 'test/hostile:1', layers: [digest, ...base.layers], config: base.config, createdAt: new Date().toISOString() });
    for (const d of [hostProc, hostDev, hostVol]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(join(hostDev, 'marker'), 'host');
  });
  afterAll(async () => {
    await t?.cleanup();
    for (const d of [hostProc, hostDev, hostVol]) fs.rmSync(d, { recursive: true, force: true });
  });

  it('symlinked /proc, /dev and volume targets are resolved inside the root: no host path is mounted or written', async () => {
    const src = fs.mkdtempSync('/tmp/ss-volsrc-');
    fs.chmodSync(src, 0o777); // container root is an unprivileged host uid
    fs.writeFileSync(join(src, 'payload'), 'volume\n');
    try {
      const c = await Container.create(
        ContainerConfig.builder()
          .name(`hostile-${process.pid}`)
          .image('test/hostile:1')
          .volume({ source: src, target: '/data' })
          .command(['/bin/sh', '-c', `cat /proc/1/status | grep -c Pid; ls /dev/null /dev/zero; cat /data/payload; for l in /proc /dev /data; do readlink $l; done; echo written > /data/inside`])
          .build(),
        { runtime: rt },
      );
      // While it is prepared, nothing of it is mounted on the host's paths.
      expect(hostMountsUnder(hostProc)).toEqual([]);
      expect(hostMountsUnder(hostDev)).toEqual([]);
      expect(hostMountsUnder(hostVol)).toEqual([]);
      await c.start();
      const exit = await c.wait();
      const out = c.logs().stdout.split('\n');
      expect(exit.exitCode, c.logs().stderr).toBe(0);
      // It works, with the symlinks resolved within its own root.
      expect(out[0]).toMatch(/^\d+$/);
      expect(out.slice(1, 3)).toEqual(['/dev/null', '/dev/zero']);
      expect(out[3]).toBe('volume');
      expect(out.slice(4, 7)).toEqual([hostProc, `../../../../../../..${hostDev}`, hostVol]);
      // The host's directories were neither mounted over nor written.
      expect(fs.readdirSync(hostProc)).toEqual([]);
      expect(fs.readdirSync(hostDev)).toEqual(['marker']);
      expect(fs.readdirSync(hostVol)).toEqual([]);
      expect(fs.readFileSync(join(src, 'inside'), 'utf8')).toBe('written\n');
      await c.remove();
    } finally {
      fs.rmSync(src, { recursive: true, force: true });
    }
  });

  it("cannot open the runtime's binary for writing while execs enter the container (CVE-2019-5736 class)", async () => {
    const bin = spawnerPath();
    const before = createHash('sha256').update(fs.readFileSync(bin)).digest('hex');
    // Inside: keep trying to open every visible process's exe for writing.
    const hunter =
      'while :; do for p in /proc/[0-9]*; do (exec 3>>$p/exe) 2>/dev/null && echo "opened $p/exe" >> /tmp/hits; done; done';
    const c = await Container.create(ContainerConfig.builder().name(`hunter-${process.pid}`).image('stratoswarm/base-agent:latest').command(['/bin/sh', '-c', hunter]).build(), {
      runtime: rt,
    });
    await c.start();
    try {
      for (let i = 0; i < 40; i++) {
        const r = await c.exec(['/bin/true']);
        expect(r.exitCode).toBe(0);
      }
      const hits = await c.exec(['/bin/sh', '-c', 'cat /tmp/hits 2>/dev/null; ls -l /proc/self/fd | grep -c "\\->"']);
      expect(hits.stdout.split('\n').filter((l) => l.startsWith('opened'))).toEqual([]);
      expect(createHash('sha256').update(fs.readFileSync(bin)).digest('hex')).toBe(before);
    } finally {
      await c.remove({ force: true });
    }
  });

  it('one container can neither see nor signal another', async () => {
    const a = await Container.create(ContainerConfig.builder().name(`peer-a-${process.pid}`).image('stratoswarm/base-agent:latest').command(['sleep', '1000']).build(), { runtime: rt });
    const b = await Container.create(ContainerConfig.builder().name(`peer-b-${process.pid}`).image('stratoswarm/base-agent:latest').command(['sleep', '1000']).build(), { runtime: rt });
    await a.start();
    await b.start();
    try {
      const r = await b.exec(['/bin/sh', '-c', `ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '; echo; kill -9 ${a.pid} 2>&1 || echo kill-failed; kill -9 -1 2>/dev/null; echo done`]);
      const [pids] = r.stdout.split('\n');
      // Only its own processes: its init (1) and the exec'd shell and its children.
      expect(pids!.trim().split(' ').map(Number).every((p) => p < 100)).toBe(true);
      expect(r.stdout).toContain('kill-failed');
      await new Promise((res) => setTimeout(res, 100));
      expect(a.state).toBe('running');
      // ... and its init is really alive: an exec into it still runs.
      expect(await a.exec(['/bin/sh', '-c', 'echo alive'])).toMatchObject({ exitCode: 0, stdout: 'alive\n' });
    } finally {
      await a.remove({ force: true });
      await b.remove({ force: true });
    }
  });
});
