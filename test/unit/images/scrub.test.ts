/** Per-machine secrets a postinst left in an image tree are removed before it is packed (server/images/tree.ts). */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { scrubMachineSecrets } from '../../../server/images/tree.js';

let tree = '';
afterEach(() => {
  if (tree) rmSync(tree, { recursive: true, force: true });
});

describe('scrubMachineSecrets', () => {
  it('removes SSH host keys and munge.key, empties machine-id, keeps everything else', async () => {
    tree = mkdtempSync(join(tmpdir(), 'fleet-scrub-'));
    const put = (p: string, c = 'x') => {
      mkdirSync(join(tree, p, '..'), { recursive: true });
      writeFileSync(join(tree, p), c);
    };
    for (const k of ['rsa', 'ecdsa', 'ed25519']) {
      put(`etc/ssh/ssh_host_${k}_key`);
      put(`etc/ssh/ssh_host_${k}_key.pub`);
    }
    put('etc/ssh/sshd_config', 'PermitRootLogin prohibit-password\n');
    put('etc/munge/munge.key', 'secret bytes');
    put('etc/munge/README', 'keep');
    put('etc/machine-id', '0123456789abcdef0123456789abcdef\n');
    put('var/lib/dbus/machine-id', '0123456789abcdef0123456789abcdef\n');
    const removed = await scrubMachineSecrets(tree);
    expect(removed).toEqual([
      'etc/ssh/ssh_host_ecdsa_key',
      'etc/ssh/ssh_host_ecdsa_key.pub',
      'etc/ssh/ssh_host_ed25519_key',
      'etc/ssh/ssh_host_ed25519_key.pub',
      'etc/ssh/ssh_host_rsa_key',
      'etc/ssh/ssh_host_rsa_key.pub',
      'etc/munge/munge.key',
      'etc/machine-id (emptied)',
    ]);
    expect(existsSync(join(tree, 'etc/ssh/sshd_config'))).toBe(true);
    expect(existsSync(join(tree, 'etc/munge/README'))).toBe(true);
    expect(existsSync(join(tree, 'etc/munge/munge.key'))).toBe(false);
    expect(readFileSync(join(tree, 'etc/machine-id'), 'utf8')).toBe('');
    expect(existsSync(join(tree, 'var/lib/dbus/machine-id'))).toBe(false);
    // Nothing left: a second pass removes nothing but still empties machine-id.
    expect(await scrubMachineSecrets(tree)).toEqual(['etc/machine-id (emptied)']);
  });

  it('a tree without /etc (an odd import) is left alone', async () => {
    tree = mkdtempSync(join(tmpdir(), 'fleet-scrub-'));
    expect(await scrubMachineSecrets(tree)).toEqual([]);
  });
});
