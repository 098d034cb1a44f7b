import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { configForNode } from '../../../server/agents/config.js';
import { applyConfig } from '../../../server/apply/config.js';
import { parseConfig } from '../../../server/config/index.js';
import { buildAdminApp } from '../../../server/http/app.js';
import { MUNGE_KEY_SECRET } from '../../../server/slurm/index.js';
import { openStore, type Store } from '../../../server/store/index.js';
import { cliAgainst } from '../../helpers/cli.js';

const YAML = `
cluster: { name: lab, domain: cluster.local, timezone: Europe/Brussels, management_address: 10.10.0.1 }
networks: { provisioning: { subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254 } }
profiles:
  head: { os: { tree: "http://10.10.0.1/os" }, roles: { slurm: { role: controller } } }
  compute: { os: { tree: "http://10.10.0.1/os" }, roles: { slurm: { role: compute } } }
nodes:
  ctl01: { profile: head, ip: 10.10.1.1, mac: "08:00:27:00:01:01" }
  "valkyrie[01-02]": { profile: compute, ip: "10.10.3.[1-2]", mac: ["08:00:27:00:03:01", "08:00:27:00:03:02"] }
`;
const TOKEN = 'slurm-rotate-token-0123456789abcdef';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const keyOf = async (store: Store, node: string) => (JSON.parse((await configForNode(store, node)).clusterJson) as { slurm: { mungeKeyB64: string } }).slurm.mungeKeyB64;

async function setup(yaml = YAML): Promise<{ store: Store; app: FastifyInstance; cli: ReturnType<typeof cliAgainst> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-slurm-rotate-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = await openStore({ memory: true }, { secretKey: crypto.randomBytes(32) });
  cleanups.push(() => store.close());
  await applyConfig(store, parseConfig(yaml), {}, { actor: 'test', dryRun: false });
  const app = await buildAdminApp({ store, apiToken: TOKEN, logLevel: 'silent' });
  cleanups.push(() => app.close());
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const tokenPath = path.join(dir, 'api.token');
  fs.writeFileSync(tokenPath, TOKEN, { mode: 0o600 });
  return { store, app, cli: cliAgainst({ url, tokenPath }, dir) };
}

describe('fleet slurm rotate-key', () => {
  it('needs --yes, then replaces the key (a new version for slurm nodes) without ever printing it', async () => {
    const { store, app, cli } = await setup();
    const k1 = await keyOf(store, 'ctl01');
    const v1 = (await configForNode(store, 'valkyrie01')).version;

    const refused = await cli('slurm', 'rotate-key');
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/maintenance window with --yes/);
    expect(await keyOf(store, 'ctl01')).toBe(k1);

    const r = await cli('slurm', 'rotate-key', '--yes');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^munge key rotated at \S+; 3 slurm nodes receive it at their next config fetch: ctl01,valkyrie\[01-02\]\n$/);
    const k2 = await keyOf(store, 'ctl01');
    expect(k2).not.toBe(k1);
    expect(Buffer.from(k2, 'base64')).toHaveLength(1024);
    expect(await keyOf(store, 'valkyrie02')).toBe(k2);
    expect((await configForNode(store, 'valkyrie01')).version).not.toBe(v1);

    const json = await cli('slurm', 'rotate-key', '--yes', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ secret: MUNGE_KEY_SECRET, nodes: ['ctl01', 'valkyrie01', 'valkyrie02'] });
    const k3 = await keyOf(store, 'ctl01');
    const http = await app.inject({ method: 'POST', url: '/api/v1/slurm/rotate-key', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(http.statusCode).toBe(200);
    const k4 = await keyOf(store, 'ctl01');
    const events = (await store.events.list({ limit: 1000 })).events;
    const replaced = events.filter((e) => e.kind === 'secret.replaced');
    expect(replaced).toHaveLength(3);
    expect(replaced[0]!.actor).toMatch(/^admin@/);
    const shown = [r.out, r.err, json.out, http.body, JSON.stringify(events)].join('\n');
    for (const k of [k1, k2, k3, k4]) expect(shown.includes(k.slice(0, 40))).toBe(false);
  });

  it('a cluster without slurm has no key to rotate', async () => {
    const { cli } = await setup(YAML.replace(/, roles: \{ slurm: \{ role: \w+ \} \}/g, ''));
    const r = await cli('slurm', 'rotate-key', '--yes');
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/no profile has the slurm role/);
  });
});
