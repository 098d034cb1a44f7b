import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { fillTemplate, placeholders } from '../../../server/netboot/render/index.js';

function thrown(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected a FleetError');
}

describe('fillTemplate', () => {
  it('replaces every placeholder, in one pass', () => {
    expect(fillTemplate('t', 'a {{x}} b {{y_1}} {{x}}', { x: '1', y_1: '{x}' })).toBe('a 1 b {x} 1');
    // A value that looks like a placeholder of another value is not re-scanned (and is refused anyway).
    expect(thrown(() => fillTemplate('t', '{{a}} {{b}}', { a: '{{b}}', b: '2' })).message).toBe("template t: value of {{a}} contains '{{' or '}}'");
  });

  it('keeps iPXE ${...} settings as they are', () => {
    expect(fillTemplate('t', 'chain {{server}}/boot/${mac:hexhyp}.ipxe', { server: 'http://s' })).toBe('chain http://s/boot/${mac:hexhyp}.ipxe');
  });

  it('an unknown placeholder is an error naming it and its line', () => {
    const e = thrown(() => fillTemplate('install.ipxe', '#!ipxe\necho {{node}}\nkernel {{kernal_url}}\n', { node: 'n1' }));
    expect(e.code).toBe('internal');
    expect(e.message).toBe('template install.ipxe: unknown placeholder {{kernal_url}} on line 3; known: node');
  });

  it('a value the template never uses is an error', () => {
    expect(thrown(() => fillTemplate('t', '{{a}}', { a: '1', b: '2', c: '3' })).message).toBe('template t: values never used by the template: b, c');
  });

  it.each([
    ['{{ node }}', 'near "{{ node }}" on line 1'],
    ['{{Node}}', 'near "{{Node}}" on line 1'],
    ['x\n{{node', 'near "{{node" on line 2'],
    ['node}}', 'near "}}" on line 1'],
    ['{{{node}}}', 'near "{{{node}}}" on line 1'],
  ])('a leftover or malformed placeholder %j is an error', (text, where) => {
    const e = thrown(() => fillTemplate('t', text, { node: 'n' }));
    expect(e.message).toContain(`malformed placeholder ${where}`);
  });

  it('refuses control characters in values but allows newlines (lists)', () => {
    expect(fillTemplate('t', '{{a}}', { a: 'x\ny' })).toBe('x\ny');
    expect(thrown(() => fillTemplate('t', '{{a}}', { a: 'x\ry' })).message).toContain('control character');
    expect(thrown(() => fillTemplate('t', '{{a}}', { a: 'x\u0000' })).message).toContain('control character');
  });

  it('lists placeholders', () => {
    expect(placeholders('{{a}} {{b}} {{a}} ${c}')).toEqual(['a', 'b']);
  });
});

describe('the shipped templates', () => {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const files = [
    ...readdirSync(`${root}ipxe`).map((f) => `ipxe/${f}`),
    ...readdirSync(`${root}kickstart`).map((f) => `kickstart/${f}`),
  ];

  it('exist', () => {
    expect(files.sort()).toEqual([
      'ipxe/boot.ipxe',
      'ipxe/discover.ipxe',
      'ipxe/inspect.ipxe',
      'ipxe/install-image.ipxe',
      'ipxe/install-stateless.ipxe',
      'ipxe/install.ipxe',
      'ipxe/localboot.ipxe',
      'ipxe/not-implemented.ipxe',
      'kickstart/base.ks',
    ]);
  });

  it.each(files)('%s has only well-formed placeholders', (f) => {
    const text = readFileSync(`${root}${f}`, 'utf8');
    const values = Object.fromEntries(placeholders(text).map((p) => [p, 'X']));
    expect(() => fillTemplate(f, text, values)).not.toThrow();
    expect(text.endsWith('\n')).toBe(true);
  });
});

describe('loadTemplate', () => {
  it('keeps a template read, and reads it again once the file changes (an edit is used at once)', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, utimesSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { loadTemplate } = await import('../../../server/netboot/render/index.js');
    const root = mkdtempSync(join(tmpdir(), 'fleet-templates-'));
    try {
      mkdirSync(join(root, 'ipxe'));
      mkdirSync(join(root, 'kickstart'));
      const file = join(root, 'ipxe', 'boot.ipxe');
      writeFileSync(file, '#!ipxe\necho one\n');
      expect(await loadTemplate('ipxe', 'boot.ipxe', { root })).toBe('#!ipxe\necho one\n');
      // Same size, new mtime: read again.
      writeFileSync(file, '#!ipxe\necho two\n');
      utimesSync(file, new Date(), new Date(Date.now() + 5000));
      expect(await loadTemplate('ipxe', 'boot.ipxe', { root })).toBe('#!ipxe\necho two\n');
      // Another size: read again.
      writeFileSync(file, '#!ipxe\necho three\n');
      expect(await loadTemplate('ipxe', 'boot.ipxe', { root })).toBe('#!ipxe\necho three\n');
      rmSync(file);
      await expect(loadTemplate('ipxe', 'boot.ipxe', { root })).rejects.toThrow(/cannot read template ipxe\/boot\.ipxe .*no such file/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
