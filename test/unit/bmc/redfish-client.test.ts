import { describe, expect, it } from 'vitest';
import { RedfishClient } from '../../../server/bmc/redfish/client.js';

describe('RedfishClient (no network)', () => {
  it('redacts the password and its basic-auth form from foreign text', async () => {
    const c = new RedfishClient({ address: '10.0.0.9', username: 'root', password: 'hunter2-pw', tls: { trustOnFirstUse: true } });
    const b64 = Buffer.from('root:hunter2-pw').toString('base64');
    expect(c.redact(`user root password hunter2-pw header Basic ${b64}`)).toBe('user root password *** header Basic ***');
    expect(c.port).toBe(443);
    // auto by default: decided on the first request from the service root (issue 9).
    expect(c.auth).toBe('auto');
    expect(c.authInUse).toBeUndefined();
    expect(c.hasSession).toBe(false);
    expect(c.seenFingerprint).toBeUndefined();
    await c.close();
    await c.close();
    await expect(c.getJson('/redfish/v1/')).rejects.toMatchObject({ code: 'internal' });
  });

  it('refuses paths outside /redfish/ before sending anything', async () => {
    const c = new RedfishClient({ address: '10.0.0.9', port: 8443, username: 'root', password: 'pw1', scheme: 'insecure-http' });
    await expect(c.request('GET', '/etc/passwd')).rejects.toMatchObject({ code: 'bmc.protocol' });
    await c.close();
  });
});
