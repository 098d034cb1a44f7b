/**
 * The template mechanism of the netboot renderers: deliberately tiny.
 *
 * A template is plain text with `{{name}}` placeholders (name: lower-case
 * letters, digits and '_'). `fillTemplate` replaces each placeholder by the
 * value of the same name in one pass (a value is never re-scanned). There is
 * no logic in templates: no conditionals, loops or escaping. Lists are joined
 * by the renderer into one value before filling.
 *
 * Strictness, so that a template and its renderer cannot drift apart quietly:
 * - a placeholder with no value is an error;
 * - a value no placeholder uses is an error;
 * - anything left that looks like a placeholder (`{{ x}}`, `{{X}}`, a lone
 *   `{{` or `}}`, triple braces) is an error;
 * - a value holding `{{`, `}}`, a carriage return or another control
 *   character (newline excepted) is an error.
 * Values must already be validated (values.ts); filling does not escape.
 *
 * Pure: reading template files is templates.ts.
 */
import { FleetError } from '../../../common/errors.js';

export type TemplateValues = Readonly<Record<string, string>>;

const PLACEHOLDER = /\{\{([a-z][a-z0-9_]*)\}\}/g;

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Names of the placeholders a template uses, in order of first use. */
export function placeholders(text: string): string[] {
  const seen = new Set<string>();
  for (const m of text.matchAll(PLACEHOLDER)) seen.add(m[1]!);
  return [...seen];
}

/**
 * Fills `text` (the template called `name`, for messages) with `values`.
 * Throws FleetError('internal') naming the template, the placeholder and the line.
 */
export function fillTemplate(name: string, text: string, values: TemplateValues): string {
  const fail = (msg: string): never => {
    throw new FleetError('internal', `template ${name}: ${msg}`, { template: name });
  };
  for (const [key, value] of Object.entries(values)) {
    if (typeof value !== 'string') fail(`value of {{${key}}} is not a string`);
    if (value.includes('{{') || value.includes('}}')) fail(`value of {{${key}}} contains '{{' or '}}'`);
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x09\x0b-\x1f\x7f]/.test(value)) fail(`value of {{${key}}} contains a control character`);
  }
  // Malformed placeholders: whatever still has braces once the well-formed ones are blanked out.
  const blanked = text.replace(PLACEHOLDER, (m) => ' '.repeat(m.length));
  const stray = /\{\{\{|\}\}\}/.exec(text) ?? /\{\{|\}\}/.exec(blanked);
  if (stray) {
    const snippet = text.slice(stray.index, stray.index + 20).split('\n')[0];
    fail(`malformed placeholder near ${JSON.stringify(snippet)} on line ${lineOf(text, stray.index)} (use {{lower_case_name}})`);
  }
  const used = new Set<string>();
  const out = text.replace(PLACEHOLDER, (_m, key: string, offset: number) => {
    if (!Object.prototype.hasOwnProperty.call(values, key)) {
      return fail(`unknown placeholder {{${key}}} on line ${lineOf(text, offset)}; known: ${Object.keys(values).sort().join(', ') || '(none)'}`);
    }
    used.add(key);
    return values[key]!;
  });
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length > 0) fail(`values never used by the template: ${unused.sort().join(', ')}`);
  return out;
}
