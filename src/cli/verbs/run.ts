/** `stratoswarm run`: create, start, and (without -d) attach, wait and exit with its code. */
import type { Command } from 'commander';
import { EvolutionConfig, type Container } from '../../index.js';
import { attach, statusExitCode } from '../attach.js';
import { action } from '../context.js';
import { withCreateOptions, createFromFlags } from '../create-options.js';
import { UsageError } from '../errors.js';
import { print } from '../format.js';
import { runTerminal, windowSize } from '../terminal.js';
import type { CreateFlags } from '../translate.js';
import { parseDuration } from '../units.js';

interface RunFlags extends CreateFlags {
  detach?: boolean;
  interactive?: boolean;
  rm?: boolean;
  evolve?: boolean;
  evolveInterval?: string;
}

export function registerRun(program: Command): void {
  const cmd = program
    .command('run')
    .description('create and start a container; without -d, stream its output and exit with its exit code')
    .argument('<image>', 'image, e.g. stratoswarm/base-agent')
    .argument('[command...]', 'command and arguments (default: the image\'s)')
    .option('-d, --detach', 'run in the background and print the container id')
    .option('-i, --interactive', 'type our stdin into the terminal (with -t); ctrl-p ctrl-q detaches')
    .option('--rm', 'remove the container when it exits')
    .option('--evolve', 'let the container evolve its resource settings while it runs (foreground only)')
    .option('--evolve-interval <duration>', 'time between evolution generations (default 30s)')
    .passThroughOptions();
  withCreateOptions(cmd).action(
    action(async (ctx, image: string, command: string[], flags: RunFlags) => {
      if (flags.detach && flags.rm) throw new UsageError('--rm with -d is not supported yet: no process stays behind to remove the container; remove it with `stratoswarm rm`');
      if (flags.rm && flags.restart !== undefined && flags.restart.trim() !== 'no') throw new UsageError('--rm and --restart conflict: a container removed when it exits cannot be restarted');
      if (flags.interactive && !flags.tty) throw new UsageError('-i needs -t: without a terminal a container\'s stdin is /dev/null');
      if (flags.detach && flags.evolve) throw new UsageError('--evolve needs the foreground: evolution runs in the stratoswarm process, which -d leaves');
      const interval = flags.evolveInterval === undefined ? undefined : parseDuration(flags.evolveInterval);
      if (flags.evolveInterval !== undefined && interval === undefined) throw new UsageError(`--evolve-interval: expected a duration like 30s, got "${flags.evolveInterval}"`);
      const runtime = ctx.runtime();
      const c = await createFromFlags(runtime, image, command, flags);
      // Attached before the start, so the terminal shows the command's first output.
      const session = flags.tty && !flags.detach ? await c.attach() : undefined;
      const size = windowSize(process.stdout);
      if (session && size) session.resize(size.cols, size.rows);
      try {
        await c.start();
      } catch (e) {
        session?.detach();
        if (flags.rm) await c.remove({ force: true }).catch(() => undefined);
        throw e;
      }
      if (flags.detach) {
        print(c.id);
        return 0;
      }
      let detached = false;
      try {
        if (flags.evolve) await evolve(c, runtime.options, interval);
        if (!session) return statusExitCode(await attach(c));
        detached = (await runTerminal(session, { interactive: !!flags.interactive })) === 'detached';
        // Detached: the container goes on (and, with --rm, stays once it exits: nobody is left to remove it).
        if (detached) return 0;
        return statusExitCode(await c.wait());
      } finally {
        if (flags.rm && !detached) await c.remove({ force: true });
      }
    }),
  );
}

async function evolve(c: Container, options: { evolutionRate: number }, intervalMs: number | undefined): Promise<void> {
  if (c.evolutionState()?.running) return; // STRATOSWARM_EVOLUTION_ENABLED already started it
  const b = EvolutionConfig.builder({ evolutionEnabled: true, evolutionRate: options.evolutionRate });
  if (intervalMs !== undefined) b.generationInterval(intervalMs);
  await c.enableEvolution(b.build());
}
