/** A serials file: one serial per line in rack order; comments and blank lines do not count; bad or repeated serials are errors with their line. */
import { describe, expect, it } from 'vitest';
import { parseSerialsFile } from '../../../server/discovery/index.js';

describe('parseSerialsFile', () => {
  it('reads serials in order, skipping comments and blank lines', () => {
    expect(parseSerialsFile('# PO 4711, rack 12, bottom up\nSN0001\n\n  SN0002  \r\nSN0003\n')).toEqual({ serials: ['SN0001', 'SN0002', 'SN0003'], problems: [] });
  });

  it.each([
    ['a serial listed twice (any case)', 'SN1\nSN2\nsn1\n', [{ line: 3, message: 'serial sn1 is already listed at line 1' }]],
    ['a line that is not a serial', 'SN1\nSN;2\n', [{ line: 2, message: '"SN;2" is not a serial number (letters, digits, space and ._:/+-, at most 64)' }]],
    ['no serial at all', '# nothing yet\n\n', [{ line: 0, message: 'lists no serial' }]],
  ])('%s', (_what, text, problems) => {
    expect(parseSerialsFile(text).problems).toEqual(problems);
  });
});
