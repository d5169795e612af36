/** The `stratoswarm` command tree: global flags, every verb, commander's error handling. */
import { Command, CommanderError, Option } from 'commander';
import { EXIT_RUNTIME, oneLine } from './errors.js';
import { VERSION } from './version-info.js';
import { VERBS } from './verbs/index.js';

const commanderLine = (s: string) => oneLine(s.replace(/^error: /, ''));

export function buildProgram(): Command {
  const program = new Command('stratoswarm')
    .description('Run and manage StratoSwarm agent containers (docker-like).')
    .version(VERSION, '--version', 'print the version')
    .option('--state-root <dir>', 'per-boot state: pids, exit codes, the spawner socket (STRATOSWARM_STATE_ROOT)')
    .option('--image-root <dir>', 'images, writable layers and logs (STRATOSWARM_IMAGE_ROOT)')
    .addOption(new Option('--log-level <level>', 'library log level, JSON on stderr (STRATOSWARM_LOG_LEVEL; default error)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .enablePositionalOptions()
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      // commander's own messages ("error: unknown option '--x'") become one stratoswarm line.
      outputError: (str, write) => write(`stratoswarm: ${commanderLine(str)}\n`),
    });
  for (const register of VERBS) register(program);
  for (const verb of program.commands) {
    verb.configureOutput({ outputError: (str, write) => write(`stratoswarm: ${verb.name()}: ${commanderLine(str)}\n`) });
  }
  return program;
}

/** Parses and runs; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : EXIT_RUNTIME;
    throw e;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
