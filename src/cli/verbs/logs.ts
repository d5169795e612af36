/** `stratoswarm logs`: a container's output, each line to the stream it was written to. */
import type { Command } from 'commander';
import { action, findContainer } from '../context.js';
import { type OutputFormat, withFormat } from '../format.js';
import { parseInteger, parseSince } from '../units.js';

interface LogsFlags {
  follow?: boolean;
  since?: string;
  tail?: string;
  timestamps?: boolean;
  format?: OutputFormat;
}

export function registerLogs(program: Command): void {
  withFormat(
    program
      .command('logs')
      .description("print a container's output (stdout lines to stdout, stderr lines to stderr)")
      .argument('<container>', 'name or id')
      .option('-f, --follow', 'keep printing new output until the container exits')
      .option('--since <time>', 'only lines since a duration ago (10m, 1h30m) or an RFC 3339 time')
      .option('-n, --tail <n>', 'only the last N lines ("all" for every line)')
      .option('-t, --timestamps', 'prefix each line with the time it was written'),
  ).action(
    action(async (ctx, ref: string, flags: LogsFlags) => {
      const c = await findContainer(ctx.runtime(), ref);
      const since = flags.since === undefined ? undefined : parseSince(flags.since);
      const tail = flags.tail === undefined || flags.tail === 'all' ? undefined : parseInteger(flags.tail, '--tail');
      const stop = new AbortController();
      const interrupt = () => stop.abort();
      process.once('SIGINT', interrupt);
      try {
        for await (const l of c.logs({ follow: !!flags.follow, since, tail, signal: stop.signal })) {
          if (flags.format === 'json') {
            process.stdout.write(`${JSON.stringify({ stream: l.stream, time: new Date(l.time).toISOString(), line: l.line })}\n`);
            continue;
          }
          const text = flags.timestamps ? `${new Date(l.time).toISOString()} ${l.line}\n` : `${l.line}\n`;
          (l.stream === 'stderr' ? process.stderr : process.stdout).write(text);
        }
      } catch (e) {
        if (!stop.signal.aborted) throw e;
      } finally {
        process.off('SIGINT', interrupt);
      }
    }),
  );
}
