/**
 * BMC discovery by scan (server/discovery/scan.ts) against real peers on
 * loopback only: OpenIPMI's ipmi_sim for IPMI, the DMTF-mockup Redfish double
 * over HTTPS, and hostile peers (UDP sockets and TCP/TLS servers on 127.0.0.x)
 * that answer garbage, truncated pongs, from another address, with endless
 * bodies or not at all. Every packet of this file goes to 127.0.0.0/8.
 */
import dgram from 'node:dgram';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AsfType,
  Cmd,
  decodeIpmiRequest,
  decodeRmcpPacket,
  encodeAsfPong,
  encodeChannelAuthCaps,
  encodeIpmi15Packet,
  encodeIpmiResponse,
} from '../../server/bmc/ipmi/codec.js';
import type { HostFinding } from '../../server/discovery/scan-classify.js';
import { planScan } from '../../server/discovery/scan-input.js';
import { runBmcScan } from '../../server/discovery/scan.js';
import { IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';
import { makeTestPki, RedfishDouble, type TestPki } from '../helpers/redfish-double.js';

const suite = IPMI_SIM ? describe : describe.skip;
const title = IPMI_SIM ? 'BMC scan on loopback' : 'BMC scan on loopback — SKIPPED: ipmi_sim not installed (apt-get install openipmi)';

const MOCKUP_UUID = '92384634-2938-2342-8820-489239905423';
const byAddress = (hosts: HostFinding[]): Record<string, HostFinding> => Object.fromEntries(hosts.map((h) => [h.address, h]));

/** A UDP peer bound to ADDR:port that answers each datagram with what `answer` returns (nothing for null), from `from` when given. */
async function udpPeer(address: string, port: number, answer: (msg: Buffer) => Buffer | null, from?: dgram.Socket): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((ok, fail) => {
    s.once('error', fail);
    s.bind(port, address, () => ok());
  });
  s.on('message', (m, r) => {
    const out = answer(m);
    if (out) (from ?? s).send(out, r.port, r.address);
  });
  return s;
}

/** What a request is: the ASF ping's tag, or the IPMI request inside a v1.5 packet. */
function requestOf(m: Buffer): { ping: number } | { rqSeq: number; cmd: number; data: Buffer } | null {
  try {
    const p = decodeRmcpPacket(m);
    if (p.kind === 'asf' && p.type === AsfType.PING) return { ping: p.tag };
    if (p.kind === 'ipmi15') {
      const q = decodeIpmiRequest(p.payload);
      return { rqSeq: q.rqSeq, cmd: q.cmd, data: q.data };
    }
  } catch {
    // not for us
  }
  return null;
}

function capsAnswer(rqSeq: number, completionCode: number, data: Buffer = Buffer.alloc(0)): Buffer {
  return encodeIpmi15Packet({ payload: encodeIpmiResponse({ netFn: 0x07, cmd: Cmd.GET_CHANNEL_AUTH_CAPS, rqSeq, completionCode, data }) });
}

function listen<T extends TcpServer | HttpsServer>(server: T): Promise<number> {
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok((server.address() as AddressInfo).port));
  });
}

suite(title, () => {
  let dir: string;
  let pki: TestPki;
  let lab: IpmiSimLab;
  let redfish: RedfishDouble;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-bmc-scan-'));
    await mkdir(join(dir, 'pki'));
    pki = makeTestPki(join(dir, 'pki'));
    lab = await startIpmiSims(1);
    redfish = await RedfishDouble.start({ tls: pki.server });
  }, 60_000);

  afterAll(async () => {
    await redfish?.close();
    await lab?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('127.0.0.0/29: ipmi_sim and the Redfish double answer on 127.0.0.1, 127.0.0.2-6 are silent', async () => {
    const sim = lab.bmcs[0]!;
    const plan = planScan({ subnet: '127.0.0.0/29', ipmiPort: sim.port, redfishPort: redfish.port, timeoutMs: 600 });
    const r = await runBmcScan(plan);
    expect(r.counts).toEqual({ addresses: 6, answered: 1, silent: 5, bmcs: 1, other: 0 });
    expect(r.silent).toEqual(['127.0.0.2-127.0.0.6']);
    expect(r.notScanned).toEqual([]);
    const h = r.answered[0]!;
    expect(h.address).toBe('127.0.0.1');
    expect(h.verdict).toBe('bmc');
    expect(h.ipmi).toMatchObject({
      verdict: 'bmc',
      port: sim.port,
      pong: { iana: 4542, ipmi: true },
      versions: ['1.5', '2.0'],
      authTypes: ['none', 'md2', 'md5', 'password'],
      channel: 1,
      anonymousLogin: false,
      notes: [],
    });
    expect(h.redfish).toMatchObject({ verdict: 'bmc', port: redfish.port, rootRead: true, uuid: MOCKUP_UUID, redfishVersion: '1.15.0', fingerprint: pki.fingerprint });
    // Two requests per address; at most 1 + 2 retries each, none more.
    expect(r.ipmiPackets!.sent).toBeLessThanOrEqual(6 * 2 * 3);
    expect(r.ipmiPackets!.sent).toBeGreaterThanOrEqual(5 * 2 * 3);
    // The anonymous service root only: no credential, no session, nothing else asked.
    // (The double records paths without their trailing slash.)
    expect(redfish.requests.map((q) => `${q.method} ${q.path}`)).toEqual(['GET /redfish/v1']);
    expect(redfish.requests[0]!.headers['authorization']).toBeUndefined();
    expect(redfish.sessionsCreated).toBe(0);
  });

  it('--protocol ipmi on its own: the same BMC, no Redfish probe at all', async () => {
    const before = redfish.requests.length;
    const r = await runBmcScan(planScan({ subnet: '127.0.0.1/32', protocol: 'ipmi', ipmiPort: lab.bmcs[0]!.port, timeoutMs: 600 }));
    expect(r.counts).toMatchObject({ bmcs: 1, silent: 0 });
    expect(r.answered[0]!.redfish).toBeNull();
    expect(redfish.requests.length).toBe(before);
  });

  describe('hostile IPMI peers on 127.0.0.1-6, one UDP port', () => {
    const sockets: dgram.Socket[] = [];
    let port: number;

    beforeAll(async () => {
      // 127.0.0.1: garbage in answer to anything.
      const garbage = await udpPeer('127.0.0.1', 0, () => Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
      sockets.push(garbage);
      port = garbage.address().port;
      // 127.0.0.2: a pong cut short (its length says 16 bytes, 4 follow), caps unanswered.
      sockets.push(await udpPeer('127.0.0.2', port, (m) => { const q = requestOf(m); return q && 'ping' in q ? encodeAsfPong(q.ping).subarray(0, 16) : null; }));
      // 127.0.0.3: answers correctly, but from 127.0.0.9 (spoofed or multi-homed): not 127.0.0.3's answer.
      const elsewhere = await udpPeer('127.0.0.9', port, () => null);
      sockets.push(elsewhere);
      sockets.push(
        await udpPeer(
          '127.0.0.3',
          port,
          (m) => {
            const q = requestOf(m);
            if (!q) return null;
            return 'ping' in q ? encodeAsfPong(q.ping) : capsAnswer(q.rqSeq, 0, encodeChannelAuthCaps({ channel: 1, authTypes: 0x97, ipmi20: true }));
          },
          elsewhere,
        ),
      );
      // 127.0.0.4: an ASF NIC: a pong without IPMI, no IPMI at all.
      sockets.push(await udpPeer('127.0.0.4', port, (m) => { const q = requestOf(m); return q && 'ping' in q ? encodeAsfPong(q.ping, { entities: 0x01 }) : null; }));
      // 127.0.0.5: a valid pong for a tag never sent, and a caps answer for another rqSeq: strays, dropped.
      sockets.push(
        await udpPeer('127.0.0.5', port, (m) => {
          const q = requestOf(m);
          if (!q) return null;
          return 'ping' in q ? encodeAsfPong((q.ping + 1) & 0xff) : capsAnswer((q.rqSeq + 1) & 0x3f, 0, encodeChannelAuthCaps({ channel: 1, authTypes: 0x97, ipmi20: true }));
        }),
      );
      // 127.0.0.6: an IPMI v1.5 BMC: refuses the v2.0 form of Get Channel Auth Caps (0xCC), answers the v1.5 form.
      sockets.push(
        await udpPeer('127.0.0.6', port, (m) => {
          const q = requestOf(m);
          if (!q) return null;
          if ('ping' in q) return encodeAsfPong(q.ping);
          return (q.data[0]! & 0x80) !== 0 ? capsAnswer(q.rqSeq, 0xcc) : capsAnswer(q.rqSeq, 0, encodeChannelAuthCaps({ channel: 1, authTypes: 0x16, status: 0x04 }));
        }),
      );
    });

    afterAll(() => {
      for (const s of sockets) s.close();
    });

    it('classifies each without crashing: garbage and a truncated pong are other, answers from elsewhere and strays are silent, v1.5 is a BMC', async () => {
      const r = await runBmcScan(planScan({ subnet: '127.0.0.0/29', protocol: 'ipmi', ipmiPort: port, timeoutMs: 600 }));
      const h = byAddress(r.answered);
      expect(Object.keys(h).sort()).toEqual(['127.0.0.1', '127.0.0.2', '127.0.0.4', '127.0.0.6']);
      expect(h['127.0.0.1']!.verdict).toBe('other');
      expect(h['127.0.0.1']!.ipmi!.notes.join('; ')).toMatch(/answered with an invalid packet: RMCP: unsupported version 0x48/);
      expect(h['127.0.0.2']!.verdict).toBe('other');
      expect(h['127.0.0.2']!.ipmi!.notes.join('; ')).toMatch(/truncated at ASF data/);
      expect(h['127.0.0.4']!.ipmi).toMatchObject({ verdict: 'other', pong: { ipmi: false, entities: 0x01 } });
      expect(h['127.0.0.6']!.ipmi).toMatchObject({ verdict: 'bmc', versions: ['1.5'], authTypes: ['md2', 'md5', 'password'] });
      expect(r.silent).toEqual(['127.0.0.3', '127.0.0.5']);
      expect(r.counts).toEqual({ addresses: 6, answered: 4, silent: 2, bmcs: 1, other: 3 });
      // The answers from 127.0.0.9 and the strays were received and dropped, never taken.
      expect(r.ipmiPackets!.dropped).toBeGreaterThanOrEqual(4);
      expect(r.ipmiPackets!.garbage).toBeGreaterThanOrEqual(2);
    });
  });

  describe('hostile and odd Redfish peers on 127.0.0.1', () => {
    const closers: (() => Promise<void>)[] = [];
    const ports: Record<string, number> = {};

    beforeAll(async () => {
      const start = async (name: string, opts: Parameters<typeof RedfishDouble.start>[0]) => {
        const d = await RedfishDouble.start(opts);
        ports[name] = d.port;
        closers.push(() => d.close());
      };
      await start('garbage', { tls: pki.server, garbage: ['/redfish/v1'] });
      await start('locked', { tls: pki.server, anonymousRoot: false });
      await start('plain', { scheme: 'http' });
      // Accepts TCP and never says a word (a hung BMC web server).
      const sockets = new Set<Socket>();
      const mute = createTcpServer((s) => sockets.add(s));
      ports['mute'] = await listen(mute);
      closers.push(async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((ok) => mute.close(() => ok()));
      });
      // Answers 200 with a JSON body that never ends.
      const endless = createHttpsServer({ cert: pki.server.cert, key: pki.server.key }, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"RedfishVersion":"1.0.0","Pad":"');
        const chunk = 'x'.repeat(64 * 1024);
        const pump = (): void => {
          while (!res.destroyed && res.write(chunk));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      });
      ports['endless'] = await listen(endless);
      closers.push(async () => {
        endless.closeAllConnections();
        await new Promise<void>((ok) => endless.close(() => ok()));
      });
      // Nothing listens here: bound once, closed, its port left free.
      const gone = createTcpServer();
      ports['closed'] = await listen(gone);
      await new Promise<void>((ok) => gone.close(() => ok()));
    });

    afterAll(async () => {
      for (const c of closers) await c();
    });

    it.each([
      ['garbage', 'other', /with a body that is not JSON/],
      ['locked', 'bmc', /wants credentials \(HTTP 401\)/],
      ['plain', 'other', /open but does not speak TLS/],
      ['mute', 'silent', /no HTTPS answer from 127\.0\.0\.1:\d+ within 500 ms/],
      ['endless', 'other', /larger than a service root can be/],
      ['closed', 'silent', /ECONNREFUSED/],
    ])('%s → %s', async (name, verdict, note) => {
      const r = await runBmcScan(planScan({ subnet: '127.0.0.1', protocol: 'redfish', redfishPort: ports[name]!, timeoutMs: 500 }));
      const f = r.answered[0]?.redfish ?? null;
      expect(r.counts.addresses).toBe(1);
      if (verdict === 'silent') {
        expect(r.silent).toEqual(['127.0.0.1']);
        return;
      }
      expect(f?.verdict).toBe(verdict);
      expect(f!.notes.join('; ')).toMatch(note);
      if (name === 'locked') expect(f).toMatchObject({ rootRead: false, fingerprint: pki.fingerprint, uuid: null });
    });
  });

  it('stops handing out addresses when told to: what was not probed is reported as not scanned', async () => {
    const ac = new AbortController();
    const plan = planScan({ subnet: '127.0.1.0/24', protocol: 'ipmi', ipmiPort: lab.bmcs[0]!.port, concurrency: 4, timeoutMs: 300 });
    const done = runBmcScan(plan, { signal: ac.signal, onHost: (n) => n === 8 && ac.abort() });
    const r = await done;
    expect(r.counts.addresses).toBeGreaterThanOrEqual(8);
    expect(r.counts.addresses).toBeLessThan(254);
    expect(r.notScanned.length).toBe(1);
    expect(r.notScanned[0]).toMatch(/^127\.0\.1\.\d+-127\.0\.1\.254$/);
  });
});
