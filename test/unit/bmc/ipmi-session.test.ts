/**
 * The native client (transport, RAKP session, driver) against an in-process
 * fake BMC on loopback UDP. The fake's cryptography is written here directly
 * with node:crypto (not with server/bmc/ipmi/crypto.ts), so suite 17, which
 * ipmi_sim does not speak, is exercised end to end against an independent
 * implementation. Framing is parsed with the codec (tested separately).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  decodeIpmiRequest,
  decodeOpenSessionRequest,
  decodeRakp1,
  decodeRakp3,
  decodeRmcpPacket,
  encodeIpmiResponse,
  encodeOpenSessionResponse,
  encodeRakp2,
  encodeRakp4,
} from '../../../server/bmc/ipmi/codec.js';
import { createIpmiDriver } from '../../../server/bmc/ipmi/driver.js';
import { IpmiTransport } from '../../../server/bmc/ipmi/transport.js';
import { FleetError } from '../../../common/errors.js';
import { mayRetry, provedNotRun, unconfirmedOf } from '../../../server/bmc/retry.js';
import { withBmc } from '../../../server/bmc/registry.js';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Mode = 'ok' | 'silent' | 'garbage' | 'bad-authcode' | 'no-cipher' | 'unknown-user' | 'refuse-privilege';

interface FakeSession {
  consoleSid: number;
  sik: Buffer;
  k1: Buffer;
  k2: Buffer;
  rm: Buffer;
  rc: Buffer;
  role: number;
  user: Buffer;
  active: boolean;
}

const le32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

/** A minimal IPMI v2.0 BMC: auth caps, RAKP (suite 3 or 17), set privilege, chassis status/control, close session. */
class FakeBmc {
  power = false;
  mode: Mode = 'ok';
  dropFirst = 0;
  /** Drop this many Get Chassis Status requests (after decrypting them: their bytes go to `dropped`). */
  dropStatus = 0;
  readonly dropped: Buffer[] = [];
  /** Chassis Control: 'answer' (default), 'silent' (acts, never answers), 'busy' (refuses with 0xC0, does not act). */
  control: 'answer' | 'silent' | 'busy' | 'garbage' = 'answer';
  readonly sessions = new Map<number, FakeSession>();
  readonly log: string[] = [];
  private readonly guid = randomBytes(16);
  private seq = 0;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly suite: 3 | 17,
    readonly username: string,
    readonly password: string,
  ) {
    socket.on('message', (m, r) => this.onMessage(m, r));
  }

  static async start(suite: 3 | 17, username = 'admin', password = 'Fake-Pass-17', address = '127.0.0.1'): Promise<FakeBmc> {
    const s = dgram.createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, address, resolve);
    });
    return new FakeBmc(s, suite, username, password);
  }

  get port(): number {
    return this.socket.address().port;
  }

  get hash(): 'sha1' | 'sha256' {
    return this.suite === 3 ? 'sha1' : 'sha256';
  }

  get authLen(): number {
    return this.suite === 3 ? 12 : 16;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private send(buf: Buffer, r: dgram.RemoteInfo): void {
    this.socket.send(buf, r.port, r.address);
  }

  private presession(type: number, payload: Buffer): Buffer {
    const h = Buffer.from([0x06, 0x00, 0xff, 0x07, 0x06, type, 0, 0, 0, 0, 0, 0, 0, 0, payload.length & 0xff, payload.length >> 8]);
    return Buffer.concat([h, payload]);
  }

  private onMessage(msg: Buffer, r: dgram.RemoteInfo): void {
    if (this.dropFirst > 0) {
      this.dropFirst--;
      this.log.push('dropped');
      return;
    }
    if (this.mode === 'silent') return;
    if (this.mode === 'garbage') return this.send(randomBytes(1 + Math.floor(Math.random() * 60)), r);
    const p = decodeRmcpPacket(msg);
    if (p.kind === 'ipmi15') {
      const q = decodeIpmiRequest(p.payload);
      this.log.push('auth-caps');
      const res = encodeIpmiResponse({ netFn: q.netFn + 1, cmd: q.cmd, rqSeq: q.rqSeq, completionCode: 0, data: Buffer.from('0180140200000000', 'hex') });
      return this.send(Buffer.concat([Buffer.from([0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, res.length]), res]), r);
    }
    if (p.kind !== 'ipmi20') return;
    if (p.payloadType === 0x10) {
      const q = decodeOpenSessionRequest(p.payload);
      this.log.push('open');
      const want = this.suite === 3 ? [1, 1, 1] : [3, 4, 1];
      const ok = this.mode !== 'no-cipher' && q.authAlg === want[0] && q.integrityAlg === want[1] && q.confAlg === want[2];
      if (!ok) return this.send(this.presession(0x11, encodeOpenSessionResponse({ tag: q.tag, status: 0x11, maxPrivilege: 0, consoleSessionId: q.consoleSessionId })), r);
      const bmcSid = 0x1000 + this.sessions.size + 1;
      this.sessions.set(bmcSid, { consoleSid: q.consoleSessionId, sik: Buffer.alloc(0), k1: Buffer.alloc(0), k2: Buffer.alloc(0), rm: Buffer.alloc(0), rc: randomBytes(16), role: 0, user: Buffer.alloc(0), active: false });
      const res = encodeOpenSessionResponse({ tag: q.tag, status: 0, maxPrivilege: 4, consoleSessionId: q.consoleSessionId, bmcSessionId: bmcSid, authAlg: q.authAlg, integrityAlg: q.integrityAlg, confAlg: q.confAlg });
      return this.send(this.presession(0x11, res), r);
    }
    if (p.payloadType === 0x12) {
      const q = decodeRakp1(p.payload);
      this.log.push('rakp1');
      const s = this.sessions.get(q.bmcSessionId);
      if (!s) return;
      if (this.mode === 'unknown-user' || q.username.toString() !== this.username) {
        return this.send(this.presession(0x13, encodeRakp2({ tag: q.tag, status: 0x0d, consoleSessionId: s.consoleSid })), r);
      }
      Object.assign(s, { rm: q.consoleRandom, role: q.role, user: q.username });
      const code = createHmac(this.hash, this.password)
        .update(Buffer.concat([le32(s.consoleSid), le32(q.bmcSessionId), s.rm, s.rc, this.guid, Buffer.from([s.role, s.user.length]), s.user]))
        .digest();
      return this.send(this.presession(0x13, encodeRakp2({ tag: q.tag, status: 0, consoleSessionId: s.consoleSid, bmcRandom: s.rc, bmcGuid: this.guid, authCode: code })), r);
    }
    if (p.payloadType === 0x14) {
      const q = decodeRakp3(p.payload);
      this.log.push(`rakp3:${q.status}`);
      const s = this.sessions.get(q.bmcSessionId);
      if (!s || q.status !== 0) return;
      const expect3 = createHmac(this.hash, this.password).update(Buffer.concat([s.rc, le32(s.consoleSid), Buffer.from([s.role, s.user.length]), s.user])).digest();
      if (!expect3.equals(q.authCode)) return this.send(this.presession(0x15, encodeRakp4({ tag: q.tag, status: 0x0f, consoleSessionId: s.consoleSid, integrityCheckValue: Buffer.alloc(0) })), r);
      s.sik = createHmac(this.hash, this.password).update(Buffer.concat([s.rm, s.rc, Buffer.from([s.role, s.user.length]), s.user])).digest();
      s.k1 = createHmac(this.hash, s.sik).update(Buffer.alloc(20, 1)).digest();
      s.k2 = createHmac(this.hash, s.sik).update(Buffer.alloc(20, 2)).digest().subarray(0, 16);
      s.active = true;
      const icv = createHmac(this.hash, s.sik).update(Buffer.concat([s.rm, le32(q.bmcSessionId), this.guid])).digest().subarray(0, this.authLen);
      return this.send(this.presession(0x15, encodeRakp4({ tag: q.tag, status: 0, consoleSessionId: s.consoleSid, integrityCheckValue: icv })), r);
    }
    if (p.payloadType === 0 && p.sessionId !== 0) {
      const s = this.sessions.get(p.sessionId);
      if (!s || !s.active) return;
      const body = msg.subarray(4, msg.length - this.authLen);
      const mac = createHmac(this.hash, s.k1).update(body).digest().subarray(0, this.authLen);
      if (!mac.equals(msg.subarray(msg.length - this.authLen))) {
        this.log.push('bad-mac');
        return;
      }
      const d = createDecipheriv('aes-128-cbc', s.k2, p.payload.subarray(0, 16));
      d.setAutoPadding(false);
      const plain = Buffer.concat([d.update(p.payload.subarray(16)), d.final()]);
      const q = decodeIpmiRequest(plain.subarray(0, plain.length - 1 - plain[plain.length - 1]!));
      if (this.dropStatus > 0 && q.netFn === 0 && q.cmd === 0x01) {
        this.dropStatus--;
        this.dropped.push(Buffer.from(msg));
        this.log.push('dropped-status');
        return;
      }
      this.log.push(`cmd:${q.netFn}:${q.cmd}`);
      if (q.netFn === 0 && q.cmd === 0x02 && this.control === 'garbage') {
        this.power = q.data[0] === 1 || q.data[0] === 2 || q.data[0] === 3;
        return this.send(randomBytes(7), r);
      }
      if (q.netFn === 0 && q.cmd === 0x02 && this.control === 'silent') {
        this.power = q.data[0] === 1 || q.data[0] === 2 || q.data[0] === 3;
        return;
      }
      let cc = 0;
      let data = Buffer.alloc(0);
      if (q.netFn === 6 && q.cmd === 0x3b) {
        if (this.mode === 'refuse-privilege') cc = 0x81;
        else data = Buffer.from([q.data[0]!]);
      } else if (q.netFn === 0 && q.cmd === 0x01) data = Buffer.from([this.power ? 1 : 0, 0, 0]);
      else if (q.netFn === 0 && q.cmd === 0x02 && this.control === 'busy') cc = 0xc0;
      else if (q.netFn === 0 && q.cmd === 0x02) this.power = q.data[0] === 1 || q.data[0] === 2 || q.data[0] === 3;
      else if (q.netFn === 6 && q.cmd === 0x3c) this.sessions.delete(p.sessionId);
      else cc = 0xc1;
      const res = encodeIpmiResponse({ netFn: q.netFn + 1, cmd: q.cmd, rqSeq: q.rqSeq, completionCode: cc, data });
      this.send(this.sessionPacket(s, res), r);
    }
  }

  /** Builds an authenticated, encrypted response by hand (independent of packet.ts / crypto.ts). */
  private sessionPacket(s: FakeSession, message: Buffer): Buffer {
    const iv = randomBytes(16);
    const padLen = (16 - ((message.length + 1) % 16)) % 16;
    const c = createCipheriv('aes-128-cbc', s.k2, iv);
    c.setAutoPadding(false);
    const payload = Buffer.concat([iv, c.update(Buffer.concat([message, Buffer.from(Array.from({ length: padLen }, (_, i) => i + 1)), Buffer.from([padLen])])), c.final()]);
    const head = Buffer.concat([Buffer.from([0x06, 0xc0]), le32(s.consoleSid), le32(++this.seq), Buffer.from([payload.length & 0xff, payload.length >> 8])]);
    const intPad = (4 - ((head.length + payload.length + 2) % 4)) % 4;
    const covered = Buffer.concat([head, payload, Buffer.alloc(intPad, 0xff), Buffer.from([intPad, 0x07])]);
    let mac = createHmac(this.hash, s.k1).update(covered).digest().subarray(0, this.authLen);
    if (this.mode === 'bad-authcode') mac = Buffer.from(mac.map((b) => b ^ 0xff));
    return Buffer.concat([Buffer.from([0x06, 0x00, 0xff, 0x07]), covered, mac]);
  }
}

async function codeOf(p: Promise<unknown>): Promise<FleetError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected a FleetError');
}

let transport: IpmiTransport;
const fakes: FakeBmc[] = [];

beforeAll(async () => {
  transport = await IpmiTransport.open();
});
afterAll(async () => {
  await transport.close();
});
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

async function fake(suite: 3 | 17, password?: string): Promise<FakeBmc> {
  const f = await FakeBmc.start(suite, 'admin', password);
  fakes.push(f);
  return f;
}

const target = (f: FakeBmc, password = f.password) => ({ address: '127.0.0.1', port: f.port, username: f.username, password });

describe.each([3, 17] as const)('full session, cipher suite %i', (suite) => {
  it('opens one session, runs several verbs in it, closes it', async () => {
    const f = await fake(suite);
    const d = createIpmiDriver(transport, target(f), { cipherSuite: suite, timeoutMs: 2000 });
    expect(await d.powerStatus()).toBe('off');
    await d.powerOn();
    expect(f.power).toBe(true);
    await d.powerOn(); // idempotent: no second Chassis Control
    expect(await d.powerStatus()).toBe('on');
    await d.powerCycle();
    await d.powerOff();
    expect(await d.powerStatus()).toBe('off');
    await d.close();
    await d.close();
    expect(f.log.filter((l) => l === 'open')).toHaveLength(1);
    expect(f.log.filter((l) => l === 'cmd:0:2')).toHaveLength(3); // on, cycle, off
    expect(f.log).toContain('cmd:6:60');
    expect(f.sessions.size).toBe(0);
  });

  it('wrong password: bmc.auth_failed from the RAKP 2 HMAC, fast, no password in the message, RAKP 3 error sent', async () => {
    const f = await fake(suite);
    const d = createIpmiDriver(transport, target(f, 'Wr0ng-Secret!'), { cipherSuite: suite, timeoutMs: 3000 });
    const t0 = Date.now();
    const e = await codeOf(d.powerStatus());
    expect(e.code).toBe('bmc.auth_failed');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(e.message).not.toContain('Wr0ng-Secret!');
    expect(e.message).not.toContain(f.password);
    await new Promise((r) => setTimeout(r, 50));
    expect(f.log).toContain('rakp3:15');
  });
});

describe('session failures', () => {
  it('unknown user: RAKP 2 status 0x0D → bmc.auth_failed', async () => {
    const f = await fake(3);
    f.mode = 'unknown-user';
    const e = await codeOf(createIpmiDriver(transport, target(f), { timeoutMs: 2000 }).powerStatus());
    expect(e.code).toBe('bmc.auth_failed');
    expect(e.message).toMatch(/unauthorized name/);
  });

  it('BMC without the cipher suite → bmc.unsupported', async () => {
    const f = await fake(3);
    const e = await codeOf(createIpmiDriver(transport, target(f), { cipherSuite: 17, timeoutMs: 2000 }).powerStatus());
    expect(e.code).toBe('bmc.unsupported');
  });

  it('privilege refused → bmc.auth_failed', async () => {
    const f = await fake(3);
    f.mode = 'refuse-privilege';
    const e = await codeOf(createIpmiDriver(transport, target(f), { timeoutMs: 2000 }).powerStatus());
    expect(e.code).toBe('bmc.auth_failed');
  });

  it('silent BMC → bmc.timeout at the deadline, after retransmits', async () => {
    const f = await fake(3);
    f.mode = 'silent';
    const before = transport.stats.retransmits;
    const t0 = Date.now();
    const e = await codeOf(createIpmiDriver(transport, target(f), { timeoutMs: 1500 }).powerStatus());
    const took = Date.now() - t0;
    expect(e.code).toBe('bmc.timeout');
    expect(took).toBeGreaterThanOrEqual(1400);
    expect(took).toBeLessThan(2500);
    expect(transport.stats.retransmits - before).toBeGreaterThanOrEqual(2); // 0, 400, 1200 ms
  });

  it('a retransmit is the same datagram: same session sequence number, same rqSeq, same bytes', async () => {
    const f = await fake(3);
    const d = createIpmiDriver(transport, target(f), { timeoutMs: 5000 });
    expect(await d.powerStatus()).toBe('off'); // session open
    f.dropStatus = 2;
    expect(await d.powerStatus()).toBe('off'); // answered on the third copy
    await d.close();
    expect(f.dropped).toHaveLength(2);
    expect(f.log.filter((l) => l === 'cmd:0:1')).toHaveLength(2);
    // The third copy (answered) is not kept, but the two dropped ones must be identical byte for byte:
    // a BMC that de-duplicates by session sequence number sees one request.
    expect(f.dropped[1]!.equals(f.dropped[0]!)).toBe(true);
    const seq = (b: Buffer) => b.readUInt32LE(4 + 6);
    expect(seq(f.dropped[0]!)).toBeGreaterThan(0);
  });

  it('a hard reset that gets no answer is sent once, never again; the power is read back and the error says so', async () => {
    const f = await fake(3);
    f.power = true;
    f.control = 'silent';
    const t0 = Date.now();
    const e = await codeOf(createIpmiDriver(transport, target(f), { timeoutMs: 3000 }).powerReset());
    expect(Date.now() - t0).toBeLessThan(4500);
    expect(f.log.filter((l) => l === 'cmd:0:2')).toHaveLength(1);
    expect(e.code).toBe('bmc.timeout');
    expect(unconfirmedOf(e)).toEqual({ power: 'on' });
    expect(e.message).toMatch(/hard reset.*not sent again.*power read back: on/);
    expect(mayRetry('power.reset', e)).toBe(false);
  });

  it('a power cycle refused by completion code is marked as not run (the caller may retry it)', async () => {
    const f = await fake(3);
    f.power = true;
    f.control = 'busy';
    const e = await codeOf(createIpmiDriver(transport, target(f), { timeoutMs: 3000 }).powerCycle());
    expect(e.code).toBe('bmc.command_failed');
    expect(provedNotRun(e)).toBe(true);
    expect(mayRetry('power.cycle', e)).toBe(true);
  });

  it('lost datagrams are retransmitted (400 ms, then 800 ms)', async () => {
    const f = await fake(17);
    f.dropFirst = 2;
    const t0 = Date.now();
    expect(await createIpmiDriver(transport, target(f), { cipherSuite: 17, timeoutMs: 5000 }).powerStatus()).toBe('off');
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1100);
    expect(took).toBeLessThan(2500);
  });

  it('an impossible port fails at once as bmc.timeout (no stuck request)', async () => {
    const t0 = Date.now();
    const e = await codeOf(createIpmiDriver(transport, { address: '127.0.0.1', port: 70000, username: 'a', password: 'b' }, { timeoutMs: 3000 }).powerStatus());
    expect(e.code).toBe('bmc.timeout');
    expect(Date.now() - t0).toBeLessThan(500);
  });

  it('a reset that fails while the session opens was never sent: marked not run, so it may fall back or be retried', async () => {
    const f = await fake(3);
    f.mode = 'garbage';
    const e = await codeOf(createIpmiDriver(transport, target(f), { timeoutMs: 3000 }).powerReset());
    expect(e.code).toBe('bmc.protocol');
    expect(provedNotRun(e)).toBe(true);
    expect(f.log.filter((l) => l === 'cmd:0:2')).toHaveLength(0);
  });

  it('registry: a reset whose answer is unreadable is not handed to the ipmitool fallback; a status read is', async () => {
    const f = await fake(3);
    f.power = true;
    f.control = 'garbage';
    const dir = mkdtempSync(join(tmpdir(), 'fleet-fallback-'));
    try {
      const tool = join(dir, 'ipmitool');
      writeFileSync(tool, `#!/bin/sh\necho "$*" >> ${join(dir, 'calls')}\necho "Chassis Power is on"\n`, { mode: 0o755 });
      const ctx = { ipmiTransport: transport, ipmi: { timeoutMs: 3000 }, ipmitool: { ipmitoolPath: tool } };
      const e = await codeOf(withBmc(['ipmi', 'ipmitool'], target(f), ctx, (d) => d.powerReset(), { action: 'power.reset' }));
      expect(e.code).toBe('bmc.protocol');
      expect(f.log.filter((l) => l === 'cmd:0:2')).toHaveLength(1);
      expect(existsSync(join(dir, 'calls'))).toBe(false);
      // The same trouble on a read falls back (ipmi_sim-independent: the fake answers garbage to everything).
      f.mode = 'garbage';
      const read = await withBmc(['ipmi', 'ipmitool'], target(f), ctx, (d) => d.powerStatus(), { action: 'power.status' });
      expect(read).toMatchObject({ value: 'on', provider: 'ipmitool' });
      expect(readFileSync(join(dir, 'calls'), 'utf8')).toContain('chassis power status');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('garbage replies → bmc.protocol quickly', async () => {
    const f = await fake(3);
    f.mode = 'garbage';
    const t0 = Date.now();
    const e = await codeOf(createIpmiDriver(transport, target(f), { timeoutMs: 3000 }).powerStatus());
    expect(e.code).toBe('bmc.protocol');
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it('a session reply whose AuthCode does not verify → bmc.protocol', async () => {
    const f = await fake(3);
    const d = createIpmiDriver(transport, target(f), { timeoutMs: 2000 });
    f.mode = 'bad-authcode';
    const e = await codeOf(d.powerStatus());
    expect(e.code).toBe('bmc.protocol');
    expect(e.message).toMatch(/AuthCode/);
  });
});

describe('stale sessions', () => {
  it('a BMC that forgot the session (reboot): the next verb reopens after a short probe and succeeds', async () => {
    const f = await fake(3);
    const d = createIpmiDriver(transport, target(f), { timeoutMs: 5000, staleAfterMs: 0, staleProbeMs: 300 });
    expect(await d.powerStatus()).toBe('off');
    f.sessions.clear();
    f.power = true;
    const t0 = Date.now();
    expect(await d.powerStatus()).toBe('on');
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1500);
    expect(d.sessionsOpened).toBe(2);
    await d.close();
  });

  it('an idle session is not probed before staleAfterMs', async () => {
    const f = await fake(3);
    const d = createIpmiDriver(transport, target(f), { timeoutMs: 1000, staleAfterMs: 60_000 });
    await d.powerStatus();
    f.sessions.clear();
    expect((await codeOf(d.powerStatus())).code).toBe('bmc.timeout');
    expect(await d.powerStatus()).toBe('off'); // dropped after the failure, reopened now
    expect(d.sessionsOpened).toBe(2);
    await d.close();
  });
});

describe('multiplexing on one socket', () => {
  it('30 BMCs and 2 drivers per BMC, concurrently', async () => {
    const bmcs = await Promise.all(Array.from({ length: 30 }, (_, i) => fake(i % 2 ? 3 : 17)));
    bmcs.forEach((b, i) => (b.power = i % 3 === 0));
    const drivers = bmcs.flatMap((b) => [0, 1].map(() => ({ b, d: createIpmiDriver(transport, target(b), { cipherSuite: b.suite, timeoutMs: 5000 }) })));
    const states = await Promise.all(drivers.map(({ d }) => d.powerStatus()));
    drivers.forEach(({ b }, i) => expect(states[i]).toBe(b.power ? 'on' : 'off'));
    await Promise.all(drivers.map(({ d }) => d.close()));
    for (const b of bmcs) expect(b.sessions.size).toBe(0);
    // Best-effort Close Sessions of earlier tests' dropped sessions may still be waiting out their 1 s.
    const end = Date.now() + 2000;
    while (transport.pendingCount > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(transport.pendingCount).toBe(0);
  });

  it('dual-stack transport (family 6) reaches IPv4 and IPv6 BMCs', async () => {
    const t6 = await IpmiTransport.open({ family: 6 });
    try {
      const f4 = await fake(3);
      f4.power = true;
      expect(await createIpmiDriver(t6, target(f4), { timeoutMs: 2000 }).powerStatus()).toBe('on');
      const f6 = await FakeBmc.start(17, 'admin', 'Fake-Pass-17', '::1').catch(() => null);
      if (!f6) return; // no IPv6 loopback here
      fakes.push(f6);
      const d = createIpmiDriver(t6, { address: '::1', port: f6.port, username: 'admin', password: f6.password }, { cipherSuite: 17, timeoutMs: 2000 });
      expect(await d.powerStatus()).toBe('off');
      await d.close();
    } finally {
      await t6.close();
    }
  });

  it('ASF presence ping', async () => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    s.on('message', (m, r) => {
      // The pong ipmi_sim sends (captured), with the ping's tag.
      const pong = Buffer.from('0600ff06000011be40420010000011be000000008100000000000000', 'hex');
      pong[9] = m[9]!;
      s.send(pong, r.port, r.address);
    });
    try {
      const p = await transport.ping({ address: '127.0.0.1', port: s.address().port }, Date.now() + 1000);
      expect(p).toMatchObject({ iana: 4542, ipmi: true });
    } finally {
      s.close();
    }
  });

  it('once and maxAttempts are counts: the wake-up at the deadline sends nothing, even when timers fire early', async () => {
    // Timers run on the event loop's cached clock, which can lag Date.now(): a timer set for the deadline may
    // fire a few ms before it. For a request marked once (a power cycle) that was a second send; for a BMC
    // scan's probe a fourth. Make every timer fire 5 ms early.
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    let received = 0;
    s.on('message', () => received++);
    const t = await IpmiTransport.open();
    const realSetTimeout = globalThis.setTimeout;
    const early = vi
      .spyOn(globalThis, 'setTimeout')
      .mockImplementation(((fn: () => void, ms?: number) => realSetTimeout(fn, Math.max(0, (ms ?? 0) - 5))) as unknown as typeof setTimeout);
    try {
      const remote = { address: '127.0.0.1', port: s.address().port };
      const start = Date.now();
      const once = t.request({ remote, key: 'x|once', deadline: start + 200, what: 'once', once: true, encode: () => Buffer.from([1]) });
      const thrice = t.request({ remote, key: 'x|thrice', deadline: start + 300, retransmitMs: [100], maxAttempts: 3, what: 'thrice', encode: () => Buffer.from([2]) });
      const [a, b] = await Promise.allSettled([once, thrice]);
      early.mockRestore();
      expect([a.status, b.status]).toEqual(['rejected', 'rejected']);
      await new Promise((r) => realSetTimeout(r, 50));
      expect(received).toBe(1 + 3);
      expect(t.stats).toMatchObject({ sent: 4, retransmits: 2 });
    } finally {
      early.mockRestore();
      await t.close();
      s.close();
    }
  });

  it('a closed transport rejects pending and new requests', async () => {
    const t = await IpmiTransport.open();
    const f = await fake(3);
    f.mode = 'silent';
    const pending = createIpmiDriver(t, target(f), { timeoutMs: 5000 }).powerStatus();
    await new Promise((r) => setTimeout(r, 50));
    await t.close();
    expect((await codeOf(pending)).code).toBe('bmc.timeout');
    expect((await codeOf(createIpmiDriver(t, target(f)).powerStatus())).code).toBe('bmc.timeout');
  });
});
