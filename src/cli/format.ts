/** Output: docker-style borderless tables (cli-table3), JSON, and the --format option. */
import Table from 'cli-table3';
import { Option, type Command } from 'commander';

export type OutputFormat = 'table' | 'json';

/** Adds `--format table|json` to a verb. */
export function withFormat(cmd: Command): Command {
  return cmd.addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'));
}

const PLAIN = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '',
  middle: '   ',
};

/** Rows under an upper-case header, columns three spaces apart, as `docker ps` prints them. */
export function table(head: string[], rows: (string | number)[][]): string {
  const t = new Table({ head, chars: PLAIN, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0, compact: true } });
  for (const r of rows) t.push(r.map((c) => String(c)));
  return t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** Key/value lines ("Name:  value"), for one record. */
export function keyValues(pairs: [string, string | number | undefined][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${v ?? ''}`).join('\n');
}

export function json(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2);
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Prints `data` as JSON, or the table `render` makes of it. */
export function output<T>(format: OutputFormat | undefined, data: T, render: (data: T) => string): void {
  print(format === 'json' ? json(data) : render(data));
}

export function shortId(id: string): string {
  return id.slice(0, 12);
}
