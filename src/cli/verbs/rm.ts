/** `stratoswarm rm`: remove containers and everything they had. */
import type { Command } from 'commander';
import { action, forEachContainer } from '../context.js';
import { print } from '../format.js';

export function registerRm(program: Command): void {
  program
    .command('rm')
    .description('remove containers (a running one needs -f)')
    .argument('<container...>', 'names or ids')
    .option('-f, --force', 'kill a running container first')
    .action(
      action(async (ctx, refs: string[], flags: { force?: boolean }) =>
        forEachContainer(ctx, 'rm', refs, async (c, ref) => {
          await c.remove({ force: !!flags.force });
          print(ref);
        }),
      ),
    );
}
