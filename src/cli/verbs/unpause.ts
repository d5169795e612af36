/** `stratoswarm unpause`: thaw paused containers. */
import type { Command } from 'commander';
import { action, forEachContainer } from '../context.js';
import { print } from '../format.js';

export function registerUnpause(program: Command): void {
  program
    .command('unpause')
    .description('thaw paused containers')
    .argument('<container...>', 'names or ids')
    .action(
      action(async (ctx, refs: string[]) =>
        forEachContainer(ctx, 'unpause', refs, async (c, ref) => {
          await c.resume();
          print(ref);
        }),
      ),
    );
}
