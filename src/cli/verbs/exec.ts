/** `stratoswarm exec`: a further process in a running container, stdio piped or (-t) a terminal. */
import type { Command } from 'commander';
import { finished } from 'node:stream/promises';
import { signalNumber } from '../../index.js';
import { action, findContainer } from '../context.js';
import { processExitCode } from '../errors.js';
import { runTerminal, windowSize } from '../terminal.js';
import { parseEnv } from '../translate.js';

const exitCode = (exit: { exitCode: number | null; signal: string | null }) => processExitCode(exit.exitCode, exit.signal ? signalNumber(exit.signal) : undefined);

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface ExecFlags {
  interactive?: boolean;
  tty?: boolean;
  env?: string[];
  workdir?: string;
  user?: string;
}

export function registerExec(program: Command): void {
  program
    .command('exec')
    .description('run a command in a running container; exits with its exit code')
    .argument('<container>', 'name or id')
    .argument('<command...>', 'command and arguments')
    .option('-i, --interactive', 'pass our stdin to the command (with -t: typed into its terminal; ctrl-p ctrl-q detaches)')
    .option('-t, --tty', 'give the command a terminal')
    .option('-e, --env <NAME=VALUE>', 'set an environment variable; repeatable', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user>', 'uid, uid:gid, name or name:group')
    .passThroughOptions()
    .action(
      action(async (ctx, ref: string, command: string[], flags: ExecFlags) => {
        const c = await findContainer(ctx.runtime(), ref);
        const p = await c.execStream(command, {
          env: flags.env ? parseEnv(flags.env) : undefined,
          workingDir: flags.workdir,
          user: flags.user,
          terminal: flags.tty ? (windowSize(process.stdout) ?? true) : false,
        });
        if (p.terminal) {
          const how = await runTerminal(p.terminal, { interactive: !!flags.interactive });
          return how === 'detached' ? 0 : exitCode(await p.exit);
        }
        p.stdout.pipe(process.stdout, { end: false });
        p.stderr.pipe(process.stderr, { end: false });
        if (flags.interactive) process.stdin.pipe(p.stdin as NodeJS.WritableStream);
        else p.stdin.end();
        const forward = (sig: NodeJS.Signals) => void p.kill(sig).catch(() => undefined);
        process.on('SIGINT', forward).on('SIGTERM', forward);
        try {
          const exit = await p.exit;
          await Promise.all([finished(p.stdout), finished(p.stderr)]).catch(() => undefined);
          return exitCode(exit);
        } finally {
          process.off('SIGINT', forward).off('SIGTERM', forward);
          if (flags.interactive) {
            process.stdin.unpipe();
            process.stdin.destroy();
          }
        }
      }),
    );
}
