/** `stratoswarm rmi`: remove image references (their content goes with `prune`). */
import type { Command } from 'commander';
import { errorLine } from '../errors.js';
import { action } from '../context.js';
import { output, withFormat, type OutputFormat } from '../format.js';

export function registerRmi(program: Command): void {
  withFormat(
    program
      .command('rmi')
      .description('remove images (refused while a container uses one, unless -f)')
      .argument('<image...>', 'references')
      .option('-f, --force', 'remove even while a container uses it'),
  ).action(
    action(async (ctx, refs: string[], flags: { force?: boolean; format?: OutputFormat }) => {
      const store = ctx.runtime().images;
      const removed: { ref: string; manifest: string }[] = [];
      let failed = false;
      for (const ref of refs) {
        try {
          removed.push(store.remove(ref, { force: !!flags.force }));
        } catch (e) {
          failed = true;
          process.stderr.write(`${errorLine('rmi', e)}\n`);
        }
      }
      output(flags.format, removed, (rs) => rs.map((r) => `Untagged: ${store.familiar(r.ref)}`).join('\n'));
      return failed ? 1 : 0;
    }),
  );
}
