/** `stratoswarm version`: this CLI's and library's version and the platform. */
import type { Command } from 'commander';
import { release } from 'node:os';
import { action } from '../context.js';
import { keyValues, output, withFormat, type OutputFormat } from '../format.js';
import { VERSION } from '../version-info.js';

export function registerVersion(program: Command): void {
  withFormat(program.command('version').description('print version information')).action(
    action(async (_ctx, flags: { format?: OutputFormat }) => {
      const v = { version: VERSION, node: process.versions.node, kernel: release(), os: process.platform, arch: process.arch };
      output(flags.format, v, (x) =>
        keyValues([
          ['Version', x.version],
          ['Node.js', x.node],
          ['Kernel', x.kernel],
          ['OS/Arch', `${x.os}/${x.arch}`],
        ]),
      );
    }),
  );
}
