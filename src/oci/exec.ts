/**
 * `exec --process FILE`: a further process in a running container, joining its namespaces
 * and cgroups, under the container's seccomp program. The request goes to the spawner
 * through a keeper (native/oci/keeper.c) that the engine waits for: it sends the encoded
 * request with the stdio it was given, reports the pid, and exits as the process does.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';
import { encodeExec } from '../plan/encode.js';
import { replyError } from '../spawner/client.js';
import { encodeFrame } from '../spawner/wire.js';
import { translateConfig } from './config.js';
import { cgroupHierarchies, pathKind } from './host.js';
import { processPlan } from './plan.js';
import { OCI_VERSION, OciRuntime, writePidFile } from './runtime.js';

export interface ExecOptions {
  processFile: string;
  detach: boolean;
  pidFile?: string | undefined;
  consoleSocket?: string | undefined;
  stdio: number[];
}

/** Runs the exec; resolves with its exit code when not detached, else 0 once it runs. */
export async function ociExec(rt: OciRuntime, ociId: string, o: ExecOptions): Promise<number> {
  const rec = rt.record(ociId);
  if (rt.status(rec) !== 'running') throw new RuntimeError(`exec in container "${ociId}": it is ${rt.status(rec)}, not running`, { code: 'ESTATE', step: 'state' });
  let process: unknown;
  try {
    process = JSON.parse(fs.readFileSync(o.processFile, 'utf8'));
  } catch (e) {
    throw new RuntimeError(`--process \`${o.processFile}\`: ${(e as Error).message}`, { code: 'EINVAL', step: 'config', path: o.processFile });
  }
  const base = { ociVersion: OCI_VERSION, root: { path: '/' }, linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }, { type: 'network' }] } };
  const t = translateConfig('/', { ...base, process }, { cgroupHierarchies, deviceExists: () => true, pathKind });
  if (t.process.terminal && !o.consoleSocket) throw new RuntimeError('process.terminal: a terminal needs --console-socket', { code: 'EINVAL', step: 'config' });
  const d = OciRuntime.data(rec);
  const seccomp = d.seccomp ? { bpf: Buffer.from(d.seccomp, 'base64') } : undefined;
  const plan = {
    process: processPlan(t, seccomp, { readonlyRoot: false, maskedPaths: [], readonlyPaths: [] }),
    namespaces: [...rec.namespaces],
    cgroupProcs: [...rec.cgroupProcs],
    lastCap: d.lastCap,
  };
  const frame = encodeFrame(encodeExec(rec.id, plan, `exec in container ${ociId}`));
  const kernel = rt.parts.kernel;
  const pty = t.process.terminal ? kernel.openPty(t.process.user.uid, t.process.user.gid) : undefined;
  // The spawner must be running for the keeper to reach it.
  await rt.parts.spawner.request(['ping'], `exec in container ${ociId}`);
  const stdio = pty ? [pty.slave, pty.slave, pty.slave] : o.stdio;
  const keeper = await rt.keepers.exec(join(rt.root, 'spawner.sock'), frame, stdio, o.detach, pty?.path);
  if (pty) kernel.close(pty.slave);
  const line = keeper.status;
  if (!line.startsWith('pid ')) {
    if (pty) kernel.close(pty.master);
    if (line.startsWith('reply')) throw replyError(line.split('\x1f').slice(1), `exec in container ${ociId}`);
    throw new RuntimeError(`exec in container ${ociId}: ${line || 'the keeper ended without a word'}`, { code: 'ENOSPAWNER', step: 'spawner' });
  }
  if (pty) {
    try {
      await rt.sendConsole(o.consoleSocket!, pty);
    } finally {
      kernel.close(pty.master);
    }
  }
  if (o.pidFile) writePidFile(o.pidFile, keeper.pid);
  return o.detach ? 0 : keeper.exited;
}
