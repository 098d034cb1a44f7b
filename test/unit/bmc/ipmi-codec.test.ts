import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BootParam,
  CIPHER_SUITES,
  authTypeNames,
  encodeChannelAuthCaps,
  Cmd,
  NetFn,
  PayloadType,
  checksum,
  decodeAsfPong,
  decodeBootFlags,
  decodeFru,
  decodeFruBoard,
  decodeFruProduct,
  decodeIpmiRequest,
  decodeIpmiResponse,
  decodeOpenSessionRequest,
  decodeOpenSessionResponse,
  decodeRakp1,
  decodeRakp2,
  decodeRakp3,
  decodeRakp4,
  decodeRmcpPacket,
  decryptAesCbc128,
  encodeAsfPing,
  encodeAsfPong,
  encodeBootFlags,
  encodeFru,
  encodeIpmi15Packet,
  encodeIpmi20Packet,
  encodeIpmiRequest,
  encodeIpmiResponse,
  encodeOpenSessionRequest,
  encodeOpenSessionResponse,
  encodeRakp1,
  encodeRakp2,
  encodeRakp3,
  encodeRakp4,
  encryptAesCbc128,
  getChannelAuthCaps,
  getSystemBootOption,
  parseChannelAuthCaps,
  parseChassisStatus,
  parseDeviceId,
  parseFruInventoryAreaInfo,
  parseGetSystemBootOption,
  parseReadFruData,
  parseSystemGuid,
  encodeSystemGuid,
  setSystemBootOption,
  verifyIpmi20Integrity,
} from '../../../server/bmc/ipmi/codec.js';
import { FleetError } from '../../../common/errors.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function protocolErr(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('bmc.protocol');
    return e as FleetError;
  }
  throw new Error('expected a bmc.protocol error');
}

describe('RMCP / ASF', () => {
  it('encodes the presence ping byte for byte', () => {
    expect(encodeAsfPing(0x42)).toEqual(hex('06 00 ff 06  00 00 11 be  80 42 00 00'));
  });

  it('round-trips a presence pong', () => {
    const pkt = decodeRmcpPacket(encodeAsfPong(7, { entities: 0x81, interactions: 0 }));
    expect(pkt.kind).toBe('asf');
    if (pkt.kind !== 'asf') return;
    expect(decodeAsfPong(pkt)).toMatchObject({ tag: 7, iana: 4542, ipmi: true });
  });

  it('rejects RMCP version, ACK and class errors', () => {
    protocolErr(() => decodeRmcpPacket(hex('07 00 ff 07 00')));
    protocolErr(() => decodeRmcpPacket(hex('06 00 ff 87 00')));
    protocolErr(() => decodeRmcpPacket(hex('06 00 ff 08 00')));
    protocolErr(() => decodeRmcpPacket(hex('06 00 ff')));
  });
});

describe('IPMI messages', () => {
  it('encodes Get Channel Auth Caps exactly as ipmitool sends it (captured bytes)', () => {
    // ipmitool -I lanplus -v -v -v -v: rsAddr 20, netFn 06, rqAddr 81, rqSeq 00, cmd 38, data 8e 04.
    const spec = getChannelAuthCaps(4);
    const pkt = encodeIpmi15Packet({ payload: encodeIpmiRequest({ ...spec, rqSeq: 0 }) });
    expect(pkt).toEqual(hex('06 00 ff 07  00  00000000 00000000  09  20 18 c8 81 00 38 8e 04 b5'));
  });

  it('round-trips requests and responses with checksums', () => {
    const req = encodeIpmiRequest({ netFn: NetFn.CHASSIS, cmd: Cmd.CHASSIS_CONTROL, rqSeq: 17, data: Buffer.from([1]) });
    expect(checksum(req, 3, req.length - 1)).toBe(req[req.length - 1]);
    expect(decodeIpmiRequest(req)).toMatchObject({ rsAddr: 0x20, netFn: 0, rqAddr: 0x81, rqSeq: 17, cmd: 2, data: Buffer.from([1]) });
    const res = encodeIpmiResponse({ netFn: 1, cmd: 1, rqSeq: 63, completionCode: 0, data: Buffer.from([0x01, 0x00, 0x40]) });
    expect(decodeIpmiResponse(res)).toMatchObject({ netFn: 1, cmd: 1, rqSeq: 63, completionCode: 0, data: Buffer.from([0x01, 0x00, 0x40]) });
  });

  it('rejects bad checksums, requests posing as responses and short frames', () => {
    const res = encodeIpmiResponse({ netFn: 7, cmd: 0x38, rqSeq: 1, completionCode: 0 });
    const bad1 = Buffer.from(res);
    bad1[2] = bad1[2]! ^ 1;
    protocolErr(() => decodeIpmiResponse(bad1));
    const bad2 = Buffer.from(res);
    bad2[bad2.length - 1] = bad2[bad2.length - 1]! ^ 1;
    protocolErr(() => decodeIpmiResponse(bad2));
    protocolErr(() => decodeIpmiResponse(encodeIpmiRequest({ netFn: 6, cmd: 1, rqSeq: 1 })));
    protocolErr(() => decodeIpmiResponse(res.subarray(0, 6)));
  });

  it('round-trips the IPMI v1.5 session wrapper', () => {
    const payload = encodeIpmiResponse({ netFn: 7, cmd: 0x38, rqSeq: 0, completionCode: 0, data: hex('01 80 14 02 000000 00') });
    const pkt = decodeRmcpPacket(encodeIpmi15Packet({ payload }));
    expect(pkt).toMatchObject({ kind: 'ipmi15', authType: 0, sessionId: 0, sessionSeq: 0 });
    if (pkt.kind !== 'ipmi15') return;
    const caps = parseChannelAuthCaps(decodeIpmiResponse(pkt.payload).data);
    expect(caps).toMatchObject({ channel: 1, ipmi20: true, nonNullUsernames: true });
  });
});

/**
 * Byte vectors captured from OpenIPMI's ipmi_sim (lan.conf: allowed_auths
 * none md2 md5 straight, one non-null admin user) on loopback: what
 * `fleet discover bmc` reads before any session (IPMI v2.0 §13.2.4, §22.13).
 */
describe('pre-session answers of ipmi_sim (captured bytes)', () => {
  const PONG = hex('06 00 ff 06  00 00 11 be  40 42 00 10  00 00 11 be  00 00 00 00  81 00  00 00 00 00 00 00');
  const CAPS_V20 = hex('06 00 ff 07  00  00000000 00000000  10  81 1c 63 20 00 38  00 01 97 04 03 000000 00  09');
  const CAPS_V15 = hex('06 00 ff 07  00  00000000 00000000  10  81 1c 63 20 04 38  00 01 17 04 00 000000 00  88');

  it('decodes the presence pong: ASF IANA 4542, no OEM, IPMI supported (entities bit 7), ASF 1.0', () => {
    const pkt = decodeRmcpPacket(PONG);
    if (pkt.kind !== 'asf') throw new Error('expected ASF');
    expect(decodeAsfPong(pkt)).toEqual({ tag: 0x42, iana: 4542, oem: 0, entities: 0x81, interactions: 0, ipmi: true });
    expect(encodeAsfPong(0x42, { entities: 0x81, interactions: 0 })).toEqual(PONG);
  });

  it('decodes Get Channel Auth Caps with the v2.0 extended data: v1.5 and v2.0, auth types none/md2/md5/password', () => {
    const pkt = decodeRmcpPacket(CAPS_V20);
    if (pkt.kind !== 'ipmi15') throw new Error('expected IPMI v1.5 framing');
    const res = decodeIpmiResponse(pkt.payload);
    expect(res).toMatchObject({ netFn: 7, cmd: 0x38, rqSeq: 0, completionCode: 0 });
    const caps = parseChannelAuthCaps(res.data);
    expect(caps).toEqual({
      channel: 1,
      authTypes: 0x97,
      ipmi20: true,
      ipmi15: true,
      anonymousLogin: false,
      nullUsernames: false,
      nonNullUsernames: true,
      userLevelAuthDisabled: false,
      perMessageAuthDisabled: false,
      kgSet: false,
      oemId: 0,
    });
    expect(authTypeNames(caps.authTypes)).toEqual(['none', 'md2', 'md5', 'password']);
    expect(encodeChannelAuthCaps({ channel: 1, authTypes: 0x97, status: 0x04, ipmi20: true })).toEqual(res.data);
  });

  it('decodes the plain IPMI v1.5 answer (no bit 7 asked, none given): v1.5 only, K_G not reported', () => {
    const pkt = decodeRmcpPacket(CAPS_V15);
    if (pkt.kind !== 'ipmi15') throw new Error('expected IPMI v1.5 framing');
    const res = decodeIpmiResponse(pkt.payload);
    expect(res.rqSeq).toBe(1);
    const caps = parseChannelAuthCaps(res.data);
    expect(caps).toMatchObject({ authTypes: 0x17, ipmi20: false, ipmi15: true, kgSet: false });
    expect(encodeChannelAuthCaps({ channel: 1, authTypes: 0x17, status: 0x04 })).toEqual(res.data);
  });

  it('asks for the v2.0 data with bit 7 of the channel byte, and without it when told to', () => {
    expect(getChannelAuthCaps(4).data).toEqual(hex('8e 04'));
    expect(getChannelAuthCaps(4, 0x0e, false).data).toEqual(hex('0e 04'));
  });

  it('reads the status bits, K_G, the OEM IANA (LS byte first) and a v2.0-only channel', () => {
    const caps = parseChannelAuthCaps(hex('02 a0 3f 02 a2 02 00 00'));
    expect(caps).toMatchObject({
      channel: 2,
      ipmi20: true,
      ipmi15: false,
      anonymousLogin: true,
      nullUsernames: true,
      nonNullUsernames: true,
      userLevelAuthDisabled: true,
      perMessageAuthDisabled: true,
      kgSet: true,
      oemId: 674,
    });
    expect(authTypeNames(caps.authTypes)).toEqual(['oem']);
    expect(authTypeNames(0)).toEqual([]);
  });

  it('refuses truncated answers with bmc.protocol, never a RangeError', () => {
    for (let n = 0; n < 4; n++) protocolErr(() => parseChannelAuthCaps(hex('01 97 04 03').subarray(0, n)));
    // A pong cut inside its data: the RMCP length says 16, 8 bytes follow.
    protocolErr(() => decodeRmcpPacket(PONG.subarray(0, 20)));
    // A pong whose own length is honest but too short for the pong fields.
    const short = hex('06 00 ff 06  00 00 11 be  40 42 00 04  00 00 11 be');
    const pkt = decodeRmcpPacket(short);
    if (pkt.kind !== 'asf') throw new Error('expected ASF');
    protocolErr(() => decodeAsfPong(pkt));
  });
});

describe('IPMI v2.0 session wrapper', () => {
  const k1 = Buffer.alloc(32, 0x11);
  const k2 = Buffer.alloc(32, 0x22);

  it('round-trips an unauthenticated pre-session payload', () => {
    const payload = Buffer.from([1, 2, 3]);
    const pkt = decodeRmcpPacket(encodeIpmi20Packet({ payloadType: PayloadType.OPEN_SESSION_REQUEST, sessionId: 0, sessionSeq: 0, payload }));
    expect(pkt).toMatchObject({ kind: 'ipmi20', payloadType: 0x10, encrypted: false, authenticated: false, payload });
  });

  for (const suite of [CIPHER_SUITES[3], CIPHER_SUITES[17]]) {
    it(`authenticates and encrypts with suite ${suite.id}; layout checked byte by byte`, () => {
      const iv = Buffer.alloc(16, 0xab);
      const message = encodeIpmiRequest({ netFn: 0, cmd: 1, rqSeq: 5 });
      const payload = encryptAesCbc128(k2, message, iv);
      const wire = encodeIpmi20Packet({ payloadType: 0, sessionId: 0x01020304, sessionSeq: 9, payload, encrypted: true, integrity: { suite, k1 } });
      // RMCP header, auth type 6, payload type 0xC0, session id LE, seq LE, length LE.
      expect(wire.subarray(0, 16)).toEqual(Buffer.concat([hex('06 00 ff 07 06 c0 04 03 02 01 09 00 00 00'), Buffer.from([payload.length, 0])]));
      const tail = wire.subarray(16 + payload.length);
      const padLength = tail[tail.length - suite.integrityLength - 2]!;
      expect(tail[tail.length - suite.integrityLength - 1]).toBe(0x07);
      expect(tail.subarray(0, padLength)).toEqual(Buffer.alloc(padLength, 0xff));
      // Integrity data (auth type … next header) is a multiple of 4 bytes.
      const covered = wire.subarray(4, wire.length - suite.integrityLength);
      expect(covered.length % 4).toBe(0);
      const expected = createHmac(suite.hash, k1).update(covered).digest().subarray(0, suite.integrityLength);
      expect(wire.subarray(wire.length - suite.integrityLength)).toEqual(expected);

      const pkt = decodeRmcpPacket(wire);
      if (pkt.kind !== 'ipmi20') throw new Error('not ipmi20');
      expect(pkt).toMatchObject({ encrypted: true, authenticated: true, sessionId: 0x01020304, sessionSeq: 9 });
      verifyIpmi20Integrity(pkt, suite, k1);
      expect(decryptAesCbc128(k2, pkt.payload)).toEqual(message);

      const tampered = Buffer.from(wire);
      tampered[20] = tampered[20]! ^ 0x01;
      const t = decodeRmcpPacket(tampered);
      if (t.kind !== 'ipmi20') throw new Error('not ipmi20');
      protocolErr(() => verifyIpmi20Integrity(t, suite, k1));
      protocolErr(() => verifyIpmi20Integrity(pkt, suite, Buffer.alloc(32, 0x12)));
    });
  }

  it('AES-CBC-128 pads with 1, 2, 3 … N then N, to a multiple of 16 (checked with node:crypto directly)', () => {
    const key = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    const iv = Buffer.alloc(16, 7);
    for (let len = 0; len <= 40; len++) {
      const plain = Buffer.alloc(len, 0x5a);
      const enc = encryptAesCbc128(key, plain, iv);
      expect(enc.subarray(0, 16)).toEqual(iv);
      const d = createDecipheriv('aes-128-cbc', key, iv);
      d.setAutoPadding(false);
      const raw = Buffer.concat([d.update(enc.subarray(16)), d.final()]);
      expect(raw.length % 16).toBe(0);
      const n = raw[raw.length - 1]!;
      expect(raw.length).toBe(len + n + 1);
      expect([...raw.subarray(len, len + n)]).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(decryptAesCbc128(key, enc)).toEqual(plain);
    }
  });

  it('decrypts a payload produced independently by node:crypto', () => {
    const key = Buffer.alloc(16, 0x33);
    const iv = Buffer.alloc(16, 0x44);
    const plain = Buffer.from('hello ipmi', 'latin1');
    const padded = Buffer.concat([plain, Buffer.from([1, 2, 3, 4, 5, 5])]);
    const c = createCipheriv('aes-128-cbc', key, iv);
    c.setAutoPadding(false);
    const payload = Buffer.concat([iv, c.update(padded), c.final()]);
    expect(decryptAesCbc128(key, payload)).toEqual(plain);
    protocolErr(() => decryptAesCbc128(key, payload.subarray(0, 20)));
    protocolErr(() => decryptAesCbc128(key, iv));
  });
});

describe('Open Session and RAKP payloads', () => {
  it('encodes the Open Session Request for suite 3 as the spec lays it out', () => {
    const s = CIPHER_SUITES[3];
    const b = encodeOpenSessionRequest({ tag: 0, maxPrivilege: 4, consoleSessionId: 0xa0a2a3a4, authAlg: s.authAlg, integrityAlg: s.integrityAlg, confAlg: s.confAlg });
    expect(b).toEqual(hex('00 04 0000 a4a3a2a0  00000008 01000000  01000008 01000000  02000008 01000000'));
    expect(decodeOpenSessionRequest(b)).toEqual({ tag: 0, maxPrivilege: 4, consoleSessionId: 0xa0a2a3a4, authAlg: 1, integrityAlg: 1, confAlg: 1 });
  });

  it('round-trips Open Session Responses, including short error forms', () => {
    const ok = { tag: 3, status: 0, maxPrivilege: 4, consoleSessionId: 11, bmcSessionId: 22, authAlg: 3, integrityAlg: 4, confAlg: 1 };
    expect(decodeOpenSessionResponse(encodeOpenSessionResponse(ok))).toEqual(ok);
    expect(decodeOpenSessionResponse(encodeOpenSessionResponse({ tag: 3, status: 0x11, maxPrivilege: 0, consoleSessionId: 11 }))).toEqual({
      tag: 3,
      status: 0x11,
      maxPrivilege: 0,
      consoleSessionId: 11,
    });
    expect(decodeOpenSessionResponse(Buffer.from([9, 0x04]))).toMatchObject({ tag: 9, status: 4 });
  });

  it('round-trips RAKP 1–4', () => {
    const r1 = { tag: 1, bmcSessionId: 0x1234, consoleRandom: Buffer.alloc(16, 1), role: 0x14, username: Buffer.from('admin') };
    const e1 = encodeRakp1(r1);
    expect(e1.length).toBe(28 + 5);
    expect(decodeRakp1(e1)).toEqual(r1);
    for (const len of [20, 32]) {
      const r2 = { tag: 2, status: 0, consoleSessionId: 7, bmcRandom: Buffer.alloc(16, 2), bmcGuid: Buffer.alloc(16, 3), authCode: Buffer.alloc(len, 4) };
      expect(decodeRakp2(encodeRakp2(r2), len)).toEqual(r2);
      protocolErr(() => decodeRakp2(encodeRakp2(r2).subarray(0, 40 + len - 1), len));
    }
    expect(decodeRakp2(encodeRakp2({ tag: 2, status: 0x0d, consoleSessionId: 7 }), 20)).toEqual({ tag: 2, status: 0x0d, consoleSessionId: 7 });
    const r3 = { tag: 3, status: 0, bmcSessionId: 9, authCode: Buffer.alloc(20, 5) };
    expect(decodeRakp3(encodeRakp3(r3))).toEqual(r3);
    for (const len of [12, 16]) {
      const r4 = { tag: 4, status: 0, consoleSessionId: 8, integrityCheckValue: Buffer.alloc(len, 6) };
      expect(decodeRakp4(encodeRakp4(r4), len)).toEqual(r4);
    }
    expect(decodeRakp4(Buffer.from([4, 0x0f, 0, 0, 8, 0, 0, 0]), 12)).toMatchObject({ status: 0x0f, consoleSessionId: 8 });
  });
});

describe('command data', () => {
  it('boot flags: encode and decode every device, flag combinations', () => {
    const devices = ['none', 'pxe', 'disk', 'cdrom', 'bios'] as const;
    const selectors = [0x00, 0x04, 0x08, 0x14, 0x18];
    devices.forEach((device, i) => {
      for (const persistent of [false, true]) {
        for (const efi of [false, true]) {
          const b = encodeBootFlags({ device, persistent, efi });
          expect(b[0]).toBe(0x80 | (persistent ? 0x40 : 0) | (efi ? 0x20 : 0));
          expect(b[1]).toBe(selectors[i]);
          expect(decodeBootFlags(b)).toMatchObject({ valid: true, persistent, efi, device });
        }
      }
    });
    // ipmitool's "chassis bootdev pxe options=persistent,efiboot" sends e0 04 00 00 00.
    expect(encodeBootFlags({ device: 'pxe', persistent: true, efi: true })).toEqual(hex('e0 04 00 00 00'));
    // ipmi_sim answers 00 04 00 00 00: device known, flags dropped.
    expect(decodeBootFlags(hex('0004000000'))).toMatchObject({ valid: false, device: 'pxe' });
    expect(decodeBootFlags(hex('803c000000'))).toMatchObject({ device: null, selector: 0x3c });
  });

  it('boot option requests and the Get System Boot Options response', () => {
    expect(setSystemBootOption(BootParam.BOOT_FLAGS, encodeBootFlags({ device: 'disk', persistent: false, efi: false })).data).toEqual(hex('05 80 08 00 00 00'));
    expect(getSystemBootOption(5).data).toEqual(hex('05 00 00'));
    expect(parseGetSystemBootOption(hex('01 05 00 14 00 00 00'))).toEqual({ version: 1, param: 5, invalid: false, data: hex('0014000000') });
    expect(parseGetSystemBootOption(hex('01 85'))).toMatchObject({ invalid: true, param: 5 });
  });

  it('Get Device ID as ipmi_sim answers it (firmware 9.08, MontaVista 4753)', () => {
    const d = parseDeviceId(hex('00 03 09 08 02 9f 91 12 00 02 0f'));
    expect(d).toMatchObject({ deviceId: 0, deviceRevision: 3, firmware: '9.08', ipmiVersion: '2.0', manufacturerId: 4753, productId: 0x0f02 });
    protocolErr(() => parseDeviceId(hex('00 03 09')));
  });

  it('System GUID in the SMBIOS byte order, as dmidecode shows the UUID and `ipmitool mc guid smbios` prints it', () => {
    // SMBIOS 2.6+ §7.2.1: UUID 00112233-4455-6677-8899-aabbccddeeff is stored as 33 22 11 00 55 44 77 66 88 99 aa bb cc dd ee ff.
    expect(parseSystemGuid(hex('33221100 5544 7766 8899aabbccddeeff'))).toBe('00112233-4455-6677-8899-aabbccddeeff');
    expect(encodeSystemGuid('00112233-4455-6677-8899-AABBCCDDEEFF')).toEqual(hex('33221100 5544 7766 8899aabbccddeeff'));
    // lan.conf guid a123456789abcdef0123456789abcdef → ipmitool mc guid smbios: 674523a1-ab89-efcd-0123-456789abcdef
    expect(parseSystemGuid(hex('a123456789abcdef0123456789abcdef'))).toBe('674523a1-ab89-efcd-0123-456789abcdef');
    protocolErr(() => parseSystemGuid(hex('a1234567')));
    expect(() => encodeSystemGuid('not-a-uuid')).toThrow(FleetError);
  });

  it('chassis status, FRU info, FRU read', () => {
    expect(parseChassisStatus(hex('01 00 00'))).toMatchObject({ powerOn: true });
    expect(parseChassisStatus(hex('40'))).toMatchObject({ powerOn: false, restorePolicy: 2 });
    expect(parseFruInventoryAreaInfo(hex('0001 00'))).toEqual({ size: 256, byWords: false });
    expect(parseReadFruData(hex('03 aa bb cc'))).toEqual(hex('aabbcc'));
    protocolErr(() => parseReadFruData(hex('05 aa')));
    protocolErr(() => parseChassisStatus(Buffer.alloc(0)));
  });
});

describe('FRU', () => {
  const fru = {
    board: { manufacturer: 'Acme', product: 'Board X', serial: 'B123', partNumber: 'P1' },
    product: { manufacturer: 'Acme Corp', name: 'Rack 9000', partNumber: 'PN', version: 'v1', serial: 'SN0001', assetTag: 'AT' },
  };

  it('round-trips board and product areas', () => {
    const img = encodeFru(fru);
    expect(img.length % 8).toBe(0);
    expect(checksum(img, 0, 7)).toBe(img[7]);
    expect(decodeFru(img)).toEqual(fru);
    expect(decodeFru(encodeFru({ product: fru.product }))).toEqual({ product: fru.product });
  });

  it('decodes 6-bit packed ASCII and BCD-plus fields', () => {
    // "ABC" packed 6-bit: A=0x21,B=0x22,C=0x23 → bits: 100001 100010 100011 → 0x21|0x22<<6|0x23<<12
    const v = 0x21 | (0x22 << 6) | (0x23 << 12);
    const packed = Buffer.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff]);
    const area = Buffer.alloc(16);
    Buffer.from([0x01, 0x02, 0x19, 0x83, ...packed, 0x42, 0x12, 0x34, 0xc1]).copy(area);
    area[15] = checksum(area, 0, 15);
    expect(decodeFruProduct(area)).toEqual({ manufacturer: 'ABC', name: '1234' });
  });

  it('rejects a bad header and an area longer than the data', () => {
    const img = encodeFru(fru);
    const bad = Buffer.from(img);
    bad[7] = bad[7]! ^ 1;
    protocolErr(() => decodeFru(bad));
    const board = img.subarray(8);
    const cut = Buffer.from(board.subarray(0, 8));
    protocolErr(() => decodeFruBoard(cut));
  });

  it('malformed FRUs give a clear bmc.protocol error naming what is wrong, never a crash', () => {
    const img = encodeFru(fru);
    const bad = Buffer.from(img);
    bad[7] = bad[7]! ^ 1;
    expect(protocolErr(() => decodeFru(bad)).message).toBe('FRU header: bad checksum');
    expect(protocolErr(() => decodeFru(img.subarray(0, 5))).message).toMatch(/^FRU header: truncated at common header/);
    const v2 = Buffer.from(img);
    v2[0] = 0x02;
    v2[7] = checksum(v2, 0, 7);
    expect(protocolErr(() => decodeFru(v2)).message).toBe('FRU header: unsupported format version 2');
    // The header points past the data.
    const far = Buffer.from(img.subarray(0, 8));
    far[3] = 0x20;
    far[7] = checksum(far, 0, 7);
    expect(protocolErr(() => decodeFru(far)).message).toBe('FRU: area offset 256 past the end (8 bytes)');
    // A field whose type/length byte claims more bytes than the area holds (8-bit, 63 bytes, in a 16-byte area).
    const area = Buffer.alloc(16);
    Buffer.from([0x01, 0x02, 0x19, 0xff, 0x41, 0x42]).copy(area);
    expect(protocolErr(() => decodeFruProduct(area)).message).toMatch(/^FRU product area: truncated at field/);
    // An area whose length byte is 0.
    expect(protocolErr(() => decodeFruBoard(Buffer.from([0x01, 0x00, 0, 0, 0, 0, 0, 0]))).message).toMatch(/area length 0 outside the data/);
  });

  it('8-bit fields drop trailing NULs and blanks; an empty field (0xC0) is absent; BCD plus uses its own alphabet', () => {
    const area = Buffer.alloc(24);
    // Product area: language; manufacturer 8-bit "AB\0\0 "; name empty; part number BCD plus 0x1b 0xcd = "1-.:"; end.
    Buffer.from([0x01, 0x03, 0x19, 0xc5, 0x41, 0x42, 0x00, 0x00, 0x20, 0xc0, 0x42, 0x1b, 0xcd, 0xc1]).copy(area);
    area[23] = checksum(area, 0, 23);
    expect(decodeFruProduct(area)).toEqual({ manufacturer: 'AB', partNumber: '1-.:' });
  });
});
