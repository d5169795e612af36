import { skipBecause } from '../helpers/skip.js';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RuntimeError, STEPS } from '../../src/errors.js';
import { candidatePaths, loadNative } from '../../src/kernel/native.js';

const built = existsSync(candidatePaths('stratoswarm_native.node')[0]!) || candidatePaths('stratoswarm_native.node').some(existsSync);

describe('native addon loading', () => {
  it('lists every path it tried when the binary is missing', () => {
    const paths = ['/nonexistent/a/stratoswarm_native.node', '/nonexistent/b/stratoswarm_native.node'];
    let err: unknown;
    try {
      loadNative(paths);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('ELOAD');
    for (const p of paths) expect((err as Error).message).toContain(p);
    expect((err as Error).message).toContain('npm run build:native');
  });

  it('candidate paths honour STRATOSWARM_NATIVE_DIR first', () => {
    const saved = process.env.STRATOSWARM_NATIVE_DIR;
    process.env.STRATOSWARM_NATIVE_DIR = '/opt/ss';
    try {
      expect(candidatePaths('x.node', '/pkg')[0]).toBe('/opt/ss/x.node');
      expect(candidatePaths('x.node', '/pkg')).toContain('/pkg/build/Release/x.node');
    } finally {
      if (saved === undefined) delete process.env.STRATOSWARM_NATIVE_DIR;
      else process.env.STRATOSWARM_NATIVE_DIR = saved;
    }
  });
});

describe.skipIf(skipBecause(!built && 'the addon is not built (npm run build:native)', 'native error tests'))('native errors arrive as RuntimeError instances', () => {
  if (!built) console.warn('native error tests skipped: the addon is not built (npm run build:native)');

  it('the addon and TypeScript share one list of steps', () => {
    expect(() => loadNative()).not.toThrow();
    expect(STEPS.length).toBeGreaterThan(30);
  });

  it('a failed open names the file and the errno', () => {
    const addon = loadNative();
    let err: unknown;
    try {
      addon.cgroupWrite('/nonexistent-dir/cpu.max', '150000 100000');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: 'ESYSCALL', step: 'cgroup', errno: 'ENOENT', syscall: 'open', path: '/nonexistent-dir/cpu.max' });
    expect((err as Error).message).toBe('open `cpu.max`: ENOENT (value "150000 100000")');
  });

  it('a rejected write names the value', () => {
    const addon = loadNative();
    let err: unknown;
    try {
      addon.cgroupWrite('/proc/self/oom_score_adj', 'not-a-number');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: 'ESYSCALL', step: 'cgroup', errno: 'EINVAL', syscall: 'write' });
    expect((err as Error).message).toBe('write `oom_score_adj`: EINVAL (value "not-a-number")');
  });

  it('a spawner that is not there is ENOSPAWNER', () => {
    const addon = loadNative();
    expect(() => addon.request('/nonexistent/spawner.sock', Buffer.from([0, 0, 0, 0]))).toThrow(RuntimeError);
    try {
      addon.request('/nonexistent/spawner.sock', Buffer.from([0, 0, 0, 0]));
    } catch (e) {
      expect(e).toMatchObject({ code: 'ENOSPAWNER', errno: 'ENOENT', syscall: 'connect' });
    }
  });

  it('an invalid seccomp profile is an EINVAL RuntimeError naming the field', () => {
    const addon = loadNative();
    expect(() => addon.compileSeccomp({ defaultAction: 'SCMP_ACT_NOPE' })).toThrow(/defaultAction: unsupported action/);
    const ok = addon.compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mount', 'no_such_syscall'], action: 'SCMP_ACT_ERRNO' }] });
    expect(ok.bpf.length % 8).toBe(0);
    expect(ok.unknownSyscalls).toEqual(['no_such_syscall']);
  });
});
