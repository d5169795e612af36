/** Attaching to a container's output in the foreground, as `docker run` without -d does. */
import { finished } from 'node:stream/promises';
import { signalNumber, type Container, type ExitStatus } from '../index.js';
import { processExitCode } from './errors.js';

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/**
 * Copies the container's stdout and stderr to ours until it exits, forwarding the signals
 * we receive to its init (docker's --sig-proxy). Resolves to its exit status.
 */
export async function attach(c: Container): Promise<ExitStatus> {
  const out = c.stdout;
  const err = c.stderr;
  out.pipe(process.stdout, { end: false });
  err.pipe(process.stderr, { end: false });
  const forward = (sig: NodeJS.Signals) => {
    c.kill(sig).catch(() => undefined);
  };
  for (const s of FORWARDED) process.on(s, forward);
  try {
    const status = await c.wait();
    await Promise.all([finished(out), finished(err)]).catch(() => undefined);
    return status;
  } finally {
    for (const s of FORWARDED) process.off(s, forward);
  }
}

/** The exit code a stopped container's status stands for (128+N for signal N). */
export function statusExitCode(s: ExitStatus): number {
  return processExitCode(s.exitCode, s.signal ? signalNumber(s.signal) : undefined);
}
