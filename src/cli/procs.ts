/**
 * The processes of a container, for `top`: the pids its cgroup lists (cgroup.procs, from the
 * state record) and what /proc says about each, as `ps -ef` shows them.
 */
import * as fs from 'node:fs';
import { uptime } from 'node:os';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  uid: number;
  /** When it started (ms since the epoch). */
  startedAt: number;
  /** CPU time used, in seconds. */
  cpuSeconds: number;
  command: string;
}

const CLOCK_TICKS = 100; // USER_HZ, 100 on every Linux architecture Node runs on

/** The pids in the first readable cgroup.procs file among `files`. */
export function cgroupPids(files: readonly string[]): number[] {
  let lastError: unknown;
  for (const f of files) {
    try {
      return fs
        .readFileSync(f, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(Number)
        .sort((a, b) => a - b);
    } catch (e) {
      lastError = e;
    }
  }
  if (lastError) throw new Error(`read cgroup.procs: ${(lastError as NodeJS.ErrnoException).code ?? (lastError as Error).message}`);
  return [];
}

/** /proc/<pid>/stat: the fields after the command, which may itself hold spaces and parentheses. */
export function parseStat(text: string): { comm: string; ppid: number; utime: number; stime: number; starttime: number } {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15, starttime 22.
  return { comm: text.slice(open + 1, close), ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]), starttime: Number(rest[19]) };
}

/** What /proc says about `pid`; undefined once it has exited. */
export function processInfo(pid: number, proc = '/proc', now = Date.now(), upSeconds = uptime()): ProcessInfo | undefined {
  try {
    const st = parseStat(fs.readFileSync(`${proc}/${pid}/stat`, 'utf8'));
    const status = fs.readFileSync(`${proc}/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1);
    const argv = fs.readFileSync(`${proc}/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const bootMs = now - upSeconds * 1000;
    return {
      pid,
      ppid: st.ppid,
      uid,
      startedAt: Math.round(bootMs + (st.starttime / CLOCK_TICKS) * 1000),
      cpuSeconds: (st.utime + st.stime) / CLOCK_TICKS,
      command: argv.length ? argv.join(' ') : `[${st.comm}]`,
    };
  } catch {
    return undefined;
  }
}

/** 75 → "00:01:15" */
export function cpuTime(seconds: number): string {
  const s = Math.floor(seconds);
  return [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60].map((n) => String(n).padStart(2, '0')).join(':');
}
