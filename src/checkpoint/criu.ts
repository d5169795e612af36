/**
 * CRIU, the tool that dumps and restores a process tree: where it is, how it is run, what
 * its log says when it fails.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { RuntimeError, type Step } from '../errors.js';

/**
 * Where setup (scripts/criu.sh) keeps the CRIU it builds (4.1.1 with a fix for TCP sockets on
 * Linux 6.16 and later, which refuse SO_PASSCRED there).
 */
export const CRIU_CACHE = '/var/cache/stratoswarm/criu-4.1.1-p1/criu';

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** STRATOSWARM_CRIU, else the CRIU setup built, else `criu` on the PATH. */
export function criuBinary(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.STRATOSWARM_CRIU;
  if (explicit) {
    if (!executable(explicit)) throw new RuntimeError(`STRATOSWARM_CRIU=${explicit}: not an executable file`, { code: 'ENOTFOUND', step: 'checkpoint', path: explicit });
    return explicit;
  }
  if (executable(CRIU_CACHE)) return CRIU_CACHE;
  for (const dir of (env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    const p = join(dir, 'criu');
    if (dir && executable(p)) return p;
  }
  throw new RuntimeError('checkpoint needs CRIU: none found (set STRATOSWARM_CRIU, or run `node scripts/setup.mjs`, which builds one)', { code: 'EUNSUPPORTED', step: 'checkpoint' });
}

/**
 * The environment CRIU runs with. CRIU_FAULT=130 makes it stop a task after its parasite
 * code with a trapped system call instead of a hardware breakpoint: in some VMs (this
 * runtime's test machines among them) debug-register breakpoints never fire, and CRIU then
 * waits for the task forever. The system-call stop costs a few microseconds more per task.
 */
export function criuEnv(): string[] {
  return ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'CRIU_FAULT=130'];
}

/** The lines of a CRIU log that say what failed (the rlimit warning of an unprivileged VM aside). */
export function criuErrors(logFile: string, max = 4): string[] {
  let text = '';
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    // (CRIU's probe of the kernel for tun devices fails harmlessly where /dev/net/tun is closed)
    .filter((l) => /\bError\b/.test(l) && !l.includes('RLIMIT_NOFILE') && !l.includes('Unable to create tun') && !/Error: ipv[46]: [Aa]ddress already assigned/.test(l))
    .map((l) => l.replace(/^\([\d.]+\)\s*(\d+:\s*)?/, '').replace(/^Error \([^)]*\):\s*/, '').trim())
    .slice(0, max);
}

export interface CriuRun {
  /** dump, pre-dump or restore, and its options (without -o, -D). */
  args: string[];
  /** The images directory (-D). */
  dir: string;
  /** The log file's name in `dir` (in `workDir` where one is given). */
  log: string;
  /** CRIU's work directory (-W) for its log and statistics; default: `dir`. */
  workDir?: string | undefined;
  step: Step;
  what: string;
  containerId?: string | undefined;
}

/** Runs CRIU off the event loop; rejects with a RuntimeError quoting the log's errors. */
export function runCriu(r: CriuRun): Promise<void> {
  const bin = criuBinary();
  const env = Object.fromEntries(criuEnv().map((kv) => kv.split('=', 2) as [string, string]));
  return new Promise((resolve, reject) => {
    const work = r.workDir ? ['-W', r.workDir] : [];
    const logPath = join(r.workDir ?? r.dir, r.log);
    execFile(bin, [r.args[0]!, '-D', r.dir, ...work, '-o', r.log, '-v2', ...r.args.slice(1)], { env, maxBuffer: 1 << 20 }, (err, _out, stderr) => {
      if (!err) return resolve();
      const why = criuErrors(logPath);
      const detail = why.length ? why.join('; ') : stderr.trim().split('\n').slice(-2).join('; ') || err.message;
      reject(new RuntimeError(`${r.what}: criu ${r.args[0]} failed: ${detail} (log: ${logPath})`, { code: 'ESPAWN', step: r.step, containerId: r.containerId }));
    });
  });
}

/** The version CRIU reports, e.g. "4.1.1". */
export function criuVersion(): Promise<string> {
  return new Promise((resolve) => {
    execFile(criuBinary(), ['--version'], (err, out) => resolve(err ? 'unknown' : (/Version:\s*(\S+)/.exec(out)?.[1] ?? 'unknown')));
  });
}

let tracking: Promise<boolean> | undefined;

/**
 * Whether the kernel tracks which pages a task dirtied (soft-dirty bits, CONFIG_MEM_SOFT_DIRTY):
 * without it a pre-dump saves nothing the final dump need not copy again.
 */
export function memoryTracking(): Promise<boolean> {
  tracking ??= new Promise((resolve) => {
    execFile(criuBinary(), ['check', '--feature', 'mem_dirty_track'], (err) => resolve(!err));
  });
  return tracking;
}

/** Every task of the tree under `pid` (the init first), from /proc's children lists. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const walk = (p: number): void => {
    out.push(p);
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const t of tids) {
      let kids = '';
      try {
        kids = readFileSync(`/proc/${p}/task/${t}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const k of kids.trim().split(/\s+/).filter(Boolean)) walk(Number(k));
    }
  };
  walk(pid);
  return out;
}

/**
 * CRIU's name for an open file it cannot see from the container's mount namespace (a log on
 * the host the init's stdout points at): `file[<mnt_id>:<inode>]`, both in hex.
 */
export function externalFiles(pids: readonly number[], paths: readonly string[]): Map<string, string> {
  const keys = new Map<string, string>();
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (!paths.includes(target)) continue;
        const mnt = /mnt_id:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
        const ino = statSync(`/proc/${pid}/fd/${fd}`).ino;
        if (mnt !== undefined) keys.set(`file[${Number(mnt).toString(16)}:${ino.toString(16)}]`, target);
      } catch {
        // the fd closed meanwhile
      }
    }
  }
  return keys;
}
