/** A container process's environment: the image's, then the runtime's, then the caller's. */
import type { PlanUser } from '../plan/types.js';

/** The PATH a process gets when neither the image nor the caller sets one (Docker's). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export function buildEnv(imageEnv: readonly string[], extra: Readonly<Record<string, string>>, hostname: string, user: PlanUser): string[] {
  const env = new Map<string, string>();
  env.set('PATH', DEFAULT_PATH);
  for (const kv of imageEnv) {
    const i = kv.indexOf('=');
    if (i > 0) env.set(kv.slice(0, i), kv.slice(i + 1));
  }
  env.set('HOSTNAME', hostname);
  if (!env.has('HOME')) env.set('HOME', user.uid === 0 ? '/root' : '/');
  for (const [k, v] of Object.entries(extra)) env.set(k, v);
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** The PATH the init searches for argv[0] (the environment's own). */
export function searchPath(env: readonly string[]): string {
  return env.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
}
