/**
 * The adoption line and script (server/agents/adopt.ts): pure rendering,
 * pinned digests, no secret in the script, the token only in the line,
 * inputs that could break out of the shell quoting refused. The script is
 * also checked by `sh -n` and run against a stand-in root with a fake
 * agent (the integration test test/integration/adopt.test.ts runs the real one).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ADOPT_SCRIPT_PATH, agentBundle, compactFingerprint, renderAdoptLine, renderAdoptScript } from '../../../server/agents/adopt.js';
import { sha256Hex } from '../../../server/images/manifest.js';

const exec = promisify(execFile);
const FP = 'AB:'.repeat(31) + 'AB';
const TOKEN = 'Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4OTAxMjM0NTY3';
const UNIT = '[Unit]\nDescription=fleet node agent\n[Service]\nExecStart=/usr/local/bin/fleet-agent run\n';
const input = { serverUrl: 'http://10.10.0.1:8080', enrolServer: '10.10.0.1:50051', caFingerprint: FP, agentSha256: 'a'.repeat(64), unit: UNIT };

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('the adoption line', () => {
  const script = renderAdoptScript(input);
  const line = renderAdoptLine({ serverUrl: input.serverUrl, scriptSha256: sha256Hex(script), token: TOKEN });

  it('is one line under 400 characters: fetch the script, check its sha256, run it with the token in its environment', () => {
    expect(line).not.toContain('\n');
    expect(line.length).toBeLessThan(400);
    expect(line).toBe(
      `(d=$(mktemp -d) && trap 'rm -rf "$d"' EXIT && curl -fsSo "$d/a" http://10.10.0.1:8080${ADOPT_SCRIPT_PATH} && ` +
        `echo "${sha256Hex(script)}  $d/a" | sha256sum -c --quiet && FLEET_ENROLL_TOKEN=${TOKEN} sh "$d/a")`,
    );
    // The token appears once, in the environment of sh, never as an argument.
    expect(line.split(TOKEN)).toHaveLength(2);
    expect(line).not.toMatch(/--token/);
  });

  it('refuses what could break out of the line\'s quoting', () => {
    expect(() => renderAdoptLine({ serverUrl: "http://x'; rm -rf /; '", scriptSha256: 'a'.repeat(64), token: TOKEN })).toThrow(/plain http/);
    expect(() => renderAdoptLine({ serverUrl: input.serverUrl, scriptSha256: 'a'.repeat(64), token: 'tok en$(id)' })).toThrow(/malformed/);
    expect(() => renderAdoptLine({ serverUrl: input.serverUrl, scriptSha256: 'nope', token: TOKEN })).toThrow(/sha256/);
  });
});

describe('the adoption script', () => {
  it('is deterministic (its digest is in the line), holds no token, pins the agent and the CA, embeds the unit', () => {
    const a = renderAdoptScript(input);
    expect(renderAdoptScript(input)).toBe(a);
    expect(a).not.toContain(TOKEN);
    expect(a).toContain(`agent_sha256='${'a'.repeat(64)}'`);
    expect(a).toContain(`ca_fingerprint='${compactFingerprint(FP)}'`);
    expect(compactFingerprint(FP)).toBe(`sha256:${'ab'.repeat(32)}`);
    expect(a).toContain('--ca-fingerprint "$ca_fingerprint"');
    expect(a).toContain(UNIT);
    // A new agent bundle is a new script, so a line printed before the rebuild fails its check instead of running something else.
    expect(sha256Hex(renderAdoptScript({ ...input, agentSha256: 'b'.repeat(64) }))).not.toBe(sha256Hex(a));
  });

  it('refuses unsafe inputs', () => {
    expect(() => renderAdoptScript({ ...input, serverUrl: 'http://10.10.0.1:8080/$(reboot)' })).toThrow(/plain http/);
    expect(() => renderAdoptScript({ ...input, enrolServer: "10.10.0.1:50051'" })).toThrow(/HOST:PORT/);
    expect(() => renderAdoptScript({ ...input, agentSha256: 'xyz' })).toThrow(/sha256/);
    expect(() => renderAdoptScript({ ...input, caFingerprint: 'not-a-fingerprint' })).toThrow(/fingerprint/);
    expect(() => renderAdoptScript({ ...input, unit: `${UNIT}FLEET_UNIT_EOF\nreboot\n` })).toThrow(/delimiter/);
  });

  it('is valid sh, and under FLEET_ROOT installs and enrols with the pinned values (a fake agent records its arguments)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-adopt-sh-'));
    dirs.push(dir);
    // A fake agent served from a file:// "server"; the script fetches $server/agent/fleet-agent.
    await mkdir(join(dir, 'srv/agent'), { recursive: true });
    const fake = `#!/bin/sh\nprintf '%s\\n' "$@" > "$FLEET_ROOT/args"\nprintf '%s' "$FLEET_ENROLL_TOKEN" > "$FLEET_ROOT/token"\n`;
    await writeFile(join(dir, 'srv/agent/fleet-agent'), fake);
    const script = renderAdoptScript({ ...input, serverUrl: 'http://127.0.0.1:1', agentSha256: sha256Hex(fake) }).replace("server='http://127.0.0.1:1'", `server='file://${join(dir, 'srv')}'`);
    await writeFile(join(dir, 'adopt.sh'), script);
    await exec('sh', ['-n', join(dir, 'adopt.sh')]);
    const root = join(dir, 'root');
    await mkdir(root);
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', FLEET_ROOT: root, FLEET_ENROLL_TOKEN: TOKEN };
    const r = await exec('sh', [join(dir, 'adopt.sh')], { env });
    expect(r.stderr).toContain('enrolled under');
    expect((await readFile(join(root, 'args'), 'utf8')).trim().split('\n')).toEqual([
      'enroll', '--server', '10.10.0.1:50051', '--ca-fingerprint', compactFingerprint(FP), '--state-dir', join(root, 'var/lib/fleet-agent'), '--force',
    ]);
    expect(await readFile(join(root, 'token'), 'utf8')).toBe(TOKEN);
    expect(await readFile(join(root, 'etc/systemd/system/fleet-agent.service'), 'utf8')).toBe(UNIT);

    // An agent that does not match its pinned sha256 is never installed nor run.
    await writeFile(join(dir, 'srv/agent/fleet-agent'), `${fake}echo evil\n`);
    const root2 = join(dir, 'root2');
    await mkdir(root2);
    const bad = await exec('sh', [join(dir, 'adopt.sh')], { env: { ...env, FLEET_ROOT: root2 } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('does not match its sha256');
    expect(existsSync(join(root2, 'usr/local/bin/fleet-agent'))).toBe(false);
    expect(existsSync(join(root2, 'args'))).toBe(false);

    // No token: refused before anything is downloaded.
    const none = await exec('sh', [join(dir, 'adopt.sh')], { env: { PATH: env.PATH, FLEET_ROOT: root2 } }).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('FLEET_ENROLL_TOKEN is not set');
  });

  it('agentBundle: the sha256 of the served bundle, or a clear precondition error when it is not built', async () => {
    await expect(agentBundle(undefined)).rejects.toMatchObject({ code: 'precondition.failed' });
    const dir = await mkdtemp(join(tmpdir(), 'fleet-adopt-bundle-'));
    dirs.push(dir);
    await expect(agentBundle(dir)).rejects.toThrow(/agent bundle is not built/);
    await writeFile(join(dir, 'fleet-agent'), 'bundle-bytes');
    await chmod(join(dir, 'fleet-agent'), 0o755);
    await writeFile(join(dir, 'fleet-agent.service'), UNIT);
    expect(await agentBundle(dir)).toEqual({ sha256: sha256Hex('bundle-bytes'), unit: UNIT });
  });
});
