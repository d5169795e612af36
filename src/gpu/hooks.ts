/**
 * OCI hooks that CDI specs add, run when the OCI runtime specification says: createRuntime
 * after the container's namespaces and mounts exist (in the runtime's namespaces),
 * createContainer then too but inside the container's namespaces, startContainer inside
 * them just before the command starts, poststart after it started and poststop after the
 * container is gone (both in the runtime's namespaces). Each gets the container's state on
 * stdin, as OCI hooks do. A hook's path is resolved on the host even when it runs inside: the
 * host file is opened first and executed through that descriptor after entering (nsenter).
 * A failing createRuntime, createContainer or startContainer hook fails the operation;
 * poststart and poststop failures are only logged, as the specification has it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { RuntimeError } from '../errors.js';
import type { CdiHook, CdiHookName } from './cdi/spec.js';

export interface HookState {
  id: string;
  pid?: number | undefined;
  status: 'creating' | 'created' | 'running' | 'stopped';
  bundle: string;
  annotations?: Record<string, string>;
}

const INSIDE: readonly CdiHookName[] = ['createContainer', 'startContainer'];
/** nsenter (util-linux) by absolute path: a hook's environment is its own and may have no PATH. */
const NSENTER = ['/usr/bin/nsenter', '/bin/nsenter', '/usr/sbin/nsenter', '/sbin/nsenter'].find((p) => fs.existsSync(p)) ?? 'nsenter';

function runOne(hook: CdiHook, state: HookState): Promise<void> {
  const inside = INSIDE.includes(hook.hookName);
  const args = (hook.args ?? [hook.path]).slice(1);
  const label = `${hook.hookName} hook ${hook.path}`;
  let fd: number | undefined;
  let file = hook.path;
  let argv = args;
  if (inside) {
    if (!state.pid) return Promise.reject(new RuntimeError(`${label}: the container has no init to enter`, { code: 'ESTATE', step: 'config' }));
    try {
      fd = fs.openSync(hook.path, 'r');
    } catch (e) {
      return Promise.reject(new RuntimeError(`${label}: ${(e as Error).message}`, { code: 'ENOTFOUND', step: 'config', path: hook.path }));
    }
    file = NSENTER;
    argv = ['--target', String(state.pid), '--mount', '--uts', '--ipc', '--net', '--pid', '--cgroup', '--', '/proc/self/fd/3', ...args];
  }
  return new Promise<void>((resolve, reject) => {
    const env = hook.env ?? [];
    const child = spawn(file, argv, {
      env: Object.fromEntries(env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
      stdio: ['pipe', 'ignore', 'pipe', ...(fd !== undefined ? [fd] : [])],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.stdin!.on('error', () => undefined); // a hook that does not read its state
    child.stdin!.end(JSON.stringify({ ociVersion: '1.0.2', ...state }));
    const timer = hook.timeout ? setTimeout(() => child.kill('SIGKILL'), hook.timeout * 1000) : undefined;
    let timedOut = false;
    if (timer) timer.unref();
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new RuntimeError(`${label}: ${e.message}`, { code: 'ESYSCALL', step: 'config', path: hook.path, cause: e }));
    });
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (fd !== undefined) fs.closeSync(fd);
      timedOut = signal === 'SIGKILL' && !!hook.timeout;
      if (code === 0) return resolve();
      const why = timedOut ? `did not finish within ${hook.timeout} s` : code !== null ? `exited with status ${code}` : `was killed by ${signal}`;
      reject(new RuntimeError(`${label} ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, { code: timedOut ? 'ETIMEDOUT' : 'ESYSCALL', step: 'config', path: hook.path }));
    });
  });
}

/** Runs the hooks of one phase in their order; the first failure stops the rest and is thrown. */
export async function runHooks(hooks: readonly CdiHook[] | undefined, phase: CdiHookName, state: HookState): Promise<void> {
  for (const h of hooks ?? []) if (h.hookName === phase) await runOne(h, state);
}
