/**
 * Exit codes (docker run's conventions) and the one-line error the CLI prints.
 *   0..255  the container's (or exec'd process's) own exit code; 128+N when signal N ended it
 *   125     the runtime failed (bad flags, no such container, a step failed)
 *   126     the command was found but could not be run (EACCES)
 *   127     the command was not found (ENOENT)
 */
import { ConfigError, RuntimeError } from '../index.js';

export const EXIT_RUNTIME = 125;
export const EXIT_CANNOT_EXECUTE = 126;
export const EXIT_NOT_FOUND = 127;

/** Bad command-line input: reported like any other failure, exit 125. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Ends the CLI with this exit code without printing anything (the code says it all). */
export class SilentExit extends Error {
  override name = 'SilentExit';
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

const EXEC_STEPS = new Set(['resolve-exec', 'execve']);

/** The exit code a failure maps to. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof SilentExit) return err.exitCode;
  if (err instanceof RuntimeError && err.step !== undefined && EXEC_STEPS.has(err.step)) {
    if (err.errno === 'ENOENT') return EXIT_NOT_FOUND;
    if (err.errno === 'EACCES' || err.errno === 'EPERM' || err.errno === 'ENOEXEC') return EXIT_CANNOT_EXECUTE;
  }
  return EXIT_RUNTIME;
}

/** The exit code of a process that exited with `exitCode` or was ended by signal number `signo`. */
export function processExitCode(exitCode: number | null, signo: number | undefined): number {
  if (exitCode !== null) return exitCode;
  return signo !== undefined ? 128 + signo : EXIT_RUNTIME;
}

/** `stratoswarm: <verb>: <message>` on one line, whatever the error carries. */
export function errorLine(verb: string, err: unknown): string {
  let msg: string;
  if (err instanceof RuntimeError || err instanceof ConfigError || err instanceof UsageError) msg = err.message;
  else if (err instanceof Error) msg = (err as NodeJS.ErrnoException).code === 'ABORT_ERR' || err.name === 'AbortError' ? 'interrupted' : err.message;
  else msg = String(err);
  return verb ? `stratoswarm: ${verb}: ${oneLine(msg)}` : `stratoswarm: ${oneLine(msg)}`;
}

/** A multi-line message on one line: lines joined with "; " (after a colon, a space). */
export function oneLine(msg: string): string {
  return msg
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean)
    .join('; ')
    .replace(/:; /g, ': ');
}
