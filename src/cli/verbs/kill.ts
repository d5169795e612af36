/** `stratoswarm kill`: send a signal to containers' init. */
import type { Command } from 'commander';
import { action, forEachContainer } from '../context.js';
import { print } from '../format.js';

export function registerKill(program: Command): void {
  program
    .command('kill')
    .description("send a signal (default SIGKILL) to containers' init process")
    .argument('<container...>', 'names or ids')
    .option('-s, --signal <signal>', 'signal name or number (KILL, SIGTERM, 15, SIGRTMIN+2)', 'SIGKILL')
    .action(
      action(async (ctx, refs: string[], flags: { signal: string }) => {
        const sig = /^\d+$/.test(flags.signal) ? Number(flags.signal) : flags.signal;
        return forEachContainer(ctx, 'kill', refs, async (c, ref) => {
          await c.kill(sig);
          print(ref);
        });
      }),
    );
}
