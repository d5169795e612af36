/**
 * What every verb shares: the Runtime configured from the environment and the global flags,
 * container lookup by name, id or id prefix, and the wrapper that turns a failure into one
 * line and an exit code.
 */
import type { Command } from 'commander';
import { Container, RuntimeError, Runtime, type LogLevel } from '../index.js';
import { errorLine, exitCodeFor, SilentExit } from './errors.js';

export interface GlobalFlags {
  stateRoot?: string;
  imageRoot?: string;
  logLevel?: string;
}

let current: Runtime | undefined;

/**
 * The runtime of this invocation, made on first use. The library logs JSON on stderr; a
 * command line keeps that to warnings unless --log-level or STRATOSWARM_LOG_LEVEL says otherwise.
 */
export function runtimeFor(globals: GlobalFlags, env: NodeJS.ProcessEnv = process.env): Runtime {
  current ??= new Runtime({
    stateRoot: globals.stateRoot,
    imageRoot: globals.imageRoot,
    logLevel: (globals.logLevel ?? (env.STRATOSWARM_LOG_LEVEL ? undefined : 'error')) as LogLevel | undefined,
    env,
  });
  return current;
}

/** Ends this invocation's use of the spawner; containers keep running. */
export async function closeRuntime(): Promise<void> {
  const r = current;
  current = undefined;
  await r?.close();
}

/** Loads a container by name, full id or unique id prefix (as `docker` accepts them). */
export async function findContainer(runtime: Runtime, ref: string): Promise<Container> {
  try {
    return await Container.load(ref, { runtime });
  } catch (e) {
    if (!(e instanceof RuntimeError) || e.code !== 'ENOTFOUND' || !/^[a-f0-9]{1,31}$/.test(ref)) throw e;
    const matches = (await Container.list({ runtime })).filter((s) => s.id.startsWith(ref));
    if (matches.length === 1) return Container.load(matches[0]!.id, { runtime });
    if (matches.length > 1) throw new RuntimeError(`container id prefix "${ref}" is ambiguous (${matches.length} containers)`, { code: 'EINVAL', step: 'state' });
    throw new RuntimeError(`no container named or with id "${ref}"`, { code: 'ENOTFOUND', step: 'state' });
  }
}

/** The verb's name as the user typed it ("run", "completion"). */
function verbName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

export interface VerbContext {
  globals: GlobalFlags;
  runtime(): Runtime;
}

/**
 * Wraps a verb's action: gives it the runtime, prints a failure as one line on stderr,
 * sets the exit code, and closes the runtime so that the process can exit.
 */
export function action<A extends unknown[]>(fn: (ctx: VerbContext, ...args: A) => Promise<number | void>): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const globals = cmd.optsWithGlobals() as GlobalFlags;
    const ctx: VerbContext = { globals, runtime: () => runtimeFor(globals) };
    try {
      const code = await fn(ctx, ...(args.slice(0, -1) as A));
      process.exitCode = code ?? 0;
    } catch (e) {
      if (!(e instanceof SilentExit)) process.stderr.write(`${errorLine(verbName(cmd), e)}\n`);
      process.exitCode = exitCodeFor(e);
    } finally {
      await closeRuntime().catch(() => undefined);
    }
  };
}

/** Runs `each` for every named container, reporting failures one line each (docker rm a b c). */
export async function forEachContainer(ctx: VerbContext, verb: string, refs: string[], each: (c: Container, ref: string) => Promise<void>): Promise<number> {
  let failed = false;
  for (const ref of refs) {
    try {
      await each(await findContainer(ctx.runtime(), ref), ref);
    } catch (e) {
      failed = true;
      process.stderr.write(`${errorLine(verb, e)}\n`);
    }
  }
  return failed ? 1 : 0;
}
