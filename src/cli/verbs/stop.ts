/** `stratoswarm stop`: SIGTERM, then SIGKILL after the grace period. */
import type { Command } from 'commander';
import { action, forEachContainer } from '../context.js';
import { print } from '../format.js';
import { parseInteger } from '../units.js';

export function registerStop(program: Command): void {
  program
    .command('stop')
    .description('stop containers: SIGTERM (or -s), then SIGKILL after the grace period')
    .argument('<container...>', 'names or ids')
    .option('-t, --time <seconds>', 'seconds to wait before SIGKILL', '10')
    .option('-s, --signal <signal>', 'signal to send first', 'SIGTERM')
    .action(
      action(async (ctx, refs: string[], flags: { time: string; signal: string }) => {
        const timeoutMs = parseInteger(flags.time, '--time') * 1000;
        return forEachContainer(ctx, 'stop', refs, async (c, ref) => {
          await c.stop({ timeoutMs, signal: flags.signal });
          print(ref);
        });
      }),
    );
}
