/**
 * A serials file (`serials_file:` of a discovery rule): the serial numbers
 * of a purchase order in rack order, one per line. Pure: the text is read
 * by the config loader (server/config/load.ts) and the CLI, next to
 * fleet.yaml, and parsed here.
 *
 *   # PO 4711, rack 12, bottom to top      ← comments and blank lines do not count
 *   SN0001
 *   SN0002
 *
 * The k-th serial gets the rule's k-th name. A serial listed twice is an
 * error (which position would it take?), as is one that is not a serial.
 */
import { SERIAL_NUMBER, show } from '../../common/patterns.js';
import { serialKey } from './rules.js';

/** A serials file larger than this is not a purchase order. */
export const MAX_SERIALS_FILE_BYTES = 4 * 1024 * 1024;

export interface SerialsFileProblem {
  /** 1-based line of the file (0: the file as a whole). */
  line: number;
  message: string;
}

export function parseSerialsFile(text: string): { serials: string[]; problems: SerialsFileProblem[] } {
  const serials: string[] = [];
  const problems: SerialsFileProblem[] = [];
  if (Buffer.byteLength(text) > MAX_SERIALS_FILE_BYTES) {
    return { serials, problems: [{ line: 0, message: `larger than ${MAX_SERIALS_FILE_BYTES} bytes` }] };
  }
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const s = raw.trim();
    if (s === '' || s.startsWith('#')) return;
    if (!SERIAL_NUMBER.test(s)) {
      problems.push({ line, message: `${show(s, 40)} is not a serial number (letters, digits, space and ._:/+-, at most 64)` });
      return;
    }
    const k = serialKey(s);
    const first = seen.get(k);
    if (first !== undefined) {
      problems.push({ line, message: `serial ${s} is already listed at line ${first}` });
      return;
    }
    seen.set(k, line);
    serials.push(s);
  });
  if (serials.length === 0 && problems.length === 0) problems.push({ line: 0, message: 'lists no serial' });
  return { serials, problems };
}
