import { skipBecause } from '../helpers/skip.js';
import { existsSync, fstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
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

  it('a spawner that is not there rejects with ENOSPAWNER naming the socket', async () => {
    const addon = loadNative();
    const p = addon.request('/nonexistent/spawner.sock', Buffer.from([0, 0, 0, 0]));
    expect(p).toBeInstanceOf(Promise);
    const err = await p.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: 'ENOSPAWNER', step: 'spawner', errno: 'ENOENT', syscall: 'connect', path: '/nonexistent/spawner.sock' });
    expect((err as Error).message).toBe('connect `/nonexistent/spawner.sock`: ENOENT');
  });

  it('bad arguments and a too long socket path reject too', async () => {
    const addon = loadNative();
    await expect(addon.request('/x.sock', Buffer.alloc(4), Array.from({ length: 17 }, () => 0))).rejects.toThrow(RangeError);
    const long = `/${'a'.repeat(200)}.sock`;
    await expect(addon.request(long, Buffer.alloc(4))).rejects.toMatchObject({ code: 'ESYSCALL', step: 'spawner', errno: 'ENAMETOOLONG', syscall: 'connect', path: long });
  });

  it('a request sends the frame and the fds on a socket the caller then owns', async () => {
    const addon = loadNative();
    const dir = mkdtempSync(join(tmpdir(), 'ss-req-'));
    const sock = join(dir, 's.sock');
    const got: Buffer[] = [];
    const server = createServer((c) => c.on('data', (d: Buffer) => got.push(d)));
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const [r, w] = addon.pipe();
    try {
      const fd = await addon.request(sock, Buffer.from('hello'), [r, w]);
      expect(fd).toBeGreaterThanOrEqual(0);
      addon.close(fd);
      await vi.waitFor(() => expect(Buffer.concat(got).toString()).toBe('hello'));
      // The addon only named the fds in SCM_RIGHTS: they are still open here.
      expect(() => fstatSync(r)).not.toThrow();
      expect(() => fstatSync(w)).not.toThrow();
    } finally {
      addon.close(r);
      addon.close(w);
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('1,000 failing and succeeding requests leak no fd and close none of the caller\'s', async () => {
    const addon = loadNative();
    const dir = mkdtempSync(join(tmpdir(), 'ss-req-'));
    const sock = join(dir, 's.sock');
    // Reads until the client closes, so no request races the server closing first.
    const server = createServer((c) => {
      c.on('error', () => undefined);
      c.resume();
      c.on('end', () => c.destroy());
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const openFds = () => readdirSync('/proc/self/fd').length;
    const [r, w] = addon.pipe();
    const before = openFds();
    let sent = 0;
    const failures = new Map<string, number>();
    try {
      for (let i = 0; i < 1000; i++) {
        // Succeeds; fails at connect; fails at sendmsg, after connecting (EBADF for the fd).
        const target = i % 3 === 0 ? sock : i % 3 === 1 ? join(dir, 'missing.sock') : sock;
        const fds = i % 3 === 2 ? [r, 1_000_000] : [r, w];
        try {
          const fd = await addon.request(target, Buffer.from([0, 0, 0, 1, 0x61]), fds);
          sent++;
          addon.close(fd);
        } catch (e) {
          expect(e).toBeInstanceOf(RuntimeError);
          const key = `${(e as RuntimeError).code} ${(e as RuntimeError).syscall} ${(e as RuntimeError).errno}`;
          failures.set(key, (failures.get(key) ?? 0) + 1);
        }
      }
      expect(sent).toBe(334);
      expect(Object.fromEntries(failures)).toEqual({ 'ENOSPAWNER connect ENOENT': 333, 'ESYSCALL sendmsg EBADF': 333 });
      // Let the server close the connections it accepted before counting.
      await vi.waitFor(() => expect(openFds()).toBe(before), { timeout: 5000 });
      expect(() => fstatSync(r)).not.toThrow();
      expect(() => fstatSync(w)).not.toThrow();
    } finally {
      addon.close(r);
      addon.close(w);
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
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
