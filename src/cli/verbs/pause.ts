/** `stratoswarm pause`: freeze every process of containers (cgroup freezer). */
import type { Command } from 'commander';
import { action, forEachContainer } from '../context.js';
import { print } from '../format.js';

export function registerPause(program: Command): void {
  program
    .command('pause')
    .description('freeze every process of containers')
    .argument('<container...>', 'names or ids')
    .action(
      action(async (ctx, refs: string[]) =>
        forEachContainer(ctx, 'pause', refs, async (c, ref) => {
          await c.pause();
          print(ref);
        }),
      ),
    );
}
