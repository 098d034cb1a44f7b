/** `fleet bootdev` and `fleet power` at the CLI edge: words mapped to the API, against a server that records what it was sent. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BmcResponse } from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import { bootDevice } from '../../../server/cli/commands/bmc.js';
import { main } from '../../../server/cli/main.js';
import { captureIo, recordingServer, type RecordingServer } from './recording-server.js';

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

describe('fleet bootdev through the command line', () => {
  let srv: RecordingServer;
  beforeEach(async () => {
    srv = await recordingServer((): BmcResponse => ({ results: [{ node: 'n1', ok: true, attempts: [], durationMs: 1 }], summary: { total: 1, ok: 1, failed: 0 } }));
  });
  afterEach(() => srv.close());
  const capture = captureIo;

  it('sends pxe for `bootdev network`', async () => {
    const c = capture();
    expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', 'bootdev', 'network', 'n1', '--persistent'], c.io)).toBe(0);
    expect(srv.requests).toEqual([{ method: 'POST', path: '/api/v1/bootdev', body: { nodeset: 'n1', device: 'pxe', persistent: true, mode: 'auto' } }]);
    expect(c.out()).toBe('n1: boot device pxe (persistent)\n');
  });

  it('refuses an unknown device with exit 2 and sends nothing', async () => {
    const c = capture();
    expect(await main(['node', 'fleet', '--url', srv.url, '--token', 't', 'bootdev', 'floppy', 'n1'], c.io)).toBe(2);
    expect(c.err()).toMatch(/unknown boot device 'floppy'/);
    expect(srv.requests).toEqual([]);
  });
});

describe('fleet power --timeout', () => {
  let srv: RecordingServer;
  beforeEach(async () => {
    srv = await recordingServer((): BmcResponse => ({ results: [{ node: 'n1', ok: true, power: 'on', attempts: [], durationMs: 1 }], summary: { total: 1, ok: 1, failed: 0 } }));
  });
  afterEach(() => srv.close());
  const power = (timeout: string) => {
    const c = captureIo();
    return main(['node', 'fleet', '--url', srv.url, '--token', 't', 'power', 'status', 'n1', '--timeout', timeout], c.io).then((code) => ({ code, err: c.err() }));
  };

  it('takes a duration or bare seconds and sends milliseconds (10s used to send NaN)', async () => {
    for (const [t, ms] of [['10s', 10_000], ['1500ms', 1500], ['2m', 120_000], ['5', 5000]] as const) {
      expect((await power(t)).code, t).toBe(0);
      expect(srv.requests.at(-1)?.body, t).toEqual({ nodeset: 'n1', op: 'status', timeoutMs: ms });
    }
  });

  it('refuses what is not a duration within 100ms..10m with exit 2 and sends nothing', async () => {
    for (const bad of ['soon', '10x', '50ms', '11m', '-1', '']) {
      const r = await power(bad);
      expect(r.code, bad).toBe(2);
      expect(r.err, bad).toMatch(/--timeout ".*" is not a duration from 100ms to 10m/);
    }
    expect(srv.requests).toEqual([]);
  });
});
