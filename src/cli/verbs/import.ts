/** `stratoswarm import`: an image from an OCI image layout (directory or tar) or a `docker save` archive. */
import type { Command } from 'commander';
import { parsePlatform } from '../../image/media.js';
import { ConfigError } from '../../errors.js';
import { action } from '../context.js';
import { output, withFormat, type OutputFormat } from '../format.js';

export function registerImport(program: Command): void {
  withFormat(
    program
      .command('import')
      .description('import an OCI image layout (directory or tar) or a docker save archive')
      .argument('<path>', 'the layout directory or the archive')
      .argument('[reference]', 'the name to store it under (needed when the archive names none)')
      .option('--platform <os/arch>', 'the platform to choose from an image index (default: this host)'),
  ).action(
    action(async (ctx, path: string, ref: string | undefined, flags: { platform?: string; format?: OutputFormat }) => {
      const platform = flags.platform !== undefined ? parsePlatform(flags.platform) : undefined;
      if (flags.platform !== undefined && !platform) throw new ConfigError('invalid flags', [{ field: '--platform', problem: `expected os/arch[/variant], got "${flags.platform}"` }]);
      const store = ctx.runtime().images;
      const r = await store.import(path, { ref, platform });
      output(flags.format, r, (x) => x.refs.map((n) => `Loaded image: ${store.familiar(n)}`).join('\n'));
    }),
  );
}
