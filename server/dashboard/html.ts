/**
 * HTML for the dashboard, escaped by construction: `html` is a tagged
 * template whose every interpolated value is escaped unless it is itself
 * `Html` (built by `html`, or `raw` for the few constants that need it).
 * Node names, event details, failure reasons and inventory come from
 * outside (agents, BMCs, fleet.yaml); none of them reaches a page unescaped.
 * Pure.
 */

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Text or attribute value (attributes are always double-quoted here) made safe. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"'`]/g, (c) => ESC[c]!);
}

/** A value as it enters a page: Html as is, lists joined, nothing for null/undefined/false, else escaped text. */
function part(v: unknown): string {
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return v.map(part).join('');
  if (v === null || v === undefined || v === false) return '';
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** Trusted markup (constants of this module tree only; never data). */
export function raw(s: string): Html {
  return new Html(s);
}

/** A path or query value in a URL: percent-encoded (the page escapes the URL again as an attribute). */
export function q(s: string): string {
  return encodeURIComponent(s);
}
