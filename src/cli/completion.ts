/**
 * Shell completion scripts, generated from the command tree itself (verbs, their flags, the
 * choices of flags that have them), so they cannot drift from what the CLI accepts.
 * Container names complete from `stratoswarm ps -a --format json`.
 */
import type { Command, Option } from 'commander';

interface VerbSpec {
  name: string;
  description: string;
  flags: { long?: string; short?: string; takesValue: boolean; choices?: readonly string[]; description: string }[];
  /** Whether its first argument is a container. */
  container: boolean;
}

export function verbSpecs(program: Command): VerbSpec[] {
  return program.commands.map((c) => ({
    name: c.name(),
    description: c.description(),
    flags: [...c.options, ...helpOf(c)].map((o: Option) => ({
      long: o.long,
      short: o.short,
      takesValue: o.required || o.optional,
      choices: o.argChoices,
      description: o.description,
    })),
    container: (c.registeredArguments[0]?.name() ?? '').startsWith('container'),
  }));
}

function helpOf(c: Command): Option[] {
  const h = (c as unknown as { _getHelpOption?: () => Option | null })._getHelpOption?.();
  return h ? [h] : [];
}

const globalFlags = (program: Command) => program.options.map((o) => o.long).filter((x): x is string => !!x);
const q = (s: string) => s.replace(/'/g, `'\\''`);

export function bashCompletion(program: Command): string {
  const verbs = verbSpecs(program);
  const cases = verbs
    .map((v) => {
      const flags = v.flags.flatMap((f) => [f.long, f.short]).filter(Boolean).join(' ');
      const choices = v.flags
        .filter((f) => f.choices && f.long)
        .map((f) => `        ${f.long}) COMPREPLY=($(compgen -W '${f.choices!.join(' ')}' -- "$cur")); return;;`)
        .join('\n');
      return `    ${v.name})\n      case "$prev" in\n${choices}\n      esac\n      if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W '${flags}' -- "$cur"))${v.container ? `; else COMPREPLY=($(compgen -W "$(__stratoswarm_containers)" -- "$cur"))` : ''}; fi;;`;
    })
    .join('\n');
  return `# bash completion for stratoswarm: eval "$(stratoswarm completion bash)"
__stratoswarm_containers() {
  stratoswarm ps -a --format json 2>/dev/null | sed -n 's/^    "name": "\\(.*\\)",$/\\1/p'
}
_stratoswarm() {
  local cur prev verb i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
      --state-root|--image-root|--log-level) ((i++));;
      -*) ;;
      *) verb="\${COMP_WORDS[i]}"; break;;
    esac
  done
  if [[ -z "$verb" ]]; then
    COMPREPLY=($(compgen -W '${verbs.map((v) => v.name).join(' ')} ${globalFlags(program).join(' ')}' -- "$cur"))
    return
  fi
  case "$verb" in
${cases}
  esac
}
complete -o default -F _stratoswarm stratoswarm
`;
}

export function zshCompletion(program: Command): string {
  const verbs = verbSpecs(program);
  const descr = verbs.map((v) => `    '${v.name}:${q(v.description).replace(/:/g, '\\:')}'`).join('\n');
  const cases = verbs
    .map((v) => {
      const specs = v.flags
        .filter((f) => f.long)
        .map((f) => {
          const names = f.short ? `{${f.short},${f.long}}` : f.long!;
          const desc = q(f.description).replace(/[[\]:]/g, ' ');
          const value = f.takesValue ? (f.choices ? `:value:(${f.choices.join(' ')})` : ':value:') : '';
          return `'${f.short ? '(' + f.short + ' ' + f.long + ')' : ''}'${names}'[${desc}]${value}'`;
        })
        .join(' \\\n        ');
      const args = v.container ? ` \\\n        '*:container:__stratoswarm_containers'` : ` \\\n        '*::arg:_default'`;
      return `    ${v.name})\n      _arguments ${specs}${args};;`;
    })
    .join('\n');
  return `#compdef stratoswarm
# zsh completion for stratoswarm: stratoswarm completion zsh > "\${fpath[1]}/_stratoswarm"
__stratoswarm_containers() {
  local -a names
  names=(\${(f)"$(stratoswarm ps -a --format json 2>/dev/null | sed -n 's/^    "name": "\\(.*\\)",$/\\1/p')"})
  compadd -a names
}
_stratoswarm() {
  local -a verbs
  verbs=(
${descr}
  )
  _arguments -C '--state-root[state root]:dir:_files -/' '--image-root[image root]:dir:_files -/' '--log-level[log level]:level:(fatal error warn info debug trace silent)' '1:verb:->verb' '*::arg:->args'
  case $state in
    verb) _describe verb verbs;;
    args)
      case $words[1] in
${cases}
      esac;;
  esac
}
compdef _stratoswarm stratoswarm
`;
}

export function fishCompletion(program: Command): string {
  const verbs = verbSpecs(program);
  const lines = [
    '# fish completion for stratoswarm: stratoswarm completion fish > ~/.config/fish/completions/stratoswarm.fish',
    'function __stratoswarm_containers',
    `    stratoswarm ps -a --format json 2>/dev/null | string match -r -g '^    "name": "(.*)",$'`,
    'end',
    'complete -c stratoswarm -f',
    ...program.options.filter((o) => o.long).map((o) => `complete -c stratoswarm -n __fish_use_subcommand -l ${o.long!.slice(2)} -r -d '${q(o.description)}'`),
  ];
  for (const v of verbs) {
    lines.push(`complete -c stratoswarm -n __fish_use_subcommand -a ${v.name} -d '${q(v.description)}'`);
    const on = `-n '__fish_seen_subcommand_from ${v.name}'`;
    for (const f of v.flags) {
      const names = [f.long ? `-l ${f.long.slice(2)}` : '', f.short ? `-s ${f.short.slice(1)}` : ''].filter(Boolean).join(' ');
      const value = f.takesValue ? (f.choices ? ` -x -a '${f.choices.join(' ')}'` : ' -r') : '';
      lines.push(`complete -c stratoswarm ${on} ${names}${value} -d '${q(f.description)}'`);
    }
    if (v.container) lines.push(`complete -c stratoswarm ${on} -a '(__stratoswarm_containers)'`);
  }
  return `${lines.join('\n')}\n`;
}
