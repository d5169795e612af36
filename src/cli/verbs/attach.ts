/** `stratoswarm attach`: the terminal of a container run with -t, until it exits or ctrl-p ctrl-q detaches. */
import type { Command } from 'commander';
import { statusExitCode } from '../attach.js';
import { action, findContainer } from '../context.js';
import { runTerminal } from '../terminal.js';

export function registerAttach(program: Command): void {
  program
    .command('attach')
    .description('attach to the terminal of a container run with -t; ctrl-p ctrl-q detaches, leaving it running')
    .argument('<container>', 'name or id')
    .option('--no-stdin', 'only show its output; do not type our stdin into it')
    .action(
      action(async (ctx, ref: string, flags: { stdin: boolean }) => {
        const c = await findContainer(ctx.runtime(), ref);
        const session = await c.attach();
        const how = await runTerminal(session, { interactive: flags.stdin });
        return how === 'detached' ? 0 : statusExitCode(await c.wait());
      }),
    );
}
