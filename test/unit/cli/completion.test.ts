/** `fleet completion bash|zsh` and `fleet nodes --names`, which the scripts call for node names. */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NodesResponse } from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import { bashScript, completionScript, completionSpecs, zshScript } from '../../../server/cli/completion.js';
import { buildProgram, main } from '../../../server/cli/main.js';
import { captureIo, recordingServer, type RecordingServer } from './recording-server.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fleet-completion-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A small program shaped like fleet's: globals, a nested command, choices, a variadic argument. */
function toyProgram(): Command {
  const p = new Command('fleet').version('1').option('--url <url>', 'server').option('--debug', 'stacks');
  p.command('frobnicate').argument('<how>', 'how').argument('<nodeset>', 'nodes').option('--hard', 'hard').option('-n, --count <n>', 'count');
  const bmc = p.command('bmc');
  bmc.command('info').argument('<nodeset>', 'nodes').addOption(new Option('--format <f>', 'format').choices(['table', 'json']));
  p.command('tool').argument('[args...]', 'args');
  p.command('load').argument('<file>', 'a file');
  return p;
}

describe('completionSpecs', () => {
  it('reads commands, flags, value flags, choices and argument kinds from the commander program', () => {
    const specs = completionSpecs(toyProgram());
    expect(specs.map((s) => s.path.join(' '))).toEqual(['', 'frobnicate', 'bmc', 'bmc info', 'tool', 'load']);
    expect(specs[0]).toMatchObject({ subcommands: ['frobnicate', 'bmc', 'tool', 'load'], flags: ['-V', '--version', '--url', '--debug', '-h', '--help'], valueFlags: ['--url'] });
    expect(specs[1]).toMatchObject({ flags: ['--hard', '-n', '--count', '-h', '--help'], valueFlags: ['-n', '--count'], args: ['none', 'nodeset'], variadic: false });
    expect(specs[3]).toMatchObject({ valueFlags: ['--format'], choices: { '--format': ['table', 'json'] }, args: ['nodeset'] });
    expect(specs[4]).toMatchObject({ args: ['none'], variadic: true });
    expect(specs[5]).toMatchObject({ args: ['file'] });
  });
});

describe('completionScript', () => {
  it('refuses an unknown shell with usage.invalid', () => {
    expect(() => completionScript('fish', toyProgram())).toThrow(FleetError);
    expect(() => completionScript('fish', toyProgram())).toThrow("no completion for shell 'fish' (one of: bash, zsh)");
  });

  it('fleet completion fish: exit 2 and the error on stderr; bash: the script on stdout', async () => {
    const bad = captureIo();
    expect(await main(['node', 'fleet', 'completion', 'fish'], bad.io)).toBe(2);
    expect(bad.err()).toBe("fleet: no completion for shell 'fish' (one of: bash, zsh)\n");
    expect(bad.out()).toBe('');
    const good = captureIo();
    expect(await main(['node', 'fleet', 'completion', 'bash'], good.io)).toBe(0);
    expect(good.out()).toContain('complete -F _fleet fleet\n');
  });
});

/** Runs the script's _fleet in bash for a command line (the last word is the one completed) and returns COMPREPLY. */
function complete(script: string, ...words: string[]): string[] {
  const file = path.join(dir, 'fleet.bash');
  writeFileSync(file, script);
  const out = execFileSync('bash', ['--norc', '--noprofile', '-c', 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _fleet; printf "%s\\n" "${COMPREPLY[@]}"', '_', file, ...words], {
    encoding: 'utf8',
    cwd: dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  return out.split('\n').filter(Boolean);
}

describe('the bash script', () => {
  const real = bashScript(buildProgram(captureIo().io, () => {}));
  let fake: string;
  let calls: string;
  beforeAll(() => {
    // A stand-in fleet that answers `nodes --names` and records how it was called.
    fake = path.join(dir, 'fake-fleet');
    calls = path.join(dir, 'calls');
    writeFileSync(fake, `#!/bin/sh\necho "$*" >> '${calls}'\nprintf 'valkyrie01\\nvalkyrie02\\nthor\\n'\n`);
    chmodSync(fake, 0o755);
  });
  afterEach(() => rmSync(calls, { force: true }));

  it('passes bash -n', () => {
    const file = path.join(dir, 'syntax.bash');
    writeFileSync(file, real);
    expect(() => execFileSync('bash', ['-n', file], { stdio: 'pipe' })).not.toThrow();
  });

  it('completes a partial subcommand, a nested one and flags, from the program', () => {
    expect(complete(real, 'fleet', 'rei')).toEqual(['reinstall']);
    expect(complete(real, 'fleet', 'bmc', 'i')).toEqual(['info']);
    expect(complete(real, 'fleet', 'events', '--fo')).toEqual(['--follow']);
    expect(complete(real, 'fleet', 'power', 'on', 'thor', '--deb')).toEqual(['--debug']);
    expect(complete(real, 'fleet', 'inventory', '--format', 'c')).toEqual(['csv']);
    expect(complete(real, 'fleet', 'compl')).toEqual(['completion']);
  });

  it('completes node names by calling `fleet nodes --names` with the line\'s global options', () => {
    expect(complete(real, fake, '--url', 'http://mgmt:8080', 'power', 'on', 'valk')).toEqual(['valkyrie01', 'valkyrie02']);
    expect(readFileSync(calls, 'utf8')).toBe('--url http://mgmt:8080 nodes --names\n');
    // The value of -n is skipped: the next word is the nodeset.
    expect(complete(real, fake, 'events', '-n', '5', 'th')).toEqual(['thor']);
    // The last name of a comma-separated nodeset.
    expect(complete(real, fake, 'reinstall', 'valkyrie01,th')).toEqual(['valkyrie01,thor']);
    // Not where no node goes: the power operation.
    rmSync(calls, { force: true });
    expect(complete(real, fake, 'power', 'valk')).toEqual([]);
    expect(() => readFileSync(calls)).toThrow();
  });

  it('completes @groups from `fleet nodeset -L`, after the nodeset operators and across the words bash splits at : and &', () => {
    const groupsFake = path.join(dir, 'fake-fleet-groups');
    writeFileSync(groupsFake, `#!/bin/sh\necho "$*" >> '${calls}'\ncase "$*" in *nodeset*) printf '@compute\\n@gpu\\n@profile:compute\\n@profile:login\\n' ;; *) printf 'valkyrie01\\nthor\\n' ;; esac\n`);
    chmodSync(groupsFake, 0o755);
    expect(complete(real, groupsFake, '--url', 'http://mgmt:8080', 'power', 'on', '@')).toEqual(['@compute', '@gpu', '@profile:compute', '@profile:login']);
    expect(readFileSync(calls, 'utf8')).toBe('--url http://mgmt:8080 nodeset -L\n');
    expect(complete(real, groupsFake, 'reinstall', '@pro')).toEqual(['@profile:compute', '@profile:login']);
    // bash's words for `@profile:l`: '@profile' ':' 'l'; the answer replaces the last one.
    expect(complete(real, groupsFake, 'nodes', '@profile', ':', 'l')).toEqual(['login']);
    expect(complete(real, groupsFake, 'nodes', '@profile', ':')).toEqual([':compute', ':login']);
    expect(complete(real, groupsFake, 'nodes', '@gpu!th')).toEqual(['@gpu!thor']);
    expect(complete(real, groupsFake, 'nodes', 'thor,@g')).toEqual(['thor,@gpu']);
    expect(complete(real, groupsFake, 'nodes', '@gpu', '&', '@c')).toEqual(['@compute']);
    // The glued words count as one argument: the next word is an option.
    expect(complete(real, groupsFake, 'nodes', '@profile', ':', 'login', '--j')).toEqual(['--json']);
  });

  it('is generated from the command table: a new command completes without touching the script', () => {
    const toy = bashScript(toyProgram());
    expect(complete(toy, 'fleet', 'fro')).toEqual(['frobnicate']);
    expect(complete(toy, fake, 'frobnicate', 'gently', 'th')).toEqual(['thor']);
    expect(complete(toy, 'fleet', 'frobnicate', '--c')).toEqual(['--count']);
    expect(complete(toy, 'fleet', 'bmc', 'info', '--format', '')).toEqual(['table', 'json']);
  });
});

describe('the zsh script', () => {
  it('runs the same completion function through bashcompinit, in ksh emulation', () => {
    const program = buildProgram(captureIo().io, () => {});
    const zsh = zshScript(program);
    const bash = bashScript(program);
    expect(zsh.startsWith('#compdef fleet\n')).toBe(true);
    expect(zsh).toContain('autoload -U +X bashcompinit && bashcompinit');
    expect(zsh).toContain('_fleet_zsh() {\n  emulate -L ksh\n  _fleet "$@"\n}');
    expect(zsh).toContain('complete -F _fleet_zsh fleet');
    const fn = (s: string): string => s.slice(s.indexOf('_fleet_spec() {'), s.indexOf('\n}\n', s.indexOf('_fleet() {')));
    expect(fn(zsh)).toBe(fn(bash));
  });
});

describe('fleet nodes --names', () => {
  let srv: RecordingServer;
  beforeAll(async () => {
    srv = await recordingServer((): NodesResponse => ({
      nodes: ['valkyrie01', 'thor'].map((name) => ({ name, profile: 'p', ip: null, macs: [], bmc: null, pet: false, origin: 'config', state: 'ready', stateSince: 't', armed: false, lastSeen: null, createdAt: 't', updatedAt: 't' })),
      missing: [],
      missingFolded: '',
    }));
  });
  afterAll(() => srv.close());

  it('prints only the names, one per line', async () => {
    const c = captureIo();
    expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', 'nodes', '--names'], c.io)).toBe(0);
    expect(c.out()).toBe('valkyrie01\nthor\n');
    expect(c.err()).toBe('');
  });

  it('refuses --names with --json', async () => {
    const c = captureIo();
    expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', 'nodes', '--names', '--json'], c.io)).toBe(2);
    expect(c.err()).toBe('fleet: --json and --names exclude each other\n');
  });
});
