/** `stratoswarm wait`: block until containers exit; print each one's exit code. */
import type { Command } from 'commander';
import { statusExitCode } from '../attach.js';
import { action, forEachContainer } from '../context.js';
import { print } from '../format.js';

export function registerWait(program: Command): void {
  program
    .command('wait')
    .description('wait until containers exit and print their exit codes')
    .argument('<container...>', 'names or ids')
    .action(
      action(async (ctx, refs: string[]) =>
        forEachContainer(ctx, 'wait', refs, async (c) => {
          print(String(statusExitCode(await c.wait())));
        }),
      ),
    );
}
