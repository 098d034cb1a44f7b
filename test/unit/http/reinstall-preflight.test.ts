/**
 * POST /api/v1/nodes/reinstall refuses (precondition.failed, HTTP 412,
 * nothing changed) when a check the nodes' profile depends on fails, unless
 * forced: the admin app built in-process as `fleet server` builds it, with the
 * doctor's real checks on a temporary data dir. `ip` is a stand-in script, so
 * the host's addresses are the test's.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LifecycleActionResponse } from '../../../common/api/schemas.js';
import { parseConfig } from '../../../server/config/index.js';
import { blockingFindings, type Finding } from '../../../server/doctor/checks.js';
import { runDoctor } from '../../../server/doctor/gather.js';
import { buildAdminApp } from '../../../server/http/app.js';
import { S } from '../../../server/lifecycle/states.js';
import type { ProfileSpec } from '../../../server/model.js';
import { harness, PROFILE, type Harness } from '../../helpers/lifecycle.js';

const TOKEN = 'preflight-token-0123456789abcdef0123';
const auth = { authorization: `Bearer ${TOKEN}` };
const DISK: ProfileSpec = { ...PROFILE, name: 'disk', os: { install: 'image', tree: '', image: 'debian12' } };

const SPEC = parseConfig(`version: 1
cluster: { name: c, domain: c.local, timezone: UTC, management_address: 10.10.0.1 }
networks:
  provisioning: { subnet: 10.10.0.0/16, unknown_range: 10.10.254.1-10.10.254.254, dns: [10.10.0.1], ntp: [10.10.0.1] }
credentials: { adm: { username: ADMIN, password_env: BMC_PW } }
profiles: { compute: { os: { install: kickstart, tree: "http://10.10.0.1/repo/os" } } }
nodes: { n1: { profile: compute, ip: 10.10.3.1, mac: "52:54:00:00:00:01" } }
`);

let dir: string;
let h: Harness;
let app: FastifyInstance;

/** `ip -j addr` stand-in: this host holds `addresses` on enp0s3. */
function fakeIp(addresses: string[]): string {
  const p = path.join(dir, `ip-${addresses.length}`);
  const json = JSON.stringify([{ ifname: 'enp0s3', flags: ['UP'], addr_info: addresses.map((local) => ({ family: 'inet', local })) }]);
  writeFileSync(p, `#!/bin/sh\ncat <<'J'\n${json}\nJ\n`);
  chmodSync(p, 0o755);
  return p;
}

async function build(ip: string): Promise<FastifyInstance> {
  const doctor = { spec: SPEC, dataDir: path.join(dir, 'data'), boot: { listenHost: '10.10.0.1', listenPort: 8080, implicit: true, advertisedUrl: 'http://10.10.0.1:8080' }, ip, timedatectl: null };
  // As serve.ts wires it.
  const preflight = async (profiles: ProfileSpec[]): Promise<Finding[]> => blockingFindings(await runDoctor({ ...doctor, profiles, bmc: false }), profiles);
  return buildAdminApp({ store: h.store, apiToken: TOKEN, logLevel: 'silent', conductor: h.c, preflight });
}

function placeAgent(): void {
  const agent = path.join(dir, 'data', 'www', 'agent');
  mkdirSync(agent, { recursive: true });
  for (const f of ['fleet-agent', 'fleet-agent.service']) writeFileSync(path.join(agent, f), 'x');
}

async function reinstall(payload: object) {
  return app.inject({ method: 'POST', url: '/api/v1/nodes/reinstall', headers: auth, payload });
}

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fleet-preflight-'));
  h = await harness({ nodes: ['n1', 'n2'], pets: ['thor'] });
  await h.store.profiles.upsert(DISK, { actor: 't' });
  app = await build(fakeIp(['10.10.0.1']));
});
afterEach(async () => {
  await app.close();
  await h.c.idle();
  await h.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('reinstall refuses on a failed check its profile depends on', () => {
  it('kickstart profile without the agent bundle: 412 precondition.failed with the finding; nothing changed; then ok once it is there', async () => {
    const res = await reinstall({ nodeset: 'n[1-2]' });
    expect(res.statusCode, res.body).toBe(412);
    expect(res.headers['x-fleet-error']).toBe('precondition.failed');
    const err = res.json<{ error: { code: string; message: string; details: { errors: string[]; findings: Finding[] } } }>().error;
    expect(err.code).toBe('precondition.failed');
    expect(err.message).toContain('profile compute');
    expect(err.message).toContain('nothing was changed');
    expect(err.details.findings.map((f) => f.id)).toEqual(['agent-bundle']);
    expect(err.details.errors[0]).toMatch(/^fail {2}agent-bundle: .* — fix: agent\/package\/build\.sh --out /);
    for (const n of ['n1', 'n2']) expect((await h.store.nodes.require(n)).state).toBe(S.enrolled);
    expect((await h.store.events.list({ kinds: ['state.changed'] })).events).toEqual([]);

    placeAgent();
    const ok = await reinstall({ nodeset: 'n[1-2]' });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json<LifecycleActionResponse>().summary.ok).toBe(2);
    expect((await h.store.nodes.require('n1')).state).toBe(S.pxeArmed);
  });

  it('an image profile: the missing image and boot environment block it, not the kickstart profile\'s checks; force overrides', async () => {
    placeAgent();
    const res = await reinstall({ nodeset: 'n1', profile: 'disk' });
    expect(res.statusCode).toBe(412);
    expect(res.json<{ error: { details: { findings: Finding[] } } }>().error.details.findings.map((f) => f.id)).toEqual(['image:disk', 'bootenv']);
    expect((await h.store.nodes.require('n1')).profile).toBe('compute');
    expect((await reinstall({ nodeset: 'n2' })).statusCode).toBe(200);
    const forced = await reinstall({ nodeset: 'n1', profile: 'disk', force: true });
    expect(forced.statusCode, forced.body).toBe(200);
    expect((await h.store.nodes.require('n1')).state).toBe(S.pxeArmed);
  });

  it('boot endpoints not served (the management address is not on this host) block every profile', async () => {
    placeAgent();
    await app.close();
    app = await build(fakeIp(['192.0.2.7']));
    const res = await reinstall({ nodeset: 'n1' });
    expect(res.statusCode).toBe(412);
    expect(res.json<{ error: { details: { findings: Finding[] } } }>().error.details.findings.map((f) => f.id)).toEqual(['boot-endpoint']);
  });

  it('a pet\'s profile does not block the others; unknown nodes are still reported per node', async () => {
    placeAgent();
    await h.store.nodes.upsertMany([{ name: 'thor', profile: 'disk', macs: ['52:54:00:00:00:03'], pet: true }], { actor: 't' });
    const res = await reinstall({ nodeset: 'n1,thor,ghost' });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json<LifecycleActionResponse>();
    expect(body.results.find((r) => r.node === 'thor')?.error?.code).toBe('auth.forbidden');
    expect(body.results.find((r) => r.node === 'ghost')?.error?.code).toBe('node.not_found');
  });
});
