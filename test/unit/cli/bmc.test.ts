/** `fleet bootdev` and `fleet power` at the CLI edge: words mapped to the API, against a server that records what it was sent. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BmcResponse } from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import { bootDevice } from '../../../server/cli/commands/bmc.js';
import type { CliIo } from '../../../server/cli/io.js';
import { main } from '../../../server/cli/main.js';

describe('bootDevice', () => {
  it('takes the API devices as they are and network (ipmitool) as pxe', () => {
    for (const d of ['pxe', 'disk', 'cdrom', 'bios']) expect(bootDevice(d)).toBe(d);
    expect(bootDevice('network')).toBe('pxe');
  });

  it('refuses other words with usage.invalid, naming the alias', () => {
    for (const bad of ['net', 'Network', 'floppy', '', 'toString', '__proto__']) {
      let err: unknown;
      try {
        bootDevice(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(FleetError);
      expect((err as FleetError).code).toBe('usage.invalid');
      expect((err as FleetError).message).toContain('(one of: pxe or network, disk, cdrom, bios)');
    }
  });
});

/** A stand-in server: records each request and answers with `answer(body)`. */
async function recordingServer(answer: (path: string, body: unknown) => unknown): Promise<{ url: string; requests: { path: string; body: unknown }[]; server: Server }> {
  const requests: { path: string; body: unknown }[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const body: unknown = text ? JSON.parse(text) : undefined;
      requests.push({ path: req.url ?? '', body });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer(req.url ?? '', body)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

describe('fleet bootdev through the command line', () => {
  let srv: Awaited<ReturnType<typeof recordingServer>>;
  beforeEach(async () => {
    srv = await recordingServer((): BmcResponse => ({ results: [{ node: 'n1', ok: true, attempts: [], durationMs: 1 }], summary: { total: 1, ok: 1, failed: 0 } }));
  });
  afterEach(async () => {
    await new Promise((r) => srv.server.close(r));
  });
  const capture = (): { io: CliIo; out: () => string; err: () => string } => {
    let out = '';
    let err = '';
    return { io: { stdout: (s) => void (out += s), stderr: (s) => void (err += s), env: {}, isTTY: false, home: '/nonexistent', cwd: '/' }, out: () => out, err: () => err };
  };

  it('sends pxe for `bootdev network`', async () => {
    const c = capture();
    expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', 'bootdev', 'network', 'n1', '--persistent'], c.io)).toBe(0);
    expect(srv.requests).toEqual([{ path: '/api/v1/bootdev', body: { nodeset: 'n1', device: 'pxe', persistent: true, mode: 'auto' } }]);
    expect(c.out()).toBe('n1: boot device pxe (persistent)\n');
  });

  it('refuses an unknown device with exit 2 and sends nothing', async () => {
    const c = capture();
    expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', 'bootdev', 'floppy', 'n1'], c.io)).toBe(2);
    expect(c.err()).toMatch(/unknown boot device 'floppy'/);
    expect(srv.requests).toEqual([]);
  });
});
