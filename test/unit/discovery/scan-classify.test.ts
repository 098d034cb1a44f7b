/** What the answers of one address mean (server/discovery/scan-classify.ts): table tests over raw probe outcomes. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AsfPong } from '../../../server/bmc/ipmi/codec.js';
import { encodeChannelAuthCaps } from '../../../server/bmc/ipmi/codec.js';
import {
  type IpmiRaw,
  type RedfishRaw,
  type Settled,
  classifyHost,
  classifyIpmi,
  classifyRedfish,
  cleanText,
  countVerdicts,
  enterpriseName,
} from '../../../server/discovery/scan-classify.js';
import { MOCKUPS_DIR } from '../../helpers/redfish-double.js';

const TIMEOUT: Settled<never> = { error: { code: 'bmc.timeout', message: 'IPMI ASF presence ping: no answer from 10.0.0.1:623 after 3 attempt(s)' } };
const GARBAGE: Settled<never> = { error: { code: 'bmc.protocol', message: 'IPMI ASF presence ping: 10.0.0.1:623 answered with an invalid packet: RMCP: unsupported version 0x47' } };
const pong = (o: Partial<AsfPong> = {}): Settled<AsfPong> => ({ ok: { tag: 1, iana: 4542, oem: 0, entities: 0x81, interactions: 0, ipmi: true, ...o } });
/** ipmi_sim's answer (captured): channel 1, none/md2/md5/password, v1.5 and v2.0, non-null user names. */
const SIM_CAPS = { ok: { completionCode: 0, data: encodeChannelAuthCaps({ channel: 1, authTypes: 0x97, status: 0x04, ipmi20: true }) } };
const cc = (code: number) => ({ ok: { completionCode: code, data: Buffer.alloc(0) } });

describe('classifyIpmi', () => {
  it('silent when neither the ping nor Get Channel Auth Caps is answered', () => {
    const f = classifyIpmi({ pong: TIMEOUT, caps: TIMEOUT }, 623);
    expect(f).toMatchObject({ verdict: 'silent', port: 623, pong: null, versions: [], notes: ['no RMCP answer on UDP port 623'] });
  });

  it('a BMC: pong claiming IPMI and the capabilities (ipmi_sim)', () => {
    const f = classifyIpmi({ pong: pong(), caps: SIM_CAPS }, 623);
    expect(f).toEqual({
      verdict: 'bmc',
      port: 623,
      notes: [],
      pong: { iana: 4542, oem: 0, ipmi: true, entities: 0x81, interactions: 0 },
      versions: ['1.5', '2.0'],
      authTypes: ['none', 'md2', 'md5', 'password'],
      channel: 1,
      anonymousLogin: false,
      nullUsernames: false,
      kgSet: false,
      perMessageAuthDisabled: false,
      userLevelAuthDisabled: false,
      oemId: 0,
      enterprise: null,
    });
  });

  it.each<[string, IpmiRaw, string, RegExp | null]>([
    ['caps without a pong (ASF ping disabled)', { pong: TIMEOUT, caps: SIM_CAPS }, 'bmc', /no answer to the RMCP presence ping/],
    ['a pong claiming IPMI, caps unanswered', { pong: pong(), caps: TIMEOUT }, 'bmc', /no answer to Get Channel Auth Caps/],
    ['caps refused in both forms', { pong: TIMEOUT, caps: cc(0xc1), capsV15: cc(0xc1) }, 'bmc', /Get Channel Auth Caps refused: invalid command \(0xc1\)/],
    ['an ASF NIC: pong without IPMI, caps unanswered', { pong: pong({ entities: 0x01, ipmi: false }), caps: TIMEOUT }, 'other', /presence pong without IPMI \(supported entities 0x01\): an ASF agent, not a BMC/],
    ['garbage in answer to both', { pong: GARBAGE, caps: GARBAGE }, 'other', /answered with an invalid packet: RMCP: unsupported version 0x47/],
    ['caps answered with data too short to parse, no pong', { pong: TIMEOUT, caps: { ok: { completionCode: 0, data: Buffer.from([1, 0x97]) } } }, 'other', /does not parse: Get Channel Auth Caps: truncated/],
  ])('%s → %s', (_name, raw, verdict, note) => {
    const f = classifyIpmi(raw, 623);
    expect(f.verdict).toBe(verdict);
    if (note) expect(f.notes.join('; ')).toMatch(note);
  });

  it('an IPMI v1.5 BMC: refuses the v2.0 form (0xCC), answers the v1.5 form', () => {
    const v15 = { ok: { completionCode: 0, data: encodeChannelAuthCaps({ channel: 1, authTypes: 0x16, status: 0x04 }) } };
    const f = classifyIpmi({ pong: pong(), caps: cc(0xcc), capsV15: v15 }, 623);
    expect(f).toMatchObject({ verdict: 'bmc', versions: ['1.5'], authTypes: ['md2', 'md5', 'password'], kgSet: false, notes: [] });
  });

  it('names the enterprise of an OEM auth type, else of an OEM pong; 4542 (ASF) names none', () => {
    const dell = { ok: { completionCode: 0, data: encodeChannelAuthCaps({ channel: 1, authTypes: 0xa0, ipmi20: true, oemId: 674 }) } };
    expect(classifyIpmi({ pong: pong(), caps: dell }, 623)).toMatchObject({ oemId: 674, enterprise: 'Dell', authTypes: ['oem'] });
    expect(classifyIpmi({ pong: pong({ iana: 10876 }), caps: TIMEOUT }, 623).enterprise).toBe('Super Micro');
    expect(classifyIpmi({ pong: pong(), caps: TIMEOUT }, 623).enterprise).toBeNull();
    expect(enterpriseName(4542)).toBeNull();
    expect(enterpriseName(19046)).toBe('Lenovo');
    expect(enterpriseName(999_999)).toBeNull();
  });
});

const mockupRoot = readFileSync(join(MOCKUPS_DIR, 'public-rackmount1', 'index.json'), 'utf8');
const FP = 'AB:'.repeat(31) + 'AB';
const http = (status: number, body: string | null, contentType: string | null = 'application/json'): RedfishRaw => ({ kind: 'http', status, body, contentType, fingerprint: FP });

describe('classifyRedfish', () => {
  it('the DMTF mockup service root: a BMC, its UUID and version, the certificate fingerprint', () => {
    const f = classifyRedfish(http(200, mockupRoot), 443);
    expect(f).toEqual({
      verdict: 'bmc',
      port: 443,
      notes: [],
      fingerprint: FP,
      rootRead: true,
      uuid: '92384634-2938-2342-8820-489239905423',
      vendor: null,
      product: null,
      redfishVersion: '1.15.0',
      name: 'Root Service',
    });
  });

  it('reads Vendor and Product (ServiceRoot 1.5+), lower-cases the UUID', () => {
    const body = JSON.stringify({ RedfishVersion: '1.6.0', UUID: 'AAAABBBB-CCCC-DDDD-EEEE-FFFF00001111', Vendor: 'Contoso', Product: 'Contoso BMC 9' });
    expect(classifyRedfish(http(200, body), 443)).toMatchObject({ verdict: 'bmc', uuid: 'aaaabbbb-cccc-dddd-eeee-ffff00001111', vendor: 'Contoso', product: 'Contoso BMC 9' });
  });

  it.each<[string, RedfishRaw, string, RegExp]>([
    ['connection refused', { kind: 'refused', message: 'TCP 10.0.0.1:443: ECONNREFUSED' }, 'silent', /ECONNREFUSED/],
    ['no answer in time', { kind: 'timeout', message: 'no HTTPS answer from 10.0.0.1:443 within 3000 ms' }, 'silent', /within 3000 ms/],
    ['not TLS', { kind: 'tls', message: 'ERR_SSL_WRONG_VERSION_NUMBER: wrong version number' }, 'other', /open but does not speak TLS as a Redfish service must: ERR_SSL_WRONG_VERSION_NUMBER/],
    ['root wants credentials', http(401, '{}'), 'bmc', /wants credentials \(HTTP 401\)/],
    ['no Redfish here', http(404, '<html>not found</html>', 'text/html'), 'other', /answered HTTP 404: not a Redfish service root/],
    ['an endless body', http(200, null), 'other', /larger than a service root can be/],
    ['HTML with 200', http(200, '<html>login</html>', 'text/html'), 'other', /with a body that is not JSON \(text\/html\)/],
    ['a JSON array', http(200, '[1,2]'), 'other', /JSON that is not an object/],
    ['JSON, but not a service root', http(200, '{"status":"ok"}'), 'other', /without RedfishVersion or a ServiceRoot @odata.type/],
    ['another error', { kind: 'error', message: 'GET /redfish/v1/ on 10.0.0.1:443 failed: HPE_INVALID_CONSTANT' }, 'other', /HPE_INVALID_CONSTANT/],
  ])('%s → %s', (_name, raw, verdict, note) => {
    const f = classifyRedfish(raw, 443);
    expect(f.verdict).toBe(verdict);
    expect(f.notes.join('; ')).toMatch(note);
    if (verdict !== 'bmc' || raw.kind !== 'http' || raw.status !== 200) expect(f.rootRead).toBe(false);
  });

  it('keeps a service root found by its @odata.type alone; a UUID that is not one is dropped with a note', () => {
    const f = classifyRedfish(http(200, JSON.stringify({ '@odata.type': '#ServiceRoot.v1_0_0.ServiceRoot', UUID: 'not-a-uuid' })), 443);
    expect(f).toMatchObject({ verdict: 'bmc', redfishVersion: null, uuid: null, notes: ['service root UUID "not-a-uuid" is not a UUID'] });
  });

  it('cleans hostile strings: no control or bidi characters, bounded length', () => {
    const body = JSON.stringify({ RedfishVersion: '1.0.0\u001b[2J', Vendor: '\u001b[31mEvil\u0007\u202e', Product: 'x'.repeat(10_000), Name: 42 });
    const f = classifyRedfish(http(200, body), 443);
    expect(f.redfishVersion).toBe('1.0.0?[2J');
    expect(f.vendor).toBe('?[31mEvil??');
    expect(f.product).toHaveLength(128);
    expect(f.product!.endsWith('…')).toBe(true);
    expect(f.name).toBeNull();
    expect(cleanText('   ')).toBeNull();
    expect(cleanText(undefined)).toBeNull();
  });
});

describe('classifyHost and the counts', () => {
  const silentIpmi = classifyIpmi({ pong: TIMEOUT, caps: TIMEOUT }, 623);
  const bmcIpmi = classifyIpmi({ pong: pong(), caps: SIM_CAPS }, 623);
  const otherIpmi = classifyIpmi({ pong: GARBAGE, caps: GARBAGE }, 623);
  const silentRf = classifyRedfish({ kind: 'refused', message: 'ECONNREFUSED' }, 443);
  const bmcRf = classifyRedfish(http(200, mockupRoot), 443);
  const otherRf = classifyRedfish(http(404, ''), 443);

  it.each([
    [silentIpmi, silentRf, 'silent'],
    [bmcIpmi, silentRf, 'bmc'],
    [silentIpmi, bmcRf, 'bmc'],
    [otherIpmi, bmcRf, 'bmc'],
    [otherIpmi, silentRf, 'other'],
    [silentIpmi, otherRf, 'other'],
    [silentIpmi, null, 'silent'],
    [null, otherRf, 'other'],
  ] as const)('%#: → %s', (ipmi, redfish, verdict) => {
    expect(classifyHost('10.0.0.1', ipmi, redfish).verdict).toBe(verdict);
  });

  it('counts answered (BMCs and others) and silent', () => {
    const hosts = [
      classifyHost('10.0.0.1', bmcIpmi, bmcRf),
      classifyHost('10.0.0.2', otherIpmi, silentRf),
      classifyHost('10.0.0.3', silentIpmi, silentRf),
      classifyHost('10.0.0.4', silentIpmi, silentRf),
    ];
    expect(countVerdicts(hosts)).toEqual({ addresses: 4, answered: 2, silent: 2, bmcs: 1, other: 1 });
  });
});
