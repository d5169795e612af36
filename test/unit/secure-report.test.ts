/**
 * securityReport: the confinement of a process read back from /proc, for this test
 * process and for children started under setpriv(1) and unshare(1) (util-linux), which
 * change capabilities, no_new_privs and namespaces the way a container's init does.
 */
import { skipBecause } from '../helpers/skip.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { RuntimeError } from '../../src/errors.js';
import { parseIdMap, parseMountinfo, parseStatus, securityReport } from '../../src/secure-runtime/index.js';

const IS_ROOT = process.getuid?.() === 0;
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

describe('parsers', () => {
  it('parses status lines', () => {
    const s = parseStatus('Name:\tsleep\nCapEff:\t0000000000000020\nNoNewPrivs:\t1\n');
    expect(s.get('CapEff')).toBe('0000000000000020');
    expect(s.get('NoNewPrivs')).toBe('1');
  });

  it('parses uid_map/gid_map', () => {
    expect(parseIdMap('         0     100000      65536\n')).toEqual([{ inside: 0, outside: 100000, count: 65536 }]);
    expect(parseIdMap('')).toEqual([]);
  });

  it('parses mountinfo, optional fields, escapes and read-only flags', () => {
    const text = [
      '22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/a',
      '23 22 0:22 / /proc rw,nosuid,nodev,noexec - proc proc rw',
      '24 23 0:22 /sys /proc/sys ro,nosuid,nodev,noexec,relatime - proc proc rw',
      '25 22 0:23 / /my\\040dir rw master:2 propagate_from:1 - tmpfs none ro,size=0k',
    ].join('\n');
    const m = parseMountinfo(text);
    expect(m.map((x) => x.mountPoint)).toEqual(['/', '/proc', '/proc/sys', '/my dir']);
    expect(m[0]).toMatchObject({ fsType: 'overlay', source: 'overlay', readOnly: false });
    expect(m[2]!.readOnly).toBe(true);
    expect(m[3]).toMatchObject({ fsType: 'tmpfs', readOnly: true, superOptions: ['ro', 'size=0k'] });
  });
});

describe('securityReport of this process', () => {
  it('matches /proc/self/status and names the capabilities', async () => {
    const r = await securityReport(process.pid);
    const status = parseStatus(readFileSync('/proc/self/status', 'utf8'));
    expect(r.pid).toBe(process.pid);
    expect(r.capabilities.effective.mask).toBe(BigInt(`0x${status.get('CapEff')}`));
    expect(r.capabilities.bounding.mask).toBe(BigInt(`0x${status.get('CapBnd')}`));
    expect(r.capabilities.bounding.names.length).toBe(r.capabilities.bounding.mask.toString(2).replace(/0/g, '').length);
    if (IS_ROOT) expect(r.capabilities.effective.names).toContain('CAP_SYS_ADMIN');
    expect(r.noNewPrivileges).toBe(status.get('NoNewPrivs') === '1');
    expect(r.seccomp.mode).toBe(['disabled', 'strict', 'filter'][Number(status.get('Seccomp'))]);
    expect(r.uids?.real).toBe(process.getuid?.());
  });

  it('is in every namespace of the caller', async () => {
    const r = await securityReport();
    expect(r.namespaces.map((n) => n.type)).toEqual(expect.arrayContaining(['mnt', 'net', 'pid', 'user', 'uts', 'ipc']));
    for (const n of r.namespaces) {
      expect(n.sharedWithHost, n.type).toBe(true);
      expect(n.inode).toBe(Number(/\[(\d+)\]/.exec(readlinkSync(`/proc/self/ns/${n.type}`))![1]));
    }
  });

  it('lists the mounts, with the read-only ones', async () => {
    const r = await securityReport();
    expect(r.mounts.some((m) => m.mountPoint === '/')).toBe(true);
    expect(r.mounts.some((m) => m.fsType === 'proc')).toBe(true);
    expect(r.readOnlyMounts).toEqual(r.mounts.filter((m) => m.readOnly).map((m) => m.mountPoint));
    expect(r.uidMap.length).toBeGreaterThan(0);
  });

  it('fails with a RuntimeError for a process that does not exist', async () => {
    await expect(securityReport(0x3fffffff)).rejects.toBeInstanceOf(RuntimeError);
  });
});

describe('securityReport of a confined child', () => {
  let child: ChildProcess | undefined;
  afterEach(() => {
    child?.kill('SIGKILL');
    child = undefined;
  });

  /** Starts the command and waits until it has exec'd sleep (the confinement is in place). */
  async function startSleeping(cmd: string, args: string[]): Promise<number> {
    child = spawn(cmd, args, { stdio: 'ignore' });
    const pid = child.pid!;
    for (let i = 0; i < 200; i++) {
      try {
        if (readlinkSync(`/proc/${pid}/exe`).endsWith('/sleep')) return pid;
      } catch {
        // not yet, or gone
      }
      if (child.exitCode !== null) throw new Error(`${cmd} exited with ${child.exitCode}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`${cmd} did not exec sleep`);
  }

  it.skipIf(skipBecause((!IS_ROOT && 'needs root') || (!has('setpriv') && 'needs setpriv (util-linux)'), 'reduced capabilities report'))('decodes reduced capabilities and no_new_privs', async () => {
    const pid = await startSleeping('setpriv', ['--no-new-privs', '--bounding-set=-all,+chown,+kill', '--inh-caps=-all', 'sleep', '30']);
    const r = await securityReport(pid);
    expect(r.noNewPrivileges).toBe(true);
    expect(r.capabilities.bounding.names).toEqual(['CAP_CHOWN', 'CAP_KILL']);
    expect(r.capabilities.inheritable.mask).toBe(0n);
    expect(r.capabilities.ambient.names).toEqual([]);
  });

  it.skipIf(skipBecause(!has('unshare') && 'needs unshare (util-linux)', 'namespace report'))('sees a user and network namespace of its own, and its id map', async () => {
    let pid: number;
    try {
      pid = await startSleeping('unshare', ['--user', '--map-root-user', '--net', 'sleep', '30']);
    } catch (e) {
      // Unprivileged user namespaces may be disabled on this host.
      console.warn(`skipped: ${(e as Error).message}`);
      return;
    }
    const r = await securityReport(pid);
    const ns = Object.fromEntries(r.namespaces.map((n) => [n.type, n.sharedWithHost]));
    expect(ns.user).toBe(false);
    expect(ns.net).toBe(false);
    expect(ns.mnt).toBe(true);
    expect(r.inUserNamespace).toBe(true);
    expect(r.uidMap).toEqual([{ inside: 0, outside: process.getuid!(), count: 1 }]);
    // root inside, with the full set in its own namespace
    expect(r.uids?.effective).toBe(process.getuid!());
    expect(r.capabilities.effective.names).toContain('CAP_SYS_ADMIN');
  });
});
