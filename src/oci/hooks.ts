/**
 * OCI hooks: each runs with the container's state JSON on stdin, its own args and env, and
 * is killed when its timeout (seconds) passes. createRuntime and poststart/poststop run in
 * the runtime's namespaces; createContainer and startContainer in the container's (their
 * paths resolve inside it, as the spec says), entered with nsenter.
 */
import { spawn } from 'node:child_process';
import { RuntimeError } from '../errors.js';
import type { HookName, OciHook } from './config.js';

/** Hooks that run inside the container's namespaces. */
const IN_CONTAINER: readonly HookName[] = ['createContainer', 'startContainer'];

function runHook(name: HookName, i: number, h: OciHook, state: string, pid: number | undefined): Promise<void> {
  const inside = IN_CONTAINER.includes(name) && pid !== undefined;
  const argv0 = h.args?.[0] ?? h.path;
  const file = inside ? 'nsenter' : h.path;
  // argv[0] as the hook asks (args[0]), which spawn sets through argv0.
  const args = inside ? [`--target=${pid}`, '--mount', '--uts', '--ipc', '--net', '--pid', '--cgroup', '--', h.path, ...(h.args?.slice(1) ?? [])] : (h.args?.slice(1) ?? []);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { argv0: inside ? 'nsenter' : argv0, env: Object.fromEntries((h.env ?? []).map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)])), stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    let timedOut = false;
    const timer = h.timeout ? setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), h.timeout * 1000) : undefined;
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.stdin.on('error', () => undefined);
    child.stdin.end(state);
    const field = `hooks.${name}[${i}]`;
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new RuntimeError(`${field}: run \`${h.path}\`: ${e.message}`, { code: 'EINVAL', step: 'config', path: h.path }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) reject(new RuntimeError(`${field}: \`${h.path}\` ran past its timeout of ${h.timeout} s and was killed`, { code: 'ETIMEDOUT', step: 'config', path: h.path }));
      else if (code !== 0) reject(new RuntimeError(`${field}: \`${h.path}\` failed (${signal ?? `exit code ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`, { code: 'EINVAL', step: 'config', path: h.path }));
      else resolve();
    });
  });
}

/** Runs the hooks of one point in order; the first failure stops them and is thrown. */
export async function runHooks(name: HookName, hooks: readonly OciHook[] | undefined, state: object, pid?: number): Promise<void> {
  const text = JSON.stringify(state);
  for (const [i, h] of (hooks ?? []).entries()) await runHook(name, i, h, text, pid);
}
