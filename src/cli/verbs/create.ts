/** `stratoswarm create`: prepare a container without running its command; prints the id. */
import type { Command } from 'commander';
import { action } from '../context.js';
import { withCreateOptions, createFromFlags } from '../create-options.js';
import { print } from '../format.js';
import type { CreateFlags } from '../translate.js';

export function registerCreate(program: Command): void {
  const cmd = program
    .command('create')
    .description('create a container (prepared up to its command, as OCI create); start runs it')
    .argument('<image>', 'image, e.g. stratoswarm/base-agent')
    .argument('[command...]', 'command and arguments (default: the image\'s)')
    .passThroughOptions();
  withCreateOptions(cmd).action(
    action(async (ctx, image: string, command: string[], flags: CreateFlags) => {
      const c = await createFromFlags(ctx.runtime(), image, command, flags);
      print(c.id);
    }),
  );
}
