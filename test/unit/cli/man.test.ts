/**
 * The man pages (man/fleet.1, man/fleet-agent.1) are the ones generated from
 * the commands' help text, name every command, and render with groff and
 * man without a warning.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { commandPaths, manPage, roffEscape } from '../../../server/cli/man.js';
import { agentManPages } from '../../../agent/man-page.js';
import { manPages as fleetManPages } from '../../../server/cli/man-pages.js';

const manPages = (): Record<string, string> => ({ ...fleetManPages(), ...agentManPages() });
import { buildProgram } from '../../../server/cli/main.js';
import { buildProgram as buildAgentProgram } from '../../../agent/main.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const committed = (file: string): string => readFileSync(`${ROOT}man/${file}`, 'utf8');
const silent = { stdout: () => {}, stderr: () => {} };

/** The commands of a program whose subsection is not in the page. */
function missingCommands(program: Command, page: string): string[] {
  const headings = new Set(page.split('\n').filter((l) => l.startsWith('.SS "')).map((l) => l.slice(5).replace(/\\-/g, '-').split(' [')[0]!.split(' <')[0]!));
  return commandPaths(program)
    .map(({ cmd, path }) => [program.name(), ...path.slice(0, -1), [cmd.name(), ...cmd.aliases()].join('|')].join(' '))
    .filter((h) => !headings.has(h));
}

function has(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

describe('man pages', () => {
  it('man/ holds the pages generated now (run npm run man after changing a command)', () => {
    const pages = manPages();
    expect(Object.keys(pages).sort()).toEqual(['fleet-agent.1', 'fleet.1']);
    for (const [file, text] of Object.entries(pages)) expect(committed(file), `man/${file} is stale: run npm run man`).toBe(text);
  });

  it('name every command of fleet and fleet-agent', () => {
    const fleet = buildProgram({ ...silent, env: {}, isTTY: false, home: '/nonexistent', cwd: '/' }, () => {});
    const agent = buildAgentProgram(silent, () => {});
    expect(commandPaths(fleet).length).toBeGreaterThan(40);
    expect(missingCommands(fleet, committed('fleet.1'))).toEqual([]);
    expect(missingCommands(agent, committed('fleet-agent.1'))).toEqual([]);
    expect(committed('fleet.1')).toContain('.SS "fleet nodeset [args...]"');
    expect(committed('fleet.1')).toContain('@profile:NAME');
  });

  it('the check finds a command the page lacks', () => {
    const small = new Command('toy').description('toy');
    small.command('one').description('first');
    const big = new Command('toy').description('toy');
    big.command('one').description('first');
    big.command('two').description('second').command('deep').description('nested');
    expect(missingCommands(big, manPage(small, { version: '1' }))).toEqual(['toy two', 'toy two deep']);
    expect(missingCommands(big, manPage(big, { version: '1' }))).toEqual([]);
  });

  it('escapes roff: backslashes, hyphens, a leading dot or quote', () => {
    expect(roffEscape('a\\b -x')).toBe('a\\eb \\-x');
    expect(roffEscape('.TH x\n\'q')).toBe('\\&.TH x\n\\&\'q');
  });

  const groff = has('groff');
  it.skipIf(!groff && process.env.CI !== 'true')('render with groff -man -Tutf8 and man -l without a warning', () => {
    expect(groff, 'groff is not installed (Debian: groff-base, in .ci/deps.sh)').toBe(true);
    for (const file of ['fleet.1', 'fleet-agent.1']) {
      const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', `${ROOT}man/${file}`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      if (has('man')) {
        const m = spawnSync('man', ['--warnings', '-l', '-P', 'cat', `${ROOT}man/${file}`], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80' } });
        expect(m.status, m.stderr).toBe(0);
        expect(m.stderr).toBe('');
        expect(m.stdout).toMatch(file === 'fleet.1' ? /fleet reinstall \[options\] <nodeset>/ : /fleet-agent enroll/);
      }
    }
    // A broken page does warn: the check can fail.
    const bad = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: '.TH X 1\n.SH NAME\nx \\- y\n.BOGUS\n\\*[nosuch]\n', encoding: 'utf8' });
    expect(bad.stderr).not.toBe('');
    expect(execFileSync('groff', ['-v'], { encoding: 'utf8' })).toMatch(/groff/i);
  });
});
