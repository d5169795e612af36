/** `stratoswarm update`: change limits of running containers in place (all or nothing). */
import type { Command } from 'commander';
import { action, forEachContainer } from '../context.js';
import { print } from '../format.js';
import { updateFromFlags } from '../translate.js';

interface UpdateFlags {
  cpus?: string;
  memory?: string;
  pidsLimit?: string;
  cpusetCpus?: string;
}

export function registerUpdate(program: Command): void {
  program
    .command('update')
    .description('change resource limits of running containers')
    .argument('<container...>', 'names or ids')
    .option('--cpus <n>', 'CPU limit in cores')
    .option('-m, --memory <size>', 'memory limit (512m, 1g)')
    .option('--pids-limit <n>', 'maximum number of processes')
    .option('--cpuset-cpus <list>', 'CPUs the container may run on (0-3,6)')
    .action(
      action(async (ctx, refs: string[], flags: UpdateFlags) => {
        const changes = updateFromFlags(flags);
        return forEachContainer(ctx, 'update', refs, async (c, ref) => {
          await c.update(changes);
          print(ref);
        });
      }),
    );
}
