/** `stratoswarm completion bash|zsh|fish`: print a shell completion script. */
import { Argument, type Command } from 'commander';
import { bashCompletion, fishCompletion, zshCompletion } from '../completion.js';
import { action } from '../context.js';

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .description('print a shell completion script (bash: eval "$(stratoswarm completion bash)")')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh', 'fish']))
    .action(
      action(async (_ctx, shell: 'bash' | 'zsh' | 'fish') => {
        const script = shell === 'bash' ? bashCompletion(program) : shell === 'zsh' ? zshCompletion(program) : fishCompletion(program);
        process.stdout.write(script);
      }),
    );
}
