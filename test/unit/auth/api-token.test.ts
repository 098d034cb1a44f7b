import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkBearer, loadOrCreateApiToken, tokenMatches } from '../../../server/auth/api-token.js';
import { FleetError } from '../../../common/errors.js';

describe('API token', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-token-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is created once, mode 0600, and read back unchanged', async () => {
    const a = await loadOrCreateApiToken(dir);
    expect(a.created).toBe(true);
    expect(a.token.length).toBeGreaterThanOrEqual(40);
    expect((await stat(a.path)).mode & 0o777).toBe(0o600);
    const b = await loadOrCreateApiToken(dir);
    expect(b.created).toBe(false);
    expect(b.token).toBe(a.token);
    expect((await readFile(a.path, 'utf8')).trim()).toBe(a.token);
  });

  it('refuses a token file readable by others', async () => {
    const a = await loadOrCreateApiToken(dir);
    await chmod(a.path, 0o644);
    await expect(loadOrCreateApiToken(dir)).rejects.toThrow(/chmod 600/);
  });

  it('refuses an empty token file', async () => {
    await writeFile(join(dir, 'api.token'), '\n', { mode: 0o600 });
    await expect(loadOrCreateApiToken(dir)).rejects.toThrow(/valid API token/);
  });

  it('checks bearer headers without echoing what was presented', () => {
    expect(() => checkBearer('Bearer right-token-value', 'right-token-value')).not.toThrow();
    expect(() => checkBearer('bearer   right-token-value ', 'right-token-value')).not.toThrow();
    const missing = (() => {
      try {
        checkBearer(undefined, 'x');
      } catch (e) {
        return e as FleetError;
      }
    })();
    expect(missing?.code).toBe('auth.missing');
    for (const h of ['Bearer wrong-value', 'Basic abc', 'Bearer', 'right-token-value']) {
      try {
        checkBearer(h, 'right-token-value');
        expect.unreachable();
      } catch (e) {
        expect((e as FleetError).code).toBe('auth.invalid');
        expect((e as Error).message).not.toContain('wrong-value');
      }
    }
    expect(tokenMatches('a', 'b')).toBe(false);
    expect(tokenMatches('same', 'same')).toBe(true);
  });
});
