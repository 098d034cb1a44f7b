/** `fleet nodeset`: when it asks the server for groups, and how it reads their list. */
import { describe, expect, it } from 'vitest';
import { needsGroups, resolverOf } from '../../../server/cli/commands/nodeset.js';
import { runNodesetCommand } from '../../../server/nodeset/index.js';

describe('fleet nodeset and the server groups', () => {
  it('asks only for @group and the group options', () => {
    for (const a of [['-e', '@gpu'], ['-f', 'n1', '-x', '@a'], ['-l'], ['-ll'], ['-L'], ['-cl'], ['--list'], ['--list-all'], ['--groupsources'], ['-l', '-s', 'profile'], ['--groupsource=profile', '-l']]) {
      expect(needsGroups(a), a.join(' ')).toBe(true);
    }
    // -S takes a value: 'l' there is the separator; after a nodeset no option is read.
    for (const a of [['-e', 'n[1-2]'], ['-f', 'n1', 'n2'], ['-eSl', 'n1'], ['-e', '-S', 'l', 'n1'], ['-c', '--', '-l'], ['-e', 'n1', '-l'], ['--fold', 'n1']]) {
      expect(needsGroups(a), a.join(' ')).toBe(false);
    }
  });

  it('resolves fleet groups by their definition and profiles by their nodes', () => {
    const groups = resolverOf({
      groups: [
        { name: 'compute', source: 'fleet', definition: 'n[1-4]', nodes: 'n[1-4]', count: 4 },
        { name: 'gpu', source: 'fleet', definition: '@compute&n[3-9]', nodes: 'n[3-4]', count: 2 },
        { name: 'profile:login', source: 'profile', definition: 'login[1-2]', nodes: 'login[1-2]', count: 2 },
      ],
    });
    expect(runNodesetCommand(['-f', '@gpu,@profile:login'], { groups })).toBe('login[1-2],n[3-4]');
    expect(runNodesetCommand(['-f', '@local:compute!n1'], { groups })).toBe('n[2-4]');
    expect(runNodesetCommand(['-L'], { groups })).toBe('@compute\n@gpu\n@profile:login');
    expect(() => runNodesetCommand(['-e', '@gp'], { groups })).toThrow('unknown node group @gp (did you mean @gpu?)');
  });
});
