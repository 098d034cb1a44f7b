/**
 * The machines' side of bench/discovery-inspection.ts, in a process of its
 * own so that the server's CPU figure is the server's alone. Plain
 * JavaScript (node:http only) so that it runs under `node` without a
 * TypeScript loader. Driven over the IPC channel of child_process.fork:
 *
 *   parent → {base, reportsFile, scriptConcurrency}
 *   child  → {phase: 'scripts', ...}   every MAC has fetched its iPXE script (token parsed)
 *   parent → 'go'
 *   child  → {phase: 'reports', ...}   every report has been answered (or failed)
 *
 * Phase 1 fetches GET /boot/MAC.ipxe for every MAC with at most
 * scriptConcurrency requests in flight (keep-alive). Phase 2 sends every
 * report at once, each on a connection of its own (as 1,000 machines would),
 * and times each from the request's start to the end of its answer.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const REQUEST_TIMEOUT_MS = 60_000;

/** One request; resolves with status and body, never rejects. */
function request(url, { method = 'GET', body, agent } = {}) {
  return new Promise((resolve) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = http.request(url, { method, headers, agent, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

async function run({ base, reportsFile, scriptConcurrency }) {
  /** @type {{mac: string, report: object}[]} */
  const machines = JSON.parse(readFileSync(reportsFile, 'utf8'));
  const urlMac = (mac) => mac.replaceAll(':', '-');

  // Phase 1: every machine PXE-boots and fetches its script (bounded concurrency, keep-alive).
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: scriptConcurrency });
  const tokens = new Array(machines.length).fill(null);
  const scriptErrors = [];
  let next = 0;
  const t1 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(scriptConcurrency, machines.length) }, async () => {
      for (let i = next++; i < machines.length; i = next++) {
        const r = await request(`${base}/boot/${urlMac(machines[i].mac)}.ipxe`, { agent: keepAlive });
        const m = /fleet\.token=([A-Za-z0-9_-]+)/.exec(r.body);
        if (r.status === 200 && m) tokens[i] = m[1];
        else if (scriptErrors.length < 20) scriptErrors.push(`${machines[i].mac}: ${r.status} ${r.error ?? r.body.slice(0, 200)}`);
      }
    }),
  );
  const scriptSeconds = (performance.now() - t1) / 1000;
  keepAlive.destroy();
  const bodies = machines.map((m) => JSON.stringify(m.report));
  process.send({ phase: 'scripts', scripts: tokens.filter(Boolean).length, scriptErrors, scriptSeconds, bodyBytes: bodies.reduce((a, b) => a + b.length, 0) });

  await new Promise((resolve) => process.once('message', resolve));

  // Phase 2: every machine posts its report at once, each on its own connection.
  const fresh = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const latenciesMs = new Array(machines.length).fill(null);
  const statuses = {};
  const reportErrors = [];
  const t2 = performance.now();
  await Promise.all(
    machines.map(async (m, i) => {
      if (!tokens[i]) return;
      const start = performance.now();
      const r = await request(`${base}/inspection/${urlMac(m.mac)}?token=${tokens[i]}`, { method: 'POST', body: bodies[i], agent: fresh });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 200) latenciesMs[i] = performance.now() - start;
      else if (reportErrors.length < 20) reportErrors.push(`${m.mac}: ${r.status} ${r.error ?? r.body.slice(0, 200)}`);
    }),
  );
  const reportSeconds = (performance.now() - t2) / 1000;
  fresh.destroy();
  process.send({ phase: 'reports', latenciesMs, statuses, reportErrors, reportSeconds }, () => process.disconnect());
}

process.once('message', (opts) => {
  run(opts).catch((e) => {
    process.send?.({ phase: 'failed', error: String(e?.stack ?? e) }, () => process.exit(1));
  });
});
