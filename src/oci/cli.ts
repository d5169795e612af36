/**
 * The OCI runtime command line, as engines call runc: global flags before the verb
 * (--root, --log, --log-format), then the verb with its flags and the container id.
 * `run(argv, io)` is the whole of one invocation and returns its exit code, so the same code
 * serves the `stratoswarm-oci` binary and the resident server behind the native front end.
 */
import * as fs from 'node:fs';
import { RuntimeError } from '../errors.js';
import { OCI_VERSION, OciRuntime } from './runtime.js';
import { defaultSpec, features } from './spec.js';
import { ociExec } from './exec.js';
import { CHECKPOINT_USAGE, ociCheckpoint, ociRestore, RESTORE_USAGE } from './checkpoint.js';
import type { Keepers } from './keepers.js';
import { VERSION } from '../cli/version-info.js';
import { asksToEvolve, ensureResidentServer } from './evolution-annotation.js';

export interface OciIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** The fds the container's process gets as stdin, stdout, stderr (the caller's own). */
  stdio: number[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Who starts keepers (default: this process; behind the native front end, the front end). */
  keepers?: Keepers;
  /** Reads stdin whole (update --resources -). */
  readStdin?: () => string;
  /**
   * The call runs in the resident server, which evolves the containers that ask: told when a
   * verb may have changed which of them run (start, delete, kill, pause, resume).
   */
  evolution?: { changed(): void };
}

export const DEFAULT_ROOT = '/run/stratoswarm-oci';

interface Parsed {
  flags: Map<string, string | true>;
  args: string[];
}

/** Flags that take a value (all others are booleans); both `--flag v` and `--flag=v`. */
const VALUE_FLAGS = new Set(['root', 'log', 'log-format', 'bundle', 'b', 'pid-file', 'console-socket', 'process', 'p', 'format', 'f', 'resources', 'r', 'criu', 'cwd', 'env', 'e', 'user', 'u', 'process-label', 'apparmor', 'cap', 'c', 'preserve-fds', 'signal', 'image-path', 'work-path', 'parent-path', 'manage-cgroups-mode', 'page-server', 'status-fd', 'empty-ns', 'lsm-profile', 'lsm-mount-context']);

function parse(argv: string[], stopAtVerb: boolean): Parsed & { rest: string[] } {
  const flags = new Map<string, string | true>();
  const args: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      i = argv.length;
      break;
    }
    if (a.startsWith('-') && a.length > 1) {
      const body = a.replace(/^--?/, '');
      const eq = body.indexOf('=');
      const name = eq >= 0 ? body.slice(0, eq) : body;
      if (eq >= 0) flags.set(name, body.slice(eq + 1));
      else if (VALUE_FLAGS.has(name)) {
        if (i + 1 >= argv.length) throw new RuntimeError(`flag --${name} needs a value`, { code: 'EINVAL', step: 'config' });
        flags.set(name, argv[++i]!);
      } else flags.set(name, true);
      continue;
    }
    if (stopAtVerb) break;
    args.push(a);
  }
  return { flags, args, rest: argv.slice(i) };
}

const str = (p: Parsed, ...names: string[]): string | undefined => {
  for (const n of names) {
    const v = p.flags.get(n);
    if (typeof v === 'string') return v;
  }
  return undefined;
};
const bool = (p: Parsed, name: string): boolean => {
  const v = p.flags.get(name);
  return v === true || v === 'true';
};

/** A started container that asks to evolve needs the resident server of its root, which runs its generations. */
async function evolveIfAsked(rt: OciRuntime, id: string, io: OciIo): Promise<void> {
  if (io.evolution) return io.evolution.changed();
  if (asksToEvolve(OciRuntime.data(rt.record(id)).annotations)) await ensureResidentServer(rt.root, io.env);
}

/**
 * After any other call on a container. In the resident server, a verb that may change which
 * containers run (kill, pause, resume) tells it so. Without a front end no call goes through
 * a server, so a crashed one would only come back at the next start: a call on a running
 * container that asks to evolve makes sure its root's server runs (a connect when it does).
 */
async function keepEvolving(rt: OciRuntime, id: string, io: OciIo, changes = false): Promise<void> {
  if (io.evolution) {
    if (changes) io.evolution.changed();
    return;
  }
  let rec: ReturnType<OciRuntime['record']>;
  try {
    rec = rt.record(id);
  } catch {
    return; // gone: nothing to evolve
  }
  const status = rt.status(rec);
  if ((status === 'running' || status === 'paused') && asksToEvolve(OciRuntime.data(rec).annotations)) await ensureResidentServer(rt.root, io.env);
}

function needId(p: Parsed, verb: string): string {
  const id = p.args[0];
  if (!id) throw new RuntimeError(`${verb}: the container id is missing`, { code: 'EINVAL', step: 'config' });
  return id;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const USAGE = `usage: stratoswarm-oci [--root DIR] [--log FILE] [--log-format text|json] VERB ...
verbs: create --bundle DIR [--pid-file F] [--console-socket S] ID | start ID | state ID |
       exec --process FILE [--detach] [--pid-file F] [--console-socket S] ID |
       kill ID [SIGNAL] [--all] | delete [--force] ID | ps [--format json] ID |
       update --resources FILE|- ID | pause ID | resume ID | features | spec | --version |
       checkpoint --image-path DIR [--work-path DIR] [--leave-running] ID |
       restore --image-path DIR --bundle DIR [--work-path DIR] [--detach] [--pid-file F] ID`;

export async function run(argv: string[], io: OciIo): Promise<number> {
  let globals: Parsed & { rest: string[] };
  try {
    globals = parse(argv, true);
  } catch (e) {
    io.stderr(`${errorText(e)}\n`);
    return 1;
  }
  const log = str(globals, 'log');
  const json = str(globals, 'log-format') === 'json';
  const logLine = (level: 'error' | 'warning', msg: string): boolean => {
    if (!log) return false;
    try {
      const line = json ? JSON.stringify({ level, msg, time: new Date().toISOString() }) : `${new Date().toISOString()} ${level}: ${msg}`;
      fs.appendFileSync(log, `${line}\n`);
      return true;
    } catch {
      return false; // the log is the engine's: a failure to write it leaves stderr
    }
  };
  const fail = (e: unknown): number => {
    const msg = errorText(e);
    // containerd and podman read the last error of --log as the runtime's reason.
    logLine('error', msg);
    io.stderr(`stratoswarm-oci: ${msg}\n`);
    return 1;
  };
  // Warnings go to the engine's log, as runc's do; without one, to stderr.
  const warn = (msg: string): void => {
    if (!logLine('warning', msg)) io.stderr(`stratoswarm-oci: warning: ${msg}\n`);
  };
  if (globals.flags.has('version') || globals.flags.has('v')) {
    io.stdout(`stratoswarm-oci version ${VERSION}\nspec: ${OCI_VERSION}\n`);
    return 0;
  }
  if (globals.flags.has('help') || globals.flags.has('h')) {
    io.stdout(`${USAGE}\n`);
    return 0;
  }
  if (bool(globals, 'systemd-cgroup')) return fail(new RuntimeError('--systemd-cgroup: the systemd cgroup manager is not supported; use cgroupfs (podman --cgroup-manager cgroupfs, containerd SystemdCgroup = false)', { code: 'EINVAL', step: 'config' }));
  const [verb, ...verbArgs] = globals.rest;
  if (!verb) {
    io.stderr(`${USAGE}\n`);
    return 1;
  }
  if (verb === 'help') {
    io.stdout(`${USAGE}\n`);
    return 0;
  }
  let p: Parsed;
  try {
    p = parse(verbArgs, false);
  } catch (e) {
    return fail(e);
  }
  if (verb === 'features') {
    io.stdout(`${JSON.stringify(features(), null, 2)}\n`);
    return 0;
  }
  if ((verb === 'checkpoint' || verb === 'restore') && (bool(p, 'help') || bool(p, 'h'))) {
    io.stdout(`${verb === 'checkpoint' ? CHECKPOINT_USAGE : RESTORE_USAGE}\n`);
    return 0;
  }
  if (verb === 'spec') {
    const bundle = str(p, 'bundle', 'b') ?? io.cwd;
    const path = `${bundle}/config.json`;
    if (fs.existsSync(path)) return fail(new RuntimeError(`spec: \`${path}\` exists already`, { code: 'EEXIST', step: 'config', path }));
    fs.writeFileSync(path, `${JSON.stringify(defaultSpec(), null, 2)}\n`);
    return 0;
  }
  // STRATOSWARM_OCI_ROOT: for engines that call the runtime without their runtime flags
  // (podman's cleanup after --rm passes no --runtime-flag).
  const rt = new OciRuntime(str(globals, 'root') ?? (io.env.STRATOSWARM_OCI_ROOT || DEFAULT_ROOT), io.env, io.keepers, warn);
  try {
    switch (verb) {
      case 'create': {
        const id = needId(p, verb);
        await rt.create(id, absolute(str(p, 'bundle', 'b') ?? io.cwd, io.cwd), { pidFile: pathFlag(p, 'pid-file', io.cwd), consoleSocket: pathFlag(p, 'console-socket', io.cwd), stdio: io.stdio });
        return 0;
      }
      case 'run': {
        const id = needId(p, verb);
        await rt.create(id, absolute(str(p, 'bundle', 'b') ?? io.cwd, io.cwd), { pidFile: pathFlag(p, 'pid-file', io.cwd), consoleSocket: pathFlag(p, 'console-socket', io.cwd), stdio: io.stdio });
        await rt.start(id);
        await evolveIfAsked(rt, id, io);
        return 0;
      }
      case 'exec': {
        const id = needId(p, verb);
        const processFile = str(p, 'process', 'p');
        if (!processFile) throw new RuntimeError('exec: --process FILE is needed (the process as config.json\'s "process")', { code: 'EINVAL', step: 'config' });
        await keepEvolving(rt, id, io);
        return await ociExec(rt, id, { processFile: absolute(processFile, io.cwd), detach: bool(p, 'detach') || bool(p, 'd'), pidFile: pathFlag(p, 'pid-file', io.cwd), consoleSocket: pathFlag(p, 'console-socket', io.cwd), stdio: io.stdio });
      }
      case 'start':
        await rt.start(needId(p, verb));
        await evolveIfAsked(rt, needId(p, verb), io);
        return 0;
      case 'state':
        io.stdout(`${JSON.stringify(rt.state(needId(p, verb)), null, 2)}\n`);
        await keepEvolving(rt, needId(p, verb), io);
        return 0;
      case 'kill':
        await rt.kill(needId(p, verb), p.args[1] ?? 'SIGTERM', bool(p, 'all') || bool(p, 'a'));
        await keepEvolving(rt, needId(p, verb), io, true);
        return 0;
      case 'delete':
        await rt.delete(needId(p, verb), bool(p, 'force') || bool(p, 'f'));
        io.evolution?.changed();
        return 0;
      case 'pause':
        await rt.pause(needId(p, verb));
        await keepEvolving(rt, needId(p, verb), io, true);
        return 0;
      case 'resume':
        await rt.resume(needId(p, verb));
        await keepEvolving(rt, needId(p, verb), io, true);
        return 0;
      case 'ps': {
        const pids = rt.ps(needId(p, verb));
        await keepEvolving(rt, needId(p, verb), io);
        io.stdout(str(p, 'format', 'f') === 'json' ? `${JSON.stringify(pids)}\n` : `PID\n${pids.join('\n')}${pids.length ? '\n' : ''}`);
        return 0;
      }
      case 'update': {
        const id = needId(p, verb);
        const file = str(p, 'resources', 'r');
        if (!file) throw new RuntimeError('update: --resources FILE (or - for stdin) is needed', { code: 'EINVAL', step: 'config' });
        const text = file === '-' ? (io.readStdin?.() ?? fs.readFileSync(0, 'utf8')) : fs.readFileSync(absolute(file, io.cwd), 'utf8');
        let resources: unknown;
        try {
          resources = JSON.parse(text);
        } catch (e) {
          throw new RuntimeError(`update --resources: not JSON: ${(e as Error).message}`, { code: 'EINVAL', step: 'config' });
        }
        rt.update(id, resources);
        await keepEvolving(rt, id, io);
        return 0;
      }
      case 'checkpoint': {
        const imagePath = pathFlag(p, 'image-path', io.cwd);
        if (!imagePath) throw new RuntimeError('checkpoint: --image-path DIR is needed', { code: 'EINVAL', step: 'config' });
        const o = { imagePath, workPath: pathFlag(p, 'work-path', io.cwd), leaveRunning: bool(p, 'leave-running'), tcpEstablished: bool(p, 'tcp-established'), fileLocks: bool(p, 'file-locks'), preDump: bool(p, 'pre-dump'), parentPath: str(p, 'parent-path'), manageCgroupsMode: str(p, 'manage-cgroups-mode') };
        await ociCheckpoint(rt, needId(p, verb), o);
        return 0;
      }
      case 'restore': {
        const id = needId(p, verb);
        const imagePath = pathFlag(p, 'image-path', io.cwd);
        if (!imagePath) throw new RuntimeError('restore: --image-path DIR is needed', { code: 'EINVAL', step: 'config' });
        const o = { imagePath, workPath: pathFlag(p, 'work-path', io.cwd), pidFile: pathFlag(p, 'pid-file', io.cwd), consoleSocket: pathFlag(p, 'console-socket', io.cwd), tcpEstablished: bool(p, 'tcp-established'), fileLocks: bool(p, 'file-locks'), manageCgroupsMode: str(p, 'manage-cgroups-mode'), stdio: io.stdio };
        await ociRestore(rt, id, absolute(str(p, 'bundle', 'b') ?? io.cwd, io.cwd), o);
        return 0;
      }
      default:
        throw new RuntimeError(`unknown verb "${verb}"\n${USAGE}`, { code: 'EINVAL', step: 'config' });
    }
  } catch (e) {
    return fail(e);
  } finally {
    await rt.close().catch(() => undefined);
  }
}

function absolute(path: string, cwd: string): string {
  return path.startsWith('/') ? path : `${cwd}/${path}`;
}

function pathFlag(p: Parsed, name: string, cwd: string): string | undefined {
  const v = str(p, name);
  return v === undefined ? undefined : absolute(v, cwd);
}
