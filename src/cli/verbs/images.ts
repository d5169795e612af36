/** `stratoswarm images`: what the image store holds. */
import type { Command } from 'commander';
import { action } from '../context.js';
import { output, table, withFormat, type OutputFormat } from '../format.js';
import { formatBytes, humanDuration } from '../units.js';

export function registerImages(program: Command): void {
  withFormat(
    program
      .command('images')
      .description('list the images in the image store')
      .option('-q, --quiet', 'print references only')
      .option('--digests', 'show the digest each image was pulled or imported by'),
  ).action(
    action(async (ctx, flags: { quiet?: boolean; digests?: boolean; format?: OutputFormat }) => {
      const store = ctx.runtime().images;
      const images = store.images();
      if (flags.quiet) return void images.forEach((i) => process.stdout.write(`${i.ref}\n`));
      const now = Date.now();
      const rows = images.map((i) => {
        const at = i.ref.lastIndexOf(':');
        const [repository, tag] = at > i.ref.lastIndexOf('/') ? [i.ref.slice(0, at), i.ref.slice(at + 1)] : [i.ref, '<none>'];
        return { ...i, repository, tag };
      });
      output(flags.format, rows.map(({ repository, tag, ...r }) => ({ repository, tag, ...r })), (is) =>
        table(
          ['REPOSITORY', 'TAG', ...(flags.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE', 'LAYERS', 'PLATFORM'],
          is.map((i) => [
            i.repository,
            i.tag,
            ...(flags.digests ? [i.digest ?? '<none>'] : []),
            (i.id ?? '').replace(/^sha256:/, '').slice(0, 12),
            `${humanDuration(now - Date.parse(i.createdAt))} ago`,
            formatBytes(i.size),
            i.layers.length,
            i.platform,
          ]),
        ),
      );
    }),
  );
}
