/** `stratoswarm oci …`: the OCI runtime command line (the same as `stratoswarm-oci …`). */
import type { Command } from 'commander';
import { run } from '../../oci/cli.js';

export function registerOci(program: Command): void {
  program
    .command('oci')
    .description('the OCI runtime interface engines call (create, start, state, kill, delete, exec, ...); `stratoswarm oci help` lists them')
    .argument('[args...]', 'OCI runtime arguments: [--root DIR] [--log FILE] [--log-format json] VERB ...')
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (args: string[]) => {
      process.exitCode = await run(args, {
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
        stdio: [0, 1, 2],
        env: process.env,
        cwd: process.cwd(),
      });
    });
}
