/**
 * Further processes in a running container: its namespaces, cgroups and confinement. The
 * process's stdio are pipes made here and passed to the spawner with SCM_RIGHTS; signals go
 * through the spawner, which holds the workload unreaped, so a reused pid is never hit.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { RuntimeError } from '../errors.js';
import type { RuntimeParts } from '../parts.js';
import { encodeExec } from '../plan/encode.js';
import type { ExecPlan } from '../plan/types.js';
import type { ContainerContext } from './context.js';
import { prepareExec } from './prepare.js';
import { prepareContext } from './records.js';
import { signalName, signalNumber } from '../signals.js';
import { attachTerminal, hostIds, openTerminal, type TerminalSession } from './terminal.js';
import type { ExecOptions, ExecProcess, ExecResult } from './types.js';

/** The plan of an exec in the running container of `ctx`. */
export function planExec(ctx: ContainerContext, command: string[], opts: ExecOptions): ExecPlan {
  const { rec } = ctx;
  if (rec.state !== 'running') {
    throw new RuntimeError(`exec in container ${rec.name}: it is ${rec.state}, not running`, { code: 'ESTATE', step: 'setns', containerId: rec.id });
  }
  return prepareExec(
    ctx.config,
    { id: rec.id, imageRef: rec.image.ref, namespaces: rec.namespaces, cgroupProcs: rec.cgroupProcs, deviceProcess: rec.deviceProcess },
    { argv: command, env: opts.env, workingDir: opts.workingDir, user: opts.user, terminal: !!opts.terminal },
    prepareContext(ctx.parts),
  );
}

export function abortError(signal: AbortSignal, what: string): Error {
  const reason = signal.reason as unknown;
  if (reason instanceof Error) return reason;
  return new DOMException(`${what}: aborted${reason !== undefined ? ` (${String(reason)})` : ''}`, 'AbortError');
}

/** Starts `plan` in container `id`; its stdio are Node streams. */
export async function spawnExec(
  parts: RuntimeParts,
  id: string,
  name: string,
  plan: ExecPlan,
  opts: { signal?: AbortSignal | undefined; size?: { cols: number; rows: number } | undefined } = {},
): Promise<ExecProcess> {
  const context = `exec in container ${name}`;
  if (opts.signal?.aborted) throw abortError(opts.signal, context);
  const fields = encodeExec(id, plan, context);
  if (plan.process.terminal) return spawnTerminalExec(parts, id, context, plan, fields, opts);
  const k = parts.kernel;
  const stdin = k.pipe();
  const stdout = k.pipe();
  const stderr = k.pipe();
  const toChild = [stdin[0], stdout[1], stderr[1]];
  let started: Awaited<ReturnType<RuntimeParts['spawner']['exec']>>;
  try {
    started = await parts.spawner.exec(fields, toChild, context);
  } catch (e) {
    for (const fd of [stdin[1], stdout[0], stderr[0]]) k.close(fd);
    if (e instanceof RuntimeError) e.containerId = id;
    throw e;
  } finally {
    // The child has its copies now (or there is no child).
    for (const fd of toChild) k.close(fd);
  }
  const kill = killer(parts, id, started.pid, context);
  const onAbort = () => void kill('SIGKILL').catch((e: unknown) => parts.logger.warn({ err: e }, 'kill of an aborted exec failed'));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const input = new Socket({ fd: stdin[1], readable: false, writable: true });
  input.on('error', () => undefined);
  const out = new Socket({ fd: stdout[0], readable: true, writable: false });
  const err = new Socket({ fd: stderr[0], readable: true, writable: false });
  const exit = started.exit
    .then((x) => ({ exitCode: x.exitCode, signal: signalName(x.signal) }))
    .finally(() => opts.signal?.removeEventListener('abort', onAbort));
  return { pid: started.pid, stdin: input, stdout: out, stderr: err, exit, kill };
}

function killer(parts: RuntimeParts, id: string, pid: number, context: string): (sig?: string | number) => Promise<void> {
  return async (sig: string | number = 'SIGKILL') => {
    try {
      await parts.spawner.request(['exec-kill', id, String(pid), String(signalNumber(sig))], `${context}: kill pid ${pid}`);
    } catch (e) {
      // Already exited and reaped: nothing left to signal.
      if (!(e instanceof RuntimeError && e.code === 'ESTATE')) throw e;
    }
  };
}

/** An exec whose stdio is a terminal: its relay lives in the container's state directory until the process ends. */
async function spawnTerminalExec(
  parts: RuntimeParts,
  id: string,
  context: string,
  plan: ExecPlan,
  fields: ReturnType<typeof encodeExec>,
  opts: { signal?: AbortSignal | undefined; size?: { cols: number; rows: number } | undefined },
): Promise<ExecProcess> {
  const rec = parts.state.load(id);
  const socket = join(rec.paths.stateDir, `exec-${randomBytes(6).toString('hex')}.sock`);
  // In the container's own devpts (reached through its init's root), so the terminal has a
  // name there; the init is checked to be the same process before and after.
  const live = () => rec.pid !== undefined && parts.kernel.processStartTime(rec.pid) === rec.pidStartTime;
  if (!live()) throw new RuntimeError(`${context}: the container's init has exited`, { code: 'ESTATE', step: 'setns', containerId: id });
  const tty = await openTerminal(parts.kernel, { ...hostIds(plan.process.user, rec.idRange), socket, root: `/proc/${rec.pid}/root` });
  if (!live()) {
    tty.release();
    throw new RuntimeError(`${context}: the container's init has exited`, { code: 'ESTATE', step: 'setns', containerId: id });
  }
  let session: TerminalSession;
  let started: Awaited<ReturnType<RuntimeParts['spawner']['exec']>>;
  try {
    // Attached before the process runs, so none of its output is missed.
    session = await attachTerminal(socket, context);
    if (opts.size) session.resize(opts.size.cols, opts.size.rows);
    try {
      started = await parts.spawner.exec(fields, [tty.slave, tty.slave, tty.slave], context);
    } catch (e) {
      session.detach();
      if (e instanceof RuntimeError) e.containerId = id;
      throw e;
    }
  } finally {
    tty.release();
  }
  const kill = killer(parts, id, started.pid, context);
  const onAbort = () => void kill('SIGKILL').catch((e: unknown) => parts.logger.warn({ err: e }, 'kill of an aborted exec failed'));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const exit = started.exit
    .then((x) => ({ exitCode: x.exitCode, signal: signalName(x.signal) }))
    .finally(() => opts.signal?.removeEventListener('abort', onAbort));
  const stderr = new PassThrough();
  stderr.end();
  return { pid: started.pid, stdin: session.stream, stdout: session.stream, stderr, exit, kill, terminal: session };
}

function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => resolve(Buffer.concat(chunks)));
    stream.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** Runs `plan` to its end and collects its output; `timeoutMs` kills it with SIGKILL. */
export async function runExec(parts: RuntimeParts, id: string, name: string, plan: ExecPlan, opts: ExecOptions): Promise<ExecResult> {
  const p = await spawnExec(parts, id, name, plan, { signal: opts.signal });
  const out = collect(p.stdout);
  const err = collect(p.stderr);
  p.stdin.end(opts.stdin ?? '');
  let timer: NodeJS.Timeout | undefined;
  if (opts.timeoutMs) {
    timer = setTimeout(() => void p.kill('SIGKILL').catch((e: unknown) => parts.logger.warn({ err: e }, 'kill of a timed-out exec failed')), opts.timeoutMs);
  }
  const exit = await p.exit.finally(() => clearTimeout(timer));
  const result = { pid: p.pid, exitCode: exit.exitCode, signal: exit.signal, stdout: (await out).toString('utf8'), stderr: (await err).toString('utf8') };
  if (opts.signal?.aborted) throw abortError(opts.signal, `exec in container ${name}`);
  return result;
}
