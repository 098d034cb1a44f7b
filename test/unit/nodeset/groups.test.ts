/**
 * Node groups in nodeset expressions: @name, @source:name, group name
 * patterns, nested references, set operators, cycles and unknown names.
 */
import { describe, expect, it } from 'vitest';
import { Exit, FleetError } from '../../../common/errors.js';
import { groupResolver } from '../../../server/config/groups.js';
import { NodeSet, runNodesetCommand } from '../../../server/nodeset/index.js';

const groups = groupResolver(
  {
    compute: 'valkyrie[01-08]',
    gpu: '@compute&valkyrie[05-12]',
    login: 'login[1-2]',
    all: '@compute,@login,@profile:storage',
    rack1: 'valkyrie[01-04]',
    rack2: 'valkyrie[05-08]',
    empty: '',
  },
  new Map([
    ['storage', ['nas1', 'nas2']],
    ['compute', ['valkyrie01', 'valkyrie02']],
    ['spare', []],
  ]),
);

const expand = (expr: string): string => NodeSet.parse(expr, { groups }).fold();

function errorOf(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected a FleetError');
}

describe('@group in nodesets', () => {
  it('expands a group, a nested group and a profile', () => {
    expect(expand('@compute')).toBe('valkyrie[01-08]');
    expect(expand('@gpu')).toBe('valkyrie[05-08]');
    expect(expand('@profile:storage')).toBe('nas[1-2]');
    expect(expand('@all')).toBe('login[1-2],nas[1-2],valkyrie[01-08]');
    expect(expand('@local:login')).toBe('login[1-2]');
    expect(NodeSet.parse('@profile:spare,n1', { groups }).fold()).toBe('n1');
    expect(NodeSet.parse('@empty,n1', { groups }).fold()).toBe('n1');
  });

  it('takes the set operators on either side, left to right', () => {
    expect(expand('@compute!valkyrie01')).toBe('valkyrie[02-08]');
    expect(expand('@compute&@rack2')).toBe('valkyrie[05-08]');
    expect(expand('@compute^valkyrie[07-09]')).toBe('valkyrie[01-06,09]');
    expect(expand('valkyrie[01-10]!@gpu')).toBe('valkyrie[01-04,09-10]');
    expect(expand('@rack1,@rack2!@profile:compute')).toBe('valkyrie[03-08]');
    expect(expand(' @login , n1 ')).toBe('login[1-2],n1');
  });

  it('expands a pattern of group names', () => {
    expect(expand('@rack[1-2]')).toBe('valkyrie[01-08]');
    expect(expand('@rack[1,2]!valkyrie[02-07]')).toBe('valkyrie[01,08]');
  });

  it('runs through the nodeset command: -e, -f, -c, -l, -ll, -L, -l with nodes', () => {
    expect(runNodesetCommand(['-e', '@login'], { groups })).toBe('login1 login2');
    expect(runNodesetCommand(['-c', '@compute', '-x', '@rack1'], { groups })).toBe('4');
    expect(runNodesetCommand(['-l'], { groups }).split('\n')).toEqual(['@all', '@compute', '@empty', '@gpu', '@login', '@rack1', '@rack2']);
    expect(runNodesetCommand(['-ll'], { groups }).split('\n')).toContain('@gpu valkyrie[05-08]');
    expect(runNodesetCommand(['-lll'], { groups }).split('\n')).toContain('@gpu valkyrie[05-08] 4');
    expect(runNodesetCommand(['-l', 'login1'], { groups }).split('\n')).toEqual(['@all', '@login']);
    expect(runNodesetCommand(['-l', '-s', 'profile'], { groups }).split('\n')).toEqual(['@profile:compute', '@profile:spare', '@profile:storage']);
    expect(runNodesetCommand(['-L'], { groups }).split('\n')).toContain('@profile:storage');
    expect(runNodesetCommand(['--groupsources'], { groups })).toBe('(default)\nprofile');
  });

  it('refuses an unknown group with a did-you-mean (nodeset.invalid, the usage exit code)', () => {
    const e = errorOf(() => expand('@compte'));
    expect(e.code).toBe('nodeset.invalid');
    expect(e.message).toContain('unknown node group @compte (did you mean @compute?)');
    expect(e.exit).toBe(Exit.USAGE);
    const p = errorOf(() => expand('@profile:storag'));
    expect(p.message).toContain('unknown node group @profile:storag (did you mean @profile:storage?)');
    expect(errorOf(() => expand('@nosuch:x')).message).toContain('unknown node group @nosuch:x');
    expect(errorOf(() => expand('@rack[1-3]')).message).toContain('unknown node group @rack3');
  });

  it('refuses a cycle, naming the path', () => {
    const cyclic = groupResolver({ a: 'n1,@b', b: '@c', c: 'n2,@a', d: '@d' }, new Map());
    const e = errorOf(() => NodeSet.parse('@a', { groups: cyclic }));
    expect(e.code).toBe('nodeset.invalid');
    expect(e.message).toBe('group @a refers to itself (@a -> @b -> @c -> @a)');
    expect(errorOf(() => NodeSet.parse('n1,@d', { groups: cyclic })).message).toContain('@d -> @d');
  });

  it('a group referenced twice is no cycle', () => {
    const diamond = groupResolver({ top: '@l,@r', l: '@base!n1', r: '@base&n[1-2]', base: 'n[1-4]' }, new Map());
    expect(NodeSet.parse('@top', { groups: diamond }).fold()).toBe('n[1-4]');
  });

  it('refuses bad group syntax and keeps the size limit', () => {
    expect(errorOf(() => expand('@')).code).toBe('nodeset.invalid');
    expect(errorOf(() => expand('@compute,')).message).toContain("missing nodeset operand with ','");
    expect(errorOf(() => expand('@com pute')).code).toBe('nodeset.invalid');
    const big = groupResolver({ big: 'n[1-100]' }, new Map());
    expect(errorOf(() => NodeSet.parse('@big', { groups: big, limit: 10 })).code).toBe('nodeset.too_large');
  });

  it('without a resolver, @group is refused as before', () => {
    expect(errorOf(() => NodeSet.parse('@compute')).message).toContain('node groups are not supported');
    expect(errorOf(() => runNodesetCommand(['-l'])).code).toBe('usage.invalid');
  });
});
