#!/usr/bin/env node
// Writes the man pages man/fleet.1 and man/fleet-agent.1 from the commands'
// own help text (server/cli/man.ts), or into the directory given as the first
// argument (the freshness test uses one). Reads the compiled dist/: run it as
// `npm run man`, which builds first. Never edit man/ by hand.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentManPages } from '../dist/agent/man-page.js';
import { manPages } from '../dist/server/cli/man-pages.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'man'));
mkdirSync(out, { recursive: true });
for (const [file, text] of Object.entries({ ...manPages(), ...agentManPages() })) {
  writeFileSync(path.join(out, file), text);
  process.stdout.write(`${path.join(out, file)}\n`);
}
