/** `stratoswarm prune`: delete the blobs and layers no image or container references. */
import type { Command } from 'commander';
import { action } from '../context.js';
import { output, withFormat, type OutputFormat } from '../format.js';
import { formatBytes } from '../units.js';

export function registerPrune(program: Command): void {
  withFormat(
    program
      .command('prune')
      .description('delete image content nothing references (blobs, unpacked layers, stale downloads)')
      .option('--grace <seconds>', 'keep content younger than this (another process may be pulling it)', '0'),
  ).action(
    action(async (ctx, flags: { grace: string; format?: OutputFormat }) => {
      const grace = Number(flags.grace);
      if (!Number.isFinite(grace) || grace < 0) throw new Error(`--grace: expected seconds, got "${flags.grace}"`);
      const store = ctx.runtime().images;
      const r = await store.prune({ graceMs: grace * 1000 });
      output(flags.format, { ...r, diskUsage: store.diskUsage() }, (x) =>
        [
          ...x.layers.map((l) => `deleted layer: ${l}`),
          ...x.blobs.map((b) => `deleted blob: ${b}`),
          ...x.temporary.map((t) => `deleted temporary: ${t}`),
          `Total reclaimed space: ${formatBytes(x.freedBytes)}`,
        ].join('\n'),
      );
    }),
  );
}
