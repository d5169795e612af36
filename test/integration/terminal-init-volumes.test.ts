/**
 * Terminals, the minimal init and idmapped volumes against the real kernel (root): a
 * container's pty (window size seen by `stty size`, input, the controlling terminal, output
 * kept in the log, detach and attach again), an exec with a terminal, `init(true)` ending a
 * SIGTERM-ignoring command at once and reaping orphans, and volumes owned as on the host.
 */
import * as fs from 'node:fs';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, ContainerConfig } from '../../src/index.js';
import { openTerminal } from '../../src/container/terminal.js';
import { defaultKernel } from '../../src/kernel/kernel.js';
import type { Runtime } from '../../src/runtime.js';
import { IS_ROOT, SKIP_REASON, testRuntime, type TestRuntime } from '../helpers/runtime.js';
import { skipBecause } from '../helpers/skip.js';

const IMAGE = 'stratoswarm/base-agent:latest';
let t: TestRuntime;
let rt: Runtime;
let n = 0;

function builder(argv: string[]) {
  return ContainerConfig.builder().name(`tiv${++n}-${process.pid}`).image(IMAGE).command(argv);
}

/** Collects a terminal's output and resolves once `re` matches it. */
function reader(stream: Duplex) {
  let text = '';
  const waiters: { re: RegExp; resolve: (s: string) => void }[] = [];
  stream.on('data', (d: Buffer) => {
    text += d.toString('utf8');
    for (const w of waiters.splice(0)) {
      if (w.re.test(text)) w.resolve(text);
      else waiters.push(w);
    }
  });
  return {
    get text() {
      return text;
    },
    until(re: RegExp, ms = 10_000): Promise<string> {
      if (re.test(text)) return Promise.resolve(text);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${re} in terminal output ${JSON.stringify(text)}`)), ms);
        waiters.push({ re, resolve: (s) => (clearTimeout(timer), resolve(s)) });
      });
    },
  };
}

describe.skipIf(skipBecause(!IS_ROOT && SKIP_REASON, 'terminal, init and volume tests'))('terminals, init and volumes (real kernel)', () => {
  beforeAll(() => {
    t = testRuntime();
    rt = t.runtime;
  });
  afterAll(async () => {
    await t?.cleanup();
  });

  describe('terminal(true)', () => {
    it('gives the process a controlling terminal whose size it sees, takes input, and keeps its output in the log', async () => {
      const script = 'stty size; read line; echo "got:$line"; stty size; test -t 0 && echo tty0; echo hi > /dev/tty; ls -l /dev/console | cut -c1; exit 7';
      const c = await Container.create(builder(['/bin/sh', '-c', script]).terminal(true).build(), { runtime: rt });
      try {
        const s = await c.attach();
        const out = reader(s.stream);
        s.resize(100, 30);
        await c.start();
        await out.until(/30 100/);
        s.resize(132, 43);
        s.stream.write('hello\r');
        await out.until(/got:hello[\s\S]*43 132[\s\S]*tty0[\s\S]*hi[\s\S]*c/);
        const exit = await c.wait();
        expect(exit.exitCode).toBe(7);
        // What the terminal showed is in the log too (a terminal has one output: stdout).
        const logs = c.logs();
        expect(logs.stdout).toContain('got:hello');
        expect(logs.stdout).toContain('43 132');
        expect(logs.stderr).toBe('');
      } finally {
        await c.remove({ force: true });
      }
    });

    it('a detached terminal keeps the container running, and can be attached again', async () => {
      const c = await Container.create(builder(['/bin/sh']).terminal(true).build(), { runtime: rt });
      try {
        await c.start();
        const first = await c.attach();
        first.stream.write('echo one-$((40+2))\r');
        await reader(first.stream).until(/one-42/);
        first.detach();
        expect((await c.status()).state).toBe('running');
        const again = await c.attach();
        const out = reader(again.stream);
        again.stream.write('echo two-$((50+5)); exit 3\r');
        await out.until(/two-55/);
        expect((await c.wait()).exitCode).toBe(3);
        expect(c.logs().stdout).toMatch(/one-42[\s\S]*two-55/);
      } finally {
        await c.remove({ force: true });
      }
    });

    it('attach refuses a container without a terminal, naming why', async () => {
      const c = await Container.create(builder(['true']).build(), { runtime: rt });
      try {
        await expect(c.attach()).rejects.toThrow(/has no terminal/);
      } finally {
        await c.remove({ force: true });
      }
    });

    it('execStream with a terminal: its own pty, resizable, exit code returned', async () => {
      const c = await Container.create(builder(['sleep', '1000']).init(true).build(), { runtime: rt });
      try {
        await c.start();
        const p = await c.execStream(['/bin/sh', '-c', 'read x; stty size; test -t 1 && echo "tty:$x"; tty; stat -c %u /proc/self/fd/0; exit 4'], { terminal: true });
        expect(p.terminal).toBeDefined();
        const out = reader(p.terminal!.stream);
        p.terminal!.resize(77, 22);
        p.stdin.write('yes\r');
        await out.until(/22 77[\s\S]*tty:yes[\s\S]*\/dev\/pts\/\d+\r?\n0\r?\n/);
        expect((await p.exit).exitCode).toBe(4);
      } finally {
        await c.remove({ force: true });
      }
    });
  });

    it('a client that writes after the terminal closed still gets all of its output', async () => {
      const sock = join(t.stateRoot, `late-${process.pid}.sock`);
      const tty = await openTerminal(defaultKernel(), { uid: 0, gid: 0, socket: sock });
      const conn = createConnection(sock);
      await once(conn, 'connect');
      // Nothing is read from the socket until the end: the output waits in the kernel.
      conn.pause();
      await new Promise((r) => setTimeout(r, 100));
      fs.writeSync(tty.slave, 'late-output\n');
      tty.release();
      // The relay has seen the terminal close by now; a window size arrives after that.
      await new Promise((r) => setTimeout(r, 300));
      const frame = Buffer.from([0x77, 0, 0, 0, 4, 0, 80, 0, 24]);
      let text = '';
      conn.on('data', (d: Buffer) => (text += d.toString('utf8')));
      const closed = once(conn, 'close');
      conn.write(frame);
      conn.resume();
      await closed;
      expect(text).toContain('late-output');
      expect(fs.existsSync(sock)).toBe(false);
    });

  describe('init(true)', () => {
    it('a SIGTERM sent the moment start() returns is never lost: stop ends by it, not by SIGKILL', async () => {
      // The init's first process is pid 1 of its namespace, which drops signals it has no
      // handler for; blocked until the init takes them, they wait for it instead.
      for (let i = 0; i < 20; i++) {
        const c = await Container.create(builder(['sleep', '1000']).init(true).build(), { runtime: rt });
        try {
          await c.start();
          const exit = await c.stop({ timeoutMs: 10_000 });
          expect([i, exit.exitCode, exit.signal]).toEqual([i, 143, null]);
        } finally {
          await c.remove({ force: true });
        }
      }
    });

    it('stops a command that ignores SIGTERM at once, with 128+15', async () => {
      const d = await Container.create(builder(['sleep', '1000']).init(true).build(), { runtime: rt });
      try {
        await d.start();
        const ps = await d.exec(['ps', '-o', 'pid,args']);
        expect(ps.stdout).toMatch(/^\s*1\s+\/dev\/init -- sleep 1000$/m);
        const t0 = Date.now();
        await d.stop({ timeoutMs: 10_000 });
        expect(Date.now() - t0).toBeLessThan(3_000);
        const s = await d.status();
        expect(s.exitCode).toBe(143);
      } finally {
        await d.remove({ force: true });
      }
    });

    it('reaps orphaned zombies, which a plain command as pid 1 leaves behind', async () => {
      // The subshell's sleep outlives it and is reparented to pid 1; the shell then becomes
      // `sleep 30`, which never waits for anything.
      const script = '(sleep 0.2 &); exec sleep 30';
      const zombies = async (c: Container) => {
        await new Promise((r) => setTimeout(r, 1000));
        const ps = await c.exec(['ps', '-o', 'stat,args']);
        return ps.stdout.split('\n').filter((l) => /^Z/.test(l.trim())).length;
      };
      const c = await Container.create(builder(['/bin/sh', '-c', script]).init(true).build(), { runtime: rt });
      const d = await Container.create(builder(['/bin/sh', '-c', script]).build(), { runtime: rt });
      try {
        await c.start();
        await d.start();
        expect(await zombies(c)).toBe(0);
        expect(await zombies(d)).toBe(1);
      } finally {
        await c.remove({ force: true });
        await d.remove({ force: true });
      }
    });

    it('exits with the command\'s status, and 128+N when signal N ended it', async () => {
      const c = await Container.create(builder(['/bin/sh', '-c', 'exit 5']).init(true).build(), { runtime: rt });
      const d = await Container.create(builder(['/bin/sh', '-c', 'kill -USR1 $$']).init(true).build(), { runtime: rt });
      try {
        await c.start();
        await d.start();
        expect((await c.wait()).exitCode).toBe(5);
        expect((await d.wait()).exitCode).toBe(128 + 10);
      } finally {
        await c.remove({ force: true });
        await d.remove({ force: true });
      }
    });

    it('runs under the same confinement: seccomp, capabilities and no_new_privs hold for pid 1', async () => {
      const c = await Container.create(builder(['sleep', '1000']).init(true).build(), { runtime: rt });
      try {
        await c.start();
        const report = await c.securityReport();
        expect(report.noNewPrivileges).toBe(true);
        expect(report.seccomp.mode).toBe('filter');
        expect(report.capabilities.effective.names).not.toContain('CAP_SYS_ADMIN');
        const r = await c.exec(['cat', '/proc/1/status']);
        expect(r.stdout).toMatch(/^Seccomp:\s+2$/m);
        expect(r.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
        const w = await c.exec(['/bin/sh', '-c', 'echo x > /dev/init 2>/dev/null && echo writable || echo read-only']);
        expect(w.stdout).toBe('read-only\n');
      } finally {
        await c.remove({ force: true });
      }
    });
  });

  describe('volumes with a user namespace', () => {
    it('idmapped by default: container root writes a root-owned 0700 host directory, and the file is host root\'s', async () => {
      const dir = fs.mkdtempSync('/var/tmp/ss-idvol-');
      fs.chmodSync(dir, 0o700);
      fs.writeFileSync(join(dir, 'host.txt'), 'from host');
      fs.chownSync(join(dir, 'host.txt'), 1000, 1000);
      try {
        const c = await Container.create(
          builder(['/bin/sh', '-c', 'stat -c "%u:%g %a" /data /data/host.txt; echo in > /data/made-inside && echo wrote']).volume({ source: dir, target: '/data' }).build(),
          { runtime: rt },
        );
        try {
          await c.start();
          expect((await c.wait()).exitCode).toBe(0);
          expect(c.logs().stdout).toBe('0:0 700\n1000:1000 644\nwrote\n');
        } finally {
          await c.remove({ force: true });
        }
        const st = fs.statSync(join(dir, 'made-inside'));
        expect([st.uid, st.gid]).toEqual([0, 0]);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it('idmap: false keeps the plain mapping: host root is nobody inside and the directory is closed', async () => {
      const dir = fs.mkdtempSync('/var/tmp/ss-plainvol-');
      fs.chmodSync(dir, 0o700);
      try {
        const c = await Container.create(
          builder(['/bin/sh', '-c', 'stat -c "%u" /data; echo in > /data/x 2>/dev/null && echo wrote || echo denied']).volume({ source: dir, target: '/data', idmap: false }).build(),
          { runtime: rt },
        );
        try {
          await c.start();
          await c.wait();
          expect(c.logs().stdout).toBe('65534\ndenied\n');
        } finally {
          await c.remove({ force: true });
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
