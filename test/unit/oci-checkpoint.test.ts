/**
 * The OCI checkpoint and restore verbs without CRIU: their --help (podman's probe of a
 * runtime named crun), the mountpoints restore makes in a root, and the CRIU names of a
 * process's stdio.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeMountpoints, stdioNames } from '../../src/oci/checkpoint.js';
import { run, type OciIo } from '../../src/oci/cli.js';
import type { PlanMount } from '../../src/plan/types.js';

function io(): OciIo & { out: string; err: string } {
  const o = { out: '', err: '', stdio: [0, 1, 2], env: {}, cwd: '/' } as OciIo & { out: string; err: string };
  o.stdout = (t) => void (o.out += t);
  o.stderr = (t) => void (o.err += t);
  return o;
}

const mount = (target: string, isFile = false): PlanMount => ({ kind: 'bind', source: '/x', target, fstype: '', data: '', flags: 0, isFile });

describe('OCI checkpoint and restore', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('checkpoint --help and restore --help exit 0 with their flags; the usage lists both', async () => {
    for (const [verb, flag] of [['checkpoint', '--leave-running'], ['restore', '--bundle']] as const) {
      const o = io();
      expect(await run([verb, '--help'], o)).toBe(0);
      expect(o.out).toContain(`stratoswarm-oci ${verb} --image-path DIR`);
      expect(o.out).toContain(flag);
    }
    const o = io();
    expect(await run(['--help'], o)).toBe(0);
    expect(o.out).toMatch(/checkpoint --image-path DIR/);
    expect(o.out).toMatch(/restore --image-path DIR --bundle DIR/);
  });

  it('makes missing mountpoints (directories, an empty file for a file), keeps what is there, does not follow a symlink or ".."', () => {
    const root = fs.mkdtempSync(join(tmpdir(), 'ss-mp-'));
    dirs.push(root);
    fs.mkdirSync(join(root, 'etc'));
    fs.writeFileSync(join(root, 'etc/hosts'), 'kept');
    const outside = fs.mkdtempSync(join(tmpdir(), 'ss-mp-out-'));
    dirs.push(outside);
    fs.symlinkSync(outside, join(root, 'link'));
    makeMountpoints(root, [mount('/etc/hostname', true), mount('/etc/hosts', true), mount('/run/secrets/x'), mount('/dev/shm'), mount('/link/inner'), mount('/a/../../escape')]);
    expect(fs.statSync(join(root, 'etc/hostname')).isFile()).toBe(true);
    expect(fs.readFileSync(join(root, 'etc/hosts'), 'utf8')).toBe('kept');
    expect(fs.statSync(join(root, 'run/secrets/x')).isDirectory()).toBe(true);
    expect(fs.statSync(join(root, 'dev/shm')).isDirectory()).toBe(true);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.existsSync(join(root, 'a'))).toBe(false);
  });

  it('names a pipe by its inode and refuses a socket', () => {
    // This process's stdio: pipes, sockets or files depending on how the tests run; the
    // answer is checked against what /proc says.
    const targets = [0, 1, 2].map((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        return '';
      }
    });
    let r: ReturnType<typeof stdioNames> | undefined;
    try {
      r = stdioNames(process.pid, 'test');
    } catch (e) {
      expect(targets.some((t) => t.startsWith('socket:') || t.startsWith('/dev/pts/') || t.startsWith('anon_inode:'))).toBe(true);
      expect((e as Error).message).toMatch(/cannot be checkpointed/);
      return;
    }
    targets.forEach((t, fd) => {
      if (t.startsWith('pipe:')) expect(r!.names[fd]).toBe(t);
    });
    expect(r.targets).toEqual(targets);
  });
});
