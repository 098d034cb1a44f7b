import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { pickFreePort } from '../../../server/serve.js';

describe('pickFreePort', () => {
  it('picks a port below the ephemeral range (no outgoing connection can hold it) that a listener then takes', async () => {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    for (let i = 0; i < 5; i++) {
      const port = await pickFreePort('127.0.0.1');
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(low);
      const srv = createServer();
      await new Promise<void>((res, rej) => srv.once('error', rej).listen(port, '127.0.0.1', res));
      await new Promise<void>((res) => srv.close(() => res()));
    }
  });

  it('says when the address is not this host\'s (EADDRNOTAVAIL), as the boot face\'s check needs', async () => {
    await expect(pickFreePort('192.0.2.1')).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
  });
});
