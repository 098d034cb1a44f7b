/**
 * A managed block inside a file fleet shares with people:
 *
 *   # BEGIN fleet managed
 *   ...lines fleet owns...
 *   # END fleet managed
 *
 * Everything outside the markers is kept byte for byte.
 */
import { StepError } from './base.js';

export const BEGIN = '# BEGIN fleet managed';
export const END = '# END fleet managed';

/**
 * Returns `text` with the block's body set to `body` (appended at the end
 * when there is no block yet), or with the block removed when `body` is
 * undefined. A malformed block (END before BEGIN, two BEGINs, no END) throws
 * StepError: guessing where fleet's lines end could delete someone's.
 */
export function setBlock(text: string, body: string[] | undefined, file: string): string {
  const lines = text === '' ? [] : text.split('\n');
  const hadNewline = text.endsWith('\n');
  if (hadNewline) lines.pop();
  const begins = lines.flatMap((l, i) => (l.trim() === BEGIN ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === END ? [i] : []));
  if (begins.length > 1 || ends.length > 1 || begins.length !== ends.length || (begins.length === 1 && ends[0]! < begins[0]!)) {
    throw new StepError(`${file}: the "${BEGIN}" / "${END}" markers are malformed; fix them by hand`);
  }
  const block = body === undefined ? [] : [BEGIN, ...body, END];
  let out: string[];
  if (begins.length === 1) {
    out = [...lines.slice(0, begins[0]!), ...block, ...lines.slice(ends[0]! + 1)];
  } else if (body === undefined) {
    return text;
  } else {
    out = [...lines];
    if (out.length > 0 && out[out.length - 1]!.trim() !== '') out.push('');
    out.push(...block);
  }
  if (out.length === 0) return '';
  return `${out.join('\n')}\n`;
}
