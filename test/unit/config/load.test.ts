import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { configIssuesOf, loadConfigFile, resolveSecret, resolveSecretDetailed } from '../../../server/config/index.js';
import { rejection } from '../../helpers/rejection.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SECRET = 'hunter2-Very-Secret';

describe('loadConfigFile', () => {
  it('loads the example and gives the directory relative secrets are resolved against', async () => {
    const file = path.join(root, 'examples/seed-cluster.yaml');
    const loaded = await loadConfigFile(file);
    expect(loaded.spec.nodes).toHaveLength(6);
    expect(loaded.baseDir).toBe(path.join(root, 'examples'));
    expect(loaded.text).toContain('valkyrie[01-02]');
  });

  it('the example credentials resolve out of the box (demo password file)', async () => {
    const loaded = await loadConfigFile(path.join(root, 'examples/seed-cluster.yaml'));
    const secret = await resolveSecret(loaded.spec.credentials[0]!, {}, loaded.baseDir);
    expect(secret.length).toBeGreaterThan(0);
    expect(secret).not.toMatch(/\n/);
  });

  it('says which file it cannot read', async () => {
    const e = await rejection(loadConfigFile('/nonexistent/dir/fleet.yaml'));
    expect(e.code).toBe('config.unreadable');
    expect(e.message).toBe('cannot read config file /nonexistent/dir/fleet.yaml: no such file');
    const d = await rejection(loadConfigFile(root));
    expect(d.message).toMatch(/it is a directory$/);
  });

  it('uses the file name as the source of config errors', async () => {
    const e = await rejection(loadConfigFile(path.join(root, 'test/fixtures/config/five-mistakes.yaml')));
    expect(e.code).toBe('config.invalid');
    expect(e.message).toMatch(/five-mistakes\.yaml has 5 errors$/);
    expect(configIssuesOf(e)).toHaveLength(5);
  });
});

describe('resolveSecret', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'fleet-config-'));
    await writeFile(path.join(dir, 'ok.password'), `${SECRET}\n`, { mode: 0o600 });
    await writeFile(path.join(dir, 'crlf.password'), `${SECRET}\r\n`, { mode: 0o600 });
    await writeFile(path.join(dir, 'open.password'), SECRET, { mode: 0o644 });
    await chmod(path.join(dir, 'open.password'), 0o644);
    await writeFile(path.join(dir, 'empty.password'), '\n', { mode: 0o600 });
    await writeFile(path.join(dir, 'two-lines.password'), `${SECRET}\nsecond ${SECRET}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads password_file relative to the base directory and strips the trailing newline', async () => {
    expect(await resolveSecret({ name: 'a', username: 'u', passwordFile: 'ok.password' }, {}, dir)).toBe(SECRET);
    expect(await resolveSecret({ name: 'a', username: 'u', passwordFile: 'crlf.password' }, {}, dir)).toBe(SECRET);
    expect(await resolveSecret({ name: 'a', username: 'u', passwordFile: path.join(dir, 'ok.password') }, {}, '/')).toBe(SECRET);
  });

  it('warns about a world-readable password file without failing', async () => {
    const r = await resolveSecretDetailed({ name: 'a', username: 'u', passwordFile: 'open.password' }, {}, dir);
    expect(r.secret).toBe(SECRET);
    expect(r.warnings).toEqual([`password file ${path.join(dir, 'open.password')} of credentials a is readable by everyone (mode 0644); chmod 600 it`]);
    const sink: string[] = [];
    await resolveSecret({ name: 'a', username: 'u', passwordFile: 'open.password' }, {}, dir, sink);
    expect(sink).toHaveLength(1);
    expect((await resolveSecretDetailed({ name: 'a', username: 'u', passwordFile: 'ok.password' }, {}, dir)).warnings).toEqual([]);
  });

  it('reads password_env', async () => {
    expect(await resolveSecret({ name: 'a', username: 'u', passwordEnv: 'BMC_PW' }, { BMC_PW: SECRET }, dir)).toBe(SECRET);
  });

  it('names the file or variable in errors, never the content', async () => {
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => resolveSecret({ name: 'a', username: 'u', passwordFile: 'missing.password' }, {}, dir), /cannot read password file .*missing\.password of credentials a: no such file$/],
      [() => resolveSecret({ name: 'a', username: 'u', passwordFile: 'empty.password' }, {}, dir), /empty\.password of credentials a: the file is empty$/],
      [() => resolveSecret({ name: 'a', username: 'u', passwordFile: 'two-lines.password' }, {}, dir), /two-lines\.password of credentials a: the file has more than one line$/],
      [() => resolveSecret({ name: 'a', username: 'u', passwordFile: '.' }, {}, dir), /not a regular file$/],
      [() => resolveSecret({ name: 'a', username: 'u', passwordEnv: 'BMC_PW' }, { OTHER: SECRET }, dir), /^environment variable BMC_PW \(password of credentials a\) is not set$/],
      [() => resolveSecret({ name: 'a', username: 'u', passwordEnv: 'BMC_PW' }, { BMC_PW: '' }, dir), /^environment variable BMC_PW \(password of credentials a\) is empty$/],
    ];
    for (const [p, re] of cases) {
      const e = await rejection(p());
      expect(e.code).toBe('config.unreadable');
      expect(e.message).toMatch(re);
      expect(JSON.stringify(e.toJSON())).not.toContain(SECRET);
    }
  });
});
