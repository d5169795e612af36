/**
 * linux.sysctl: namespaced kernel parameters only, as runc allows them (net.* with the
 * container's own network namespace; the IPC ones; fs.mqueue.*). /proc/sys/net and the IPC
 * entries show the namespaces of the process that opens them, so each is written by a
 * process that entered the container's namespaces (nsenter), never from the host's.
 */
import { spawnSync } from 'node:child_process';
import { RuntimeError } from '../errors.js';

const IPC = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);
const KEY_RE = /^[a-z0-9_]+(\.[a-z0-9_-]+)+$/i;

/** The problem with one sysctl, or undefined when this runtime can set it. */
export function sysctlProblem(key: string, value: unknown, ownNetwork: boolean): string | undefined {
  if (!KEY_RE.test(key)) return 'not a sysctl name';
  if (typeof value !== 'string') return 'expected a string value';
  if (key.startsWith('net.')) return ownNetwork ? undefined : 'net.* needs the container\'s own network namespace';
  if (IPC.has(key) || key.startsWith('fs.mqueue.')) return undefined;
  return 'is not namespaced: it would change the host';
}

export function applySysctls(pid: number, sysctl: Record<string, string>): void {
  for (const [key, value] of Object.entries(sysctl)) {
    const path = `/proc/sys/${key.replace(/\./g, '/')}`;
    const r = spawnSync('nsenter', [`--target=${pid}`, '--net', '--ipc', '--', '/bin/sh', '-c', 'printf "%s\\n" "$2" > "$1"', 'sh', path, value], { encoding: 'utf8' });
    if (r.error || r.status !== 0) {
      throw new RuntimeError(`linux.sysctl["${key}"]: write \`${path}\` (value "${value}"): ${(r.error?.message ?? r.stderr.trim()) || `exit code ${r.status}`}`, { code: 'EINVAL', step: 'config', path });
    }
  }
}
