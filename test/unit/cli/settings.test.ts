import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../../server/cli/io.js';
import { resolveClientSettings } from '../../../server/cli/settings.js';
import { parseSince } from '../../../server/cli/time.js';
import { formatTable } from '../../../server/cli/table.js';

function io(home: string, cwd: string, env: NodeJS.ProcessEnv = {}): CliIo {
  return { stdout: () => {}, stderr: () => {}, env, isTTY: false, home, cwd };
}

describe('CLI settings', () => {
  let home: string;
  let cwd: string;
  beforeEach(async () => {
    home = await mkdtemp(join(tmpdir(), 'fleet-home-'));
    cwd = await mkdtemp(join(tmpdir(), 'fleet-cwd-'));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
    await rm(cwd, { recursive: true, force: true });
  });

  it('defaults to the local server and its data-dir token', async () => {
    expect(await resolveClientSettings({}, io(home, cwd))).toEqual({ url: 'http://127.0.0.1:8080' });
    await mkdir(join(cwd, 'fleet-data'));
    await writeFile(join(cwd, 'fleet-data', 'api.token'), 'local-token\n');
    const s = await resolveClientSettings({}, io(home, cwd));
    expect(s.token).toBe('local-token');
  });

  it('orders flags, env, user config', async () => {
    await mkdir(join(home, '.config', 'fleet'), { recursive: true });
    await writeFile(join(home, '.config', 'fleet', 'config.yaml'), 'url: http://odin:9000/\ntoken: from-file\n');
    expect(await resolveClientSettings({}, io(home, cwd))).toMatchObject({ url: 'http://odin:9000', token: 'from-file' });
    expect(await resolveClientSettings({}, io(home, cwd, { FLEET_URL: 'http://a:1', FLEET_TOKEN: 'env' }))).toMatchObject({
      url: 'http://a:1',
      token: 'env',
    });
    expect(
      await resolveClientSettings({ url: 'http://b:2', token: 'flag' }, io(home, cwd, { FLEET_URL: 'http://a:1', FLEET_TOKEN: 'env' })),
    ).toMatchObject({ url: 'http://b:2', token: 'flag' });
  });

  it('rejects unknown keys and bad URLs clearly', async () => {
    await mkdir(join(home, '.config', 'fleet'), { recursive: true });
    await writeFile(join(home, '.config', 'fleet', 'config.yaml'), 'urll: http://x\n');
    await expect(resolveClientSettings({}, io(home, cwd))).rejects.toThrow(/unknown key 'urll'/);
    await expect(resolveClientSettings({ url: 'odin:8080' }, io(home, cwd, { XDG_CONFIG_HOME: cwd }))).rejects.toThrow(/bad server URL/);
  });

  it('parses --since as durations or times', () => {
    const now = new Date('2026-01-01T12:00:00.000Z');
    expect(parseSince('10m', now)).toBe('2026-01-01T11:50:00.000Z');
    expect(parseSince('2d', now)).toBe('2025-12-30T12:00:00.000Z');
    expect(parseSince('2026-01-01T10:00:00Z', now)).toBe('2026-01-01T10:00:00.000Z');
    expect(() => parseSince('yesterday', now)).toThrow(/duration/);
  });

  it('aligns tables', () => {
    expect(formatTable(['name', 'ip'], [['valkyrie01', '10.10.3.1'], ['thor', '-']])).toBe(
      'NAME        IP\nvalkyrie01  10.10.3.1\nthor        -',
    );
  });
});
