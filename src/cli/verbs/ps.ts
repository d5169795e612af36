/** `stratoswarm ps`: running containers (-a: all), as `docker ps` lists them. */
import type { Command } from 'commander';
import { Container } from '../../index.js';
import { action } from '../context.js';
import { commandOf, quoteCommand, statusText } from '../describe.js';
import { output, shortId, table, withFormat, type OutputFormat } from '../format.js';
import { humanDuration } from '../units.js';

export function registerPs(program: Command): void {
  withFormat(
    program
      .command('ps')
      .description('list containers (running ones; -a for all)')
      .option('-a, --all', 'show all containers, also created and stopped ones')
      .option('-q, --quiet', 'print ids only'),
  ).action(
    action(async (ctx, flags: { all?: boolean; quiet?: boolean; format?: OutputFormat }) => {
      const runtime = ctx.runtime();
      const statuses = (await Container.list({ runtime }))
        .filter((s) => flags.all || s.state === 'running' || s.state === 'paused')
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
      if (flags.quiet) {
        for (const s of statuses) process.stdout.write(`${shortId(s.id)}\n`);
        return;
      }
      const rows = [];
      for (const s of statuses) {
        let image = '';
        let command: string[] = [];
        try {
          const c = await Container.load(s.id, { runtime });
          image = c.config.spec.image;
          command = commandOf(c, runtime);
        } catch {
          continue; // removed meanwhile
        }
        rows.push({ ...s, image, command, status: statusText(s) });
      }
      const now = Date.now();
      output(flags.format, rows, (rs) =>
        table(
          ['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'],
          rs.map((r) => [shortId(r.id), r.image, quoteCommand(r.command), `${humanDuration(now - r.createdAt.getTime())} ago`, statusText(r, now), r.name]),
        ),
      );
    }),
  );
}
