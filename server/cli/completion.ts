/**
 * `fleet completion bash|zsh`: a shell completion script generated from the
 * CLI's own command table (commander's commands, options and arguments, as
 * `--help` shows them), so that it cannot drift from the commands. Node
 * names are completed at completion time by `fleet nodes --names`, and node
 * groups (a word starting with `@`) by `fleet nodeset -L`, both run with the
 * global options (--url, --token-file, ...) of the line being completed.
 */
import type { Command } from 'commander';
import { Exit, FleetError } from '../../common/errors.js';
import type { CliIo } from './io.js';

export const COMPLETION_SHELLS = ['bash', 'zsh'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** What a positional argument completes to. */
export type ArgKind = 'nodeset' | 'node' | 'file' | 'none';

export interface CompletionSpec {
  /** Command path from the program, e.g. ['bmc', 'info']; [] for the program itself. */
  path: string[];
  subcommands: string[];
  /** Every flag spelling, short and long, e.g. -n --limit. */
  flags: string[];
  /** The flags among them that take a value (the next word is not a subcommand or an argument). */
  valueFlags: string[];
  /** The values of flags that take one of a fixed set (commander choices), e.g. --format: table json. */
  choices: Record<string, string[]>;
  /** One per positional argument; the last repeats when variadic. */
  args: ArgKind[];
  variadic: boolean;
}

/** What an argument named so completes to: nodesets and node names from the server, files for files. */
export function argKind(name: string): ArgKind {
  if (name === 'nodeset') return 'nodeset';
  if (name === 'node') return 'node';
  if (/file|path|dir/.test(name)) return 'file';
  return 'none';
}

/** The completion table of a commander program: one spec per command, depth first, the program first. */
export function completionSpecs(program: Command): CompletionSpec[] {
  const help = program.createHelp();
  const out: CompletionSpec[] = [];
  const walk = (cmd: Command, path: string[]): void => {
    const subs = help.visibleCommands(cmd).filter((c) => c.name() !== 'help');
    const options = help.visibleOptions(cmd);
    const flags = options.flatMap((o) => [o.short, o.long].filter((f): f is string => Boolean(f)));
    const valueFlags = options.filter((o) => o.required || o.optional).flatMap((o) => [o.short, o.long].filter((f): f is string => Boolean(f)));
    const args = cmd.registeredArguments;
    const choices: Record<string, string[]> = {};
    for (const o of options) for (const f of [o.short, o.long]) if (f && o.argChoices) choices[f] = [...o.argChoices];
    out.push({
      path,
      subcommands: subs.flatMap((c) => [c.name(), ...c.aliases()]),
      flags,
      valueFlags,
      choices,
      args: args.map((a) => argKind(a.name())),
      variadic: args.length > 0 && args[args.length - 1]!.variadic,
    });
    for (const c of subs) walk(c, [...path, c.name()]);
  };
  walk(program, []);
  return out;
}

/** Words safe to put unquoted in the generated script (commander names and flags are). */
function words(list: readonly string[]): string {
  for (const w of list) if (!/^[A-Za-z0-9_.:@+=,-]+$/.test(w)) throw new FleetError('internal', `completion: '${w}' is not a plain word`);
  return list.join(' ');
}

/** The bash completion function `_fleet` and its helpers (bash syntax; zsh runs it in ksh emulation). */
function completionFunctions(program: Command): string {
  const specs = completionSpecs(program);
  const root = specs[0]!;
  // -h/--help and -V/--version of the program are not global: each command has its own --help.
  const globalFlags = root.flags.filter((f) => !['-h', '--help', '-V', '--version'].includes(f));
  const cases = specs
    .map((s) =>
      [
        `    '${s.path.join(' ')}')`,
        `      subs='${words(s.subcommands)}'; flags='${words(s.flags)}'; vflags='${words(s.valueFlags)}'; args='${words(s.args)}'; variadic=${s.variadic ? 1 : 0}`,
        `      choices='${words(Object.entries(s.choices).map(([f, v]) => `${f}=${v.join(',')}`))}' ;;`,
      ].join('\n'),
    )
    .join('\n');
  return `# _fleet_spec PATH: the subcommands, flags, value-taking flags and argument kinds of one command.
_fleet_spec() {
  subs='' flags='' vflags='' args='' variadic=0 choices=''
  case "$1" in
${cases}
  esac
}

# The node names, from the server the line being completed talks to.
_fleet_names() {
  "\${_fleet_cmd[@]}" nodes --names 2>/dev/null
}

# The node groups (@name, @profile:NAME), from the same server.
_fleet_groups() {
  "\${_fleet_cmd[@]}" nodeset -L 2>/dev/null
}

_fleet() {
  # bash splits words at ':' and '&' (COMP_WORDBREAKS): glue @profile:NAME and @a&@b back into one word.
  local -a _fw=()
  local _fj _fglue=0 _fcw=0
  for (( _fj = 0; _fj < \${#COMP_WORDS[@]}; _fj++ )); do
    local _fx="\${COMP_WORDS[_fj]}"
    if (( \${#_fw[@]} > 0 )) && [[ $_fglue == 1 || $_fx == ":" || $_fx == "&" ]]; then
      _fw[\${#_fw[@]}-1]+="$_fx"
    else
      _fw+=("$_fx")
    fi
    [[ $_fx == ":" || $_fx == "&" ]] && _fglue=1 || _fglue=0
    (( _fj == COMP_CWORD )) && _fcw=$(( \${#_fw[@]} - 1 ))
  done
  # What bash replaces is its own last word: the glued part before it is stripped from the answers.
  local _fraw="\${COMP_WORDS[COMP_CWORD]}"
  local cur="\${_fw[_fcw]}" prev="" path="" subs flags vflags args variadic choices
  local _fstrip="\${cur%"$_fraw"}"
  # The program's options: accepted after a subcommand too; those with a value go to 'nodes --names'.
  local gflags='${words(root.valueFlags)}' gall='${words(globalFlags)}'
  local -a _fleet_cmd=("\${_fw[0]}")
  (( _fcw > 0 )) && prev="\${_fw[_fcw-1]}"
  COMPREPLY=()
  _fleet_spec ""
  local i w npos=0 skip=0
  for (( i = 1; i < _fcw; i++ )); do
    w="\${_fw[i]}"
    if (( skip )); then
      skip=0
      continue
    fi
    if [[ $w == -* ]]; then
      # A global option and its value go to the 'nodes --names' call too.
      if [[ " $gflags " == *" \${w%%=*} "* ]]; then
        _fleet_cmd+=("$w")
        if [[ $w != *=* ]] && (( i + 1 < _fcw )); then _fleet_cmd+=("\${_fw[i+1]}"); skip=1; fi
      elif [[ $w != *=* && " $vflags " == *" $w "* ]]; then
        skip=1
      fi
      continue
    fi
    if (( npos == 0 )) && [[ " $subs " == *" $w "* ]]; then
      path="\${path:+$path }$w"
      _fleet_spec "$path"
      continue
    fi
    npos=$(( npos + 1 ))
  done

  # The value of an option: its choices, files for what looks like a path, else nothing to offer.
  if [[ $prev == -* && " $vflags $gflags " == *" $prev "* ]]; then
    local c
    for c in $choices; do
      if [[ \${c%%=*} == "$prev" ]]; then
        COMPREPLY=( $(compgen -W "$(IFS=,; echo \${c#*=})" -- "$cur") )
        return 0
      fi
    done
    case "$prev" in
      *file*|*config*|*data*|--ca*|-c|-f) COMPREPLY=( $(compgen -f -- "$cur") ) ;;
    esac
    return 0
  fi
  if [[ $cur == -* ]]; then
    if [[ -n $path ]]; then
      COMPREPLY=( $(compgen -W "$flags $gall" -- "$cur") )
    else
      COMPREPLY=( $(compgen -W "$flags" -- "$cur") )
    fi
    return 0
  fi

  local -a kinds=( $args )
  local kind=none
  if (( npos < \${#kinds[@]} )); then
    kind="\${kinds[npos]}"
  elif (( variadic && \${#kinds[@]} > 0 )); then
    kind="\${kinds[\${#kinds[@]}-1]}"
  fi
  local offer=""
  (( npos == 0 )) && offer="$subs"
  case "$kind" in
    nodeset|node)
      # A nodeset is names and @groups joined by the operators , ! & ^: complete its last one.
      local pre="" word="$cur" cands
      if [[ $kind == nodeset && $cur == *[',!&^']* ]]; then word="\${cur##*[',!&^']}"; pre="\${cur%"$word"}"; fi
      if [[ $kind == nodeset && $word == @* ]]; then cands="$(_fleet_groups)"; else cands="$(_fleet_names)"; fi
      COMPREPLY=( $(compgen -W "$offer" -- "$cur") $(compgen -P "$pre" -W "$cands" -- "$word") )
      if [[ -n $_fstrip ]]; then COMPREPLY=( "\${COMPREPLY[@]#"$_fstrip"}" ); fi
      ;;
    file) COMPREPLY=( $(compgen -W "$offer" -- "$cur") $(compgen -f -- "$cur") ) ;;
    *) COMPREPLY=( $(compgen -W "$offer" -- "$cur") ) ;;
  esac
  return 0
}
`;
}

/** The bash completion script: the function and its registration for the program. */
export function bashScript(program: Command): string {
  const name = program.name();
  return `# bash completion for ${name} (generated by '${name} completion bash'; do not edit)
# Load it with: source <(${name} completion bash)   or save it as /etc/bash_completion.d/${name}

${completionFunctions(program)}
complete -F _fleet ${name}
`;
}

/**
 * The zsh completion script: the same function through zsh's bashcompinit
 * (its emulation of bash's complete and compgen), run in ksh emulation so
 * that arrays count from 0 and words split as in bash.
 */
export function zshScript(program: Command): string {
  const name = program.name();
  return `#compdef ${name}
# zsh completion for ${name} (generated by '${name} completion zsh'; do not edit)
# Load it with: source <(${name} completion zsh)   (in ~/.zshrc)

autoload -U +X compinit && { (( $+functions[compdef] )) || compinit; }
autoload -U +X bashcompinit && bashcompinit

${completionFunctions(program)}
_fleet_zsh() {
  emulate -L ksh
  _fleet "$@"
}

complete -F _fleet_zsh ${name}
`;
}

export function completionScript(shell: string, program: Command): string {
  if (shell === 'bash') return bashScript(program);
  if (shell === 'zsh') return zshScript(program);
  throw new FleetError('usage.invalid', `no completion for shell '${shell}' (one of: ${COMPLETION_SHELLS.join(', ')})`);
}

/** `fleet completion SHELL`: prints the script. */
export function cmdCompletion(shell: string, program: Command, io: CliIo): number {
  io.stdout(completionScript(shell, program));
  return Exit.OK;
}
