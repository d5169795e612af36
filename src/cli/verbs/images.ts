/** `stratoswarm images`: what the image store holds. */
import type { Command } from 'commander';
import { action } from '../context.js';
import { output, table, withFormat, type OutputFormat } from '../format.js';
import { humanDuration } from '../units.js';

export function registerImages(program: Command): void {
  withFormat(program.command('images').description('list the images in the image store').option('-q, --quiet', 'print references only')).action(
    action(async (ctx, flags: { quiet?: boolean; format?: OutputFormat }) => {
      const store = ctx.runtime().images;
      const refs = store.list();
      if (flags.quiet) return void refs.forEach((r) => process.stdout.write(`${r}\n`));
      const images = refs.map((ref) => {
        const rec = store.resolve(ref);
        const [repository, tag] = ref.split(':') as [string, string];
        return { ref, repository, tag, id: rec.layers[0] ?? '', layers: rec.layers, createdAt: rec.createdAt, config: rec.config };
      });
      const now = Date.now();
      output(flags.format, images, (is) =>
        table(
          ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'LAYERS'],
          is.map((i) => [i.repository, i.tag, i.id.replace(/^sha256[:-]/, '').slice(0, 12), `${humanDuration(now - Date.parse(i.createdAt))} ago`, i.layers.length]),
        ),
      );
    }),
  );
}
