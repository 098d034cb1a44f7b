/**
 * The architecture docs send readers to files by path ("Finding things",
 * docs/fact-flow.md): every full source path they name in backticks must
 * exist, so a move that forgets the docs fails here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCS = ['docs/architecture.md', 'docs/fact-flow.md', 'docs/lifecycle.md'];
const PATH = /`((?:server|common|agent|test|proto)\/[A-Za-z0-9_./-]+\.ts)`/g;

describe('docs name files that exist', () => {
  for (const doc of DOCS) {
    it(doc, () => {
      const text = readFileSync(join(ROOT, doc), 'utf8');
      const named = [...text.matchAll(PATH)].map((m) => m[1]!);
      expect(named.length).toBeGreaterThan(0);
      expect(named.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
    });
  }
});
