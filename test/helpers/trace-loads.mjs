/**
 * `node --import ./test/helpers/trace-loads.mjs ...` appends the URL of every
 * module the process loads (ES modules, and CommonJS packages imported from
 * them) to the file named by FLEET_TRACE_LOADS, one per line. Used to check
 * what a CLI command loads (test/integration/cli-server.test.ts, bench/cli.bench.ts).
 */
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';

// Loaded twice: by --import on the main thread (registers the hooks), then as the hooks module on the loader's thread.
if (isMainThread) register(import.meta.url);

export async function load(url, context, next) {
  if (process.env.FLEET_TRACE_LOADS) appendFileSync(process.env.FLEET_TRACE_LOADS, url + '\n');
  return next(url, context);
}
