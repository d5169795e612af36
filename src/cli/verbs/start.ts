/** `stratoswarm start`: run created containers' commands; -a attaches to one. */
import type { Command } from 'commander';
import { attach, statusExitCode } from '../attach.js';
import { action, findContainer, forEachContainer } from '../context.js';
import { UsageError } from '../errors.js';
import { print } from '../format.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('start one or more created containers')
    .argument('<container...>', 'names or ids')
    .option('-a, --attach', 'stream the output of the (one) container and exit with its exit code')
    .action(
      action(async (ctx, refs: string[], flags: { attach?: boolean }) => {
        if (flags.attach) {
          if (refs.length !== 1) throw new UsageError('-a takes exactly one container');
          const c = await findContainer(ctx.runtime(), refs[0]!);
          await c.start();
          return statusExitCode(await attach(c));
        }
        return forEachContainer(ctx, 'start', refs, async (c, ref) => {
          await c.start();
          print(ref);
        });
      }),
    );
}
