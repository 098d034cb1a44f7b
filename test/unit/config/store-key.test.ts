/**
 * fleet.yaml `store:` (issue 15 item 1, docs/decisions/0019): the PostgreSQL
 * database instead of DATA/fleet.db; its password from a file or the
 * environment as BMC passwords, never inline and never in the URL, and never
 * echoed in an error.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FleetError } from '../../../common/errors.js';
import { configIssuesOf, parseConfig } from '../../../server/config/index.js';
import { resolveStorePassword } from '../../../server/config/load.js';

function base(store?: unknown): string {
  return stringify({
    cluster: { name: 'lab', domain: 'cluster.local', timezone: 'Europe/Brussels', management_address: '10.10.0.1' },
    networks: { provisioning: { subnet: '10.10.0.0/16', unknown_range: '10.10.254.1-10.10.254.254' } },
    credentials: { 'bmc-admin': { username: 'ADMIN', password_env: 'FLEET_BMC_PASSWORD' } },
    profiles: { compute: { os: { tree: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os' } } },
    nodes: { n1: { profile: 'compute', ip: '10.10.3.1', mac: ['08:00:27:00:03:01'] } },
    ...(store !== undefined ? { store } : {}),
  });
}

function errorOf(text: string): FleetError {
  try {
    parseConfig(text);
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected the config to be refused');
}

describe('fleet.yaml store:', () => {
  it('absent: no store in the spec (SQLite in the data directory, as before)', () => {
    expect(parseConfig(base()).store).toBeUndefined();
  });

  it('a URL, with its password from a file or an environment variable, or neither', () => {
    expect(parseConfig(base({ url: 'postgres://fleet@db1:5432/fleet', password_file: 'secrets/pg.password' })).store).toEqual({
      url: 'postgres://fleet@db1:5432/fleet',
      passwordFile: 'secrets/pg.password',
    });
    expect(parseConfig(base({ url: 'postgresql://fleet@db1/fleet', password_env: 'FLEET_PG_PASSWORD' })).store).toEqual({ url: 'postgresql://fleet@db1/fleet', passwordEnv: 'FLEET_PG_PASSWORD' });
    expect(parseConfig(base({ url: 'postgres://fleet@db1/fleet' })).store).toEqual({ url: 'postgres://fleet@db1/fleet' });
  });

  it('refuses a password in the URL or inline, without echoing it', () => {
    const secret = 'Pg-S3cret-Value!';
    for (const store of [{ url: `postgres://fleet:${secret}@db1/fleet` }, { url: 'postgres://fleet@db1/fleet', password: secret }]) {
      const e = errorOf(base(store));
      expect(e.code).toBe('config.invalid');
      const issues = configIssuesOf(e);
      expect(issues).toHaveLength(1);
      expect(issues[0]!.message).toMatch(/password in it|inline passwords are not allowed/);
      expect(JSON.stringify(e.toJSON())).not.toContain(secret);
      expect(String(e)).not.toContain(secret);
    }
  });

  it('refuses another scheme, no database, no url, an unknown key, and both password sources', () => {
    const msg = (store: unknown) => configIssuesOf(errorOf(base(store))).map((i) => `${i.path}: ${i.message}`);
    expect(msg({ url: 'mysql://db1/fleet' })).toEqual([expect.stringMatching(/^store\.url: the store URL has scheme mysql/)]);
    expect(msg({ url: 'postgres://db1' })).toEqual([expect.stringMatching(/^store\.url: the store URL names no database/)]);
    expect(msg({ password_file: 'x' })).toEqual([expect.stringMatching(/^store.*url/)]);
    expect(msg({ url: 'postgres://db1/fleet', pool: 3 })).toEqual([expect.stringMatching(/^store\.pool/)]);
    expect(msg({ url: 'postgres://db1/fleet', password_file: 'a', password_env: 'B' })).toEqual(['store: set at most one of password_file or password_env, not both']);
  });
});

describe('the store password', () => {
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-store-pw-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is read from the file (relative to fleet.yaml, one newline stripped) or the variable; none set: none', async () => {
    fs.writeFileSync(path.join(dir, 'pg.password'), 'from-file\n', { mode: 0o600 });
    expect(await resolveStorePassword({ url: 'postgres://h/d', passwordFile: 'pg.password' }, {}, dir)).toEqual({ secret: 'from-file', warnings: [] });
    expect(await resolveStorePassword({ url: 'postgres://h/d', passwordEnv: 'PGPW' }, { PGPW: 'from-env' }, dir)).toEqual({ secret: 'from-env', warnings: [] });
    expect(await resolveStorePassword({ url: 'postgres://h/d' }, {}, dir)).toBeUndefined();
  });

  it('a missing file or variable is config.unreadable naming it as the store password, never a content', async () => {
    const e1 = await resolveStorePassword({ url: 'postgres://h/d', passwordFile: 'nope' }, {}, dir).catch((e: unknown) => e as FleetError);
    expect(e1).toMatchObject({ code: 'config.unreadable' });
    expect((e1 as FleetError).message).toContain(`cannot read password file ${path.join(dir, 'nope')} of the store (store.url)`);
    const e2 = await resolveStorePassword({ url: 'postgres://h/d', passwordEnv: 'PGPW' }, {}, dir).catch((e: unknown) => e as FleetError);
    expect((e2 as FleetError).message).toBe('environment variable PGPW (password of the store (store.url)) is not set');
  });
});
