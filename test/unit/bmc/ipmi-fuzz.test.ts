/**
 * Fuzzing every IPMI decoder: random bytes, truncations, bit flips, byte
 * insertions and extensions of valid encodings. The only acceptable failure
 * is FleetError('bmc.protocol'); no RangeError/TypeError, no hang.
 */
import { describe, expect, it } from 'vitest';
import {
  CIPHER_SUITES,
  decodeAsfPong,
  decodeBootFlags,
  decodeFru,
  decodeFruBoard,
  decodeFruHeader,
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
  fruAreaLength,
  parseChannelAuthCaps,
  parseChassisStatus,
  parseDeviceId,
  parseFruInventoryAreaInfo,
  parseGetSystemBootOption,
  parseReadFruData,
  parseSystemGuid,
  verifyIpmi20Integrity,
} from '../../../server/bmc/ipmi/codec.js';
import { parseBootParam5, parseFruPrint, parseGuid, parseMcInfo, parsePowerStatus } from '../../../server/bmc/ipmitool/parse.js';
import { FleetError } from '../../../common/errors.js';

/** mulberry32: deterministic, so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function mutations(seeds: Buffer[], count: number, seed: number): Buffer[] {
  const r = rng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const out: Buffer[] = [Buffer.alloc(0)];
  for (const s of seeds) for (let i = 0; i <= s.length; i++) out.push(s.subarray(0, i)); // every truncation
  while (out.length < count) {
    const kind = int(5);
    if (kind === 0 || seeds.length === 0) {
      out.push(Buffer.from(Array.from({ length: int(120) }, () => int(256))));
      continue;
    }
    const b = Buffer.from(seeds[int(seeds.length)]!);
    if (kind === 1) {
      for (let k = 0, n = 1 + int(4); k < n && b.length; k++) {
        const j = int(b.length);
        b[j] = b[j]! ^ (1 << int(8));
      }
      out.push(b);
    } else if (kind === 2) {
      for (let k = 0, n = 1 + int(4); k < n && b.length; k++) b[int(b.length)] = [0, 0xff, 0x7f, 0x80, int(256)][int(5)]!;
      out.push(b);
    } else if (kind === 3) {
      const at = int(b.length + 1);
      out.push(Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + int(8) }, () => int(256))), b.subarray(at)]));
    } else {
      out.push(Buffer.concat([b.subarray(0, int(b.length + 1)), Buffer.from(Array.from({ length: int(40) }, () => int(256)))]));
    }
  }
  return out;
}

function onlyProtocolErrors(name: string, inputs: Buffer[], decode: (b: Buffer) => unknown): void {
  const started = Date.now();
  let ok = 0;
  for (const input of inputs) {
    try {
      decode(input);
      ok++;
    } catch (e) {
      if (!(e instanceof FleetError) || e.code !== 'bmc.protocol') {
        throw new Error(`${name}: input ${input.toString('hex')} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
      }
    }
  }
  // No hang: thousands of inputs finish quickly.
  expect(Date.now() - started).toBeLessThan(5000);
  expect(ok + 0).toBeGreaterThanOrEqual(0);
}

const N = 4000;
const k1 = Buffer.alloc(20, 1);
const k2 = Buffer.alloc(20, 2);
const suite3 = CIPHER_SUITES[3];
const suite17 = CIPHER_SUITES[17];
const msg = encodeIpmiResponse({ netFn: 1, cmd: 1, rqSeq: 3, completionCode: 0, data: Buffer.from([1, 0, 0]) });
const fru = encodeFru({ board: { manufacturer: 'A', product: 'B', serial: 'C' }, product: { manufacturer: 'D', name: 'E', serial: 'F' } });

const packets = [
  encodeAsfPong(1),
  encodeIpmi15Packet({ payload: msg }),
  encodeIpmi20Packet({ payloadType: 0x11, sessionId: 0, sessionSeq: 0, payload: encodeOpenSessionResponse({ tag: 1, status: 0, maxPrivilege: 4, consoleSessionId: 5, bmcSessionId: 6, authAlg: 1, integrityAlg: 1, confAlg: 1 }) }),
  encodeIpmi20Packet({ payloadType: 0, sessionId: 7, sessionSeq: 8, payload: encryptAesCbc128(k2, msg), encrypted: true, integrity: { suite: suite3, k1 } }),
  encodeIpmi20Packet({ payloadType: 0, sessionId: 7, sessionSeq: 8, payload: encryptAesCbc128(k2, msg), encrypted: true, integrity: { suite: suite17, k1 } }),
  Buffer.concat([Buffer.from([0x06, 0, 0xff, 0x07, 0x06, 0x02, 1, 2, 3, 4, 5, 6]), Buffer.alloc(12)]),
];

describe('decoder fuzzing', () => {
  it('decodeRmcpPacket, ASF pong, integrity check and decryption of whatever decodes', () => {
    onlyProtocolErrors('rmcp', mutations(packets, N * 2, 1), (b) => {
      const p = decodeRmcpPacket(b);
      if (p.kind === 'asf') decodeAsfPong(p);
      if (p.kind === 'ipmi20') {
        for (const s of [suite3, suite17]) {
          try {
            verifyIpmi20Integrity(p, s, k1);
          } catch (e) {
            if (!(e instanceof FleetError) || e.code !== 'bmc.protocol') throw e;
          }
        }
        decodeIpmiResponse(decryptAesCbc128(k2, p.payload));
      }
      if (p.kind === 'ipmi15') decodeIpmiResponse(p.payload);
    });
  });

  it('IPMI request/response frames', () => {
    const seeds = [msg, encodeIpmiRequest({ netFn: 0, cmd: 2, rqSeq: 1, data: Buffer.from([1]) })];
    onlyProtocolErrors('response', mutations(seeds, N, 2), decodeIpmiResponse);
    onlyProtocolErrors('request', mutations(seeds, N, 3), decodeIpmiRequest);
  });

  it('Open Session and RAKP payloads', () => {
    const seeds = [
      encodeOpenSessionRequest({ tag: 1, maxPrivilege: 4, consoleSessionId: 2, authAlg: 1, integrityAlg: 1, confAlg: 1 }),
      encodeOpenSessionResponse({ tag: 1, status: 0, maxPrivilege: 4, consoleSessionId: 2, bmcSessionId: 3, authAlg: 1, integrityAlg: 1, confAlg: 1 }),
      encodeRakp1({ tag: 1, bmcSessionId: 2, consoleRandom: Buffer.alloc(16), role: 0x14, username: Buffer.from('admin') }),
      encodeRakp2({ tag: 1, status: 0, consoleSessionId: 2, bmcRandom: Buffer.alloc(16), bmcGuid: Buffer.alloc(16), authCode: Buffer.alloc(32) }),
      encodeRakp3({ tag: 1, status: 0, bmcSessionId: 2, authCode: Buffer.alloc(20) }),
      encodeRakp4({ tag: 1, status: 0, consoleSessionId: 2, integrityCheckValue: Buffer.alloc(16) }),
    ];
    const inputs = mutations(seeds, N, 4);
    onlyProtocolErrors('osreq', inputs, decodeOpenSessionRequest);
    onlyProtocolErrors('osres', inputs, decodeOpenSessionResponse);
    onlyProtocolErrors('rakp1', inputs, decodeRakp1);
    onlyProtocolErrors('rakp2/20', inputs, (b) => decodeRakp2(b, 20));
    onlyProtocolErrors('rakp2/32', inputs, (b) => decodeRakp2(b, 32));
    onlyProtocolErrors('rakp3', inputs, decodeRakp3);
    onlyProtocolErrors('rakp4/12', inputs, (b) => decodeRakp4(b, 12));
    onlyProtocolErrors('rakp4/16', inputs, (b) => decodeRakp4(b, 16));
  });

  it('command response parsers', () => {
    const seeds = [
      Buffer.from('0180140200000000', 'hex'),
      Buffer.from('010000', 'hex'),
      Buffer.from('0003090802 9f911200020f'.replace(' ', ''), 'hex'),
      Buffer.from('01050004000000', 'hex'),
      encodeBootFlags({ device: 'pxe', persistent: true, efi: true }),
      Buffer.alloc(16, 0xab),
      Buffer.from('000100', 'hex'),
      Buffer.from('03aabbcc', 'hex'),
    ];
    const inputs = mutations(seeds, N, 5);
    for (const [name, fn] of Object.entries({
      parseChannelAuthCaps,
      parseChassisStatus,
      parseDeviceId,
      parseGetSystemBootOption,
      decodeBootFlags,
      parseSystemGuid,
      parseFruInventoryAreaInfo,
      parseReadFruData,
    })) {
      onlyProtocolErrors(name, inputs, fn as (b: Buffer) => unknown);
    }
  });

  it('FRU decoders', () => {
    const inputs = mutations([fru, fru.subarray(8)], N, 6);
    onlyProtocolErrors('fru', inputs, decodeFru);
    onlyProtocolErrors('fruHeader', inputs, decodeFruHeader);
    onlyProtocolErrors('fruBoard', inputs, decodeFruBoard);
    onlyProtocolErrors('fruProduct', inputs, decodeFruProduct);
    onlyProtocolErrors('fruAreaLength', inputs, fruAreaLength);
  });

  it('AES-CBC-128 decryption', () => {
    const seeds = [encryptAesCbc128(k2, msg), encryptAesCbc128(k2, Buffer.alloc(0))];
    onlyProtocolErrors('aes', mutations(seeds, N, 7), (b) => decryptAesCbc128(k2, b));
  });

  it('ipmitool output parsers (random text)', () => {
    const r = rng(8);
    const samples = ['Chassis Power is on', 'Boot parameter data: 0004000000', 'System GUID   : efcdab89-6745-2301-efcd-ab89674523a1', ' Board Mfg : Acme'];
    for (let i = 0; i < N; i++) {
      const s = samples[Math.floor(r() * samples.length)]!;
      const cut = s.slice(0, Math.floor(r() * (s.length + 1))) + String.fromCharCode(...Array.from({ length: Math.floor(r() * 10) }, () => Math.floor(r() * 128)));
      for (const fn of [parsePowerStatus, parseBootParam5, parseGuid, parseMcInfo, parseFruPrint]) {
        try {
          fn(cut);
        } catch (e) {
          if (!(e instanceof FleetError) || e.code !== 'bmc.protocol') throw new Error(`${fn.name}(${JSON.stringify(cut)}) threw ${String(e)}`);
        }
      }
    }
  });
});
