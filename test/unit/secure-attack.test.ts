/**
 * The compiled default filter against real syscalls: test/fixtures/attack loads the BPF
 * that compileSecurity produced (no_new_privs first, so no root is needed) and makes each
 * call the profile must refuse, through the x86_64, x32 and i386 entry points, plus the
 * ordinary work that must keep working. Only checks that stay inside the attack process
 * and its own children run here; the container-level ones are in
 * test/integration/attacks.test.ts. Needs gcc with a static libc and the built addon.
 */
import { skipBecause } from '../helpers/skip.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NativeKernel } from '../../src/kernel/kernel.js';
import { packageRoot } from '../../src/kernel/native.js';
import { compileSecurity, type SecurityOptions } from '../../src/secure-runtime/index.js';
import { I386_CHECKS, i386Unreachable, parseAttackOutput, probeAbis, type AttackLine } from '../helpers/attack.js';

const root = packageRoot();
const fixtureDir = join(root, 'build', 'fixtures');

function buildAttack(): string | Error {
  const r = spawnSync('sh', [join(root, 'test', 'fixtures', 'build-fixtures.sh'), fixtureDir], { encoding: 'utf8' });
  return r.status === 0 ? join(fixtureDir, 'attack') : new Error(r.stderr || `build-fixtures.sh exited ${r.status}`);
}

let kernel: NativeKernel | undefined;
let why = '';
try {
  kernel = new NativeKernel();
} catch (e) {
  why = `native addon not loadable: ${(e as Error).message.split('\n')[0]}`;
}
const built = kernel ? buildAttack() : new Error(why);
const attack = typeof built === 'string' ? built : undefined;
if (!attack) console.warn(`seccomp attack tests skipped: ${(built as Error).message}`);

const X86 = process.arch === 'x64';

/** Refused by the filter itself (EPERM), whatever the caller's capabilities. */
const SECCOMP_DENIED = [
  'mount', 'umount2', 'pivot_root',
  'unshare-user', 'unshare-mnt', 'unshare-pid', 'unshare-net', 'unshare-uts', 'unshare-ipc', 'unshare-cgroup', 'unshare-time',
  'clone-newuser', 'clone-newnet', 'setns', 'setns-pidfd',
  'fsopen', 'fspick', 'open_tree', 'move_mount', 'mount_setattr',
  'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module',
  'bpf', 'perf_event_open', 'keyctl', 'add_key', 'request_key', 'userfaultfd', 'io_uring_setup', 'open_by_handle_at',
  'acct', 'swapon', 'swapoff', 'reboot', 'settimeofday', 'clock_settime', 'syslog', 'vhangup', 'quotactl', 'sethostname',
  'ptrace-attach', 'ptrace-traceme', 'process_vm_readv', 'kcmp', 'pidfd_getfd', 'personality-noaslr', 'socket-vsock',
  ...(X86
    ? ['iopl', 'ioperm', 'lookup_dcookie', 'nfsservctl',
      'x32-unshare', 'x32-mount', 'x32-bpf', 'x32-keyctl']
    : []),
];
/** The same through int $0x80: only where this kernel takes i386 calls at all. */
const I386_DENIED = X86 ? I386_CHECKS : [];
const i386Skip = !X86 ? 'no i386 entry point off x86_64' : attack ? i386Unreachable(probeAbis(attack)) : undefined;
const MUST_WORK = ['tmp-write', 'fork-pipe', 'thread', 'tcp-loopback', 'exec', 'personality-query'];

const parse = parseAttackOutput;
type Line = AttackLine;

const tmp = mkdtempSync(join(tmpdir(), 'ss-seccomp-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function runUnder(options: SecurityOptions | undefined, names: string[]): Map<string, Line> {
  const lastCap = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
  const compiled = compileSecurity(options, { uid: 0, gid: 0 }, kernel!, lastCap);
  const file = join(tmp, `filter-${Math.random().toString(36).slice(2)}.bpf`);
  writeFileSync(file, compiled.seccomp!.bpf);
  let out: string;
  try {
    out = execFileSync(attack!, ['--load-seccomp', file, ...names], { encoding: 'utf8', timeout: 30_000 });
  } catch (e) {
    // exit status 1: some check failed; its lines are still on stdout
    out = (e as { stdout?: string }).stdout ?? '';
    if (!out) throw e;
  }
  return parse(out);
}

describe.skipIf(skipBecause(!attack && 'the attack fixture could not be built (needs gcc with static glibc)', 'seccomp filter checks'))('the default filter against real syscalls', () => {
  it('refuses every escape syscall with EPERM (clone3: ENOSYS), through the x86_64 and x32 entry points', () => {
    const lines = runUnder(undefined, [...SECCOMP_DENIED, 'clone3']);
    const failed = [...lines.values()].filter((l) => l.verdict !== 'pass').map((l) => `${l.name} ${l.result} (want ${l.want})`);
    expect(failed).toEqual([]);
    for (const n of SECCOMP_DENIED) expect(lines.get(n)?.result, n).toBe('EPERM');
    expect(lines.get('clone3')?.result).toBe('ENOSYS');
  });

  it.skipIf(skipBecause(i386Skip, 'i386 filter checks'))('refuses them through the i386 entry point (int $0x80) too', () => {
    const lines = runUnder(undefined, I386_DENIED);
    const failed = [...lines.values()].filter((l) => l.verdict !== 'pass').map((l) => `${l.name} ${l.result} (want ${l.want})`);
    expect(failed).toEqual([]);
    for (const n of I386_DENIED) expect(lines.get(n)?.result, n).toBe('EPERM');
  });

  it('keeps ordinary work working: files, fork, threads (clone3 → clone fallback), TCP, exec', () => {
    const lines = runUnder(undefined, [...MUST_WORK, 'caps']);
    for (const n of MUST_WORK) expect(lines.get(n)?.result, n).toBe('OK');
    expect(lines.get('caps')?.detail).toMatch(/NoNewPrivs=1 Seccomp=2/);
  });

  it('added capabilities open what Docker opens for them', () => {
    const lines = runUnder({ capabilities: { add: ['SYS_PTRACE', 'SYS_ADMIN'] } }, ['clone3', 'ptrace-attach', 'kcmp', 'keyctl', 'io_uring_setup']);
    expect(lines.get('clone3')?.result).toBe('OK');
    expect(lines.get('ptrace-attach')?.result).toBe('OK');
    expect(lines.get('kcmp')?.result).toBe('OK');
    // never allowed, whatever the capabilities
    expect(lines.get('keyctl')?.result).toBe('EPERM');
    expect(lines.get('io_uring_setup')?.result).toBe('EPERM');
  });

  it('the attack binary lists a wanted result for each of its checks', () => {
    const out = execFileSync(attack!, ['list'], { encoding: 'utf8' });
    const names = out.split('\n').filter(Boolean).map((l) => l.split(' ')[0]);
    for (const n of [...SECCOMP_DENIED, ...I386_DENIED, ...MUST_WORK, 'clone3', 'caps', 'no-leaked-fds', 'kill-pid', 'read-kcore', ...(X86 ? ['abi-i386', 'abi-x32'] : [])]) {
      expect(names, n).toContain(n);
    }
  });
});
