/** `fleet discover bmc`: flags to request, and the text it prints (server/cli/commands/discover-bmc.ts). */
import { describe, expect, it } from 'vitest';
import type { BmcScanResponse } from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import { type DiscoverBmcFlags, formatDiscoveredBmcs, formatScan, planOf, scanRequestOf } from '../../../server/cli/commands/discover-bmc.js';

function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('usage.invalid');
    expect((e as FleetError).exit).toBe(2);
    return (e as FleetError).message;
  }
  throw new Error('expected usage.invalid');
}

describe('scanRequestOf', () => {
  it.each<[DiscoverBmcFlags, object]>([
    [{ subnet: '10.1.0.0/24' }, { subnet: '10.1.0.0/24', protocol: 'both' }],
    [{ subnet: '10.1.0.0/24', protocol: 'ipmi', port: '1623' }, { protocol: 'ipmi', ipmiPort: 1623 }],
    [{ subnet: '10.1.0.0/24', protocol: 'redfish', port: '8443' }, { protocol: 'redfish', redfishPort: 8443 }],
    [{ subnet: '10.1.0.0/24', ipmiPort: '624', redfishPort: '8443' }, { protocol: 'both', ipmiPort: 624, redfishPort: 8443 }],
    [{ subnet: '10.1.0.0/24', concurrency: '256', timeout: '500ms' }, { concurrency: 256, timeoutMs: 500 }],
    [{ subnet: '10.1.0.0/24', timeout: '2' }, { timeoutMs: 2000 }],
    [{ subnet: '10.0.0.0/12', force: true }, { force: true }],
  ])('%j → %j', (flags, want) => {
    expect(scanRequestOf(flags)).toMatchObject(want);
  });

  it.each<[DiscoverBmcFlags, RegExp]>([
    [{}, /needs --subnet CIDR .*or --list/],
    [{ subnet: '10.1.0.0/24', protocol: 'snmp' }, /--protocol "snmp" is not one of ipmi, redfish, both/],
    [{ subnet: '10.1.0.0/24', port: '623' }, /--port names one port, and --protocol both probes two/],
    [{ subnet: '10.1.0.0/24', protocol: 'ipmi', port: '0' }, /--port "0" is not a port \(1-65535\)/],
    [{ subnet: '10.1.0.0/24', protocol: 'ipmi', port: '65536' }, /--port "65536" is not a port/],
    [{ subnet: '10.1.0.0/24', protocol: 'ipmi', port: 'ipmi' }, /--port "ipmi" is not a port/],
    [{ subnet: '10.1.0.0/24', protocol: 'ipmi', port: '-1' }, /--port "-1" is not a port/],
    [{ subnet: '10.1.0.0/24', protocol: 'ipmi', port: '623', ipmiPort: '623' }, /exclude each other/],
    [{ subnet: '10.1.0.0/24', protocol: 'redfish', ipmiPort: '623' }, /nothing would use it/],
    [{ subnet: '10.1.0.0/24', concurrency: '0' }, /--concurrency "0" is not a whole number from 1 to 1024/],
    [{ subnet: '10.1.0.0/24', concurrency: '2.5' }, /--concurrency "2.5"/],
    [{ subnet: '10.1.0.0/24', timeout: 'forever' }, /--timeout "forever" is not a duration from 100ms to 60s/],
    [{ subnet: '10.1.0.0/24', timeout: '10m' }, /--timeout "10m"/],
    [{ subnet: '10.1.0.0/24', timeout: '50ms' }, /--timeout "50ms"/],
  ])('refuses %j', (flags, why) => {
    expect(usageError(() => scanRequestOf(flags))).toMatch(why);
  });

  it('checks the subnet with the server planner: its refusals are usage errors naming --subnet', () => {
    expect(usageError(() => planOf(scanRequestOf({ subnet: '10.0.0.0/8' })))).toMatch(/^--subnet: 10\.0\.0\.0\/8 has 16777214 addresses: fleet scans at most 65536 \(a \/16\) unless forced \(--force\)/);
    expect(usageError(() => planOf(scanRequestOf({ subnet: '10.1.0.300/24' })))).toMatch(/not a valid IPv4 CIDR/);
    expect(planOf(scanRequestOf({ subnet: '10.1.0.0/24' })).boundMs).toBe(30_000);
  });
});

const RESPONSE: BmcScanResponse = {
  subnet: '127.0.0.0/29',
  protocols: ['ipmi/20623', 'redfish/44321'],
  concurrency: 64,
  timeoutMs: 500,
  retries: 2,
  boundMs: 2000,
  startedAt: '2026-01-01T00:00:00.000Z',
  durationMs: 612,
  summary: { addresses: 6, answered: 2, silent: 4, bmcs: 1, other: 1, new: 1 },
  hosts: [
    {
      address: '127.0.0.1',
      verdict: 'bmc',
      new: true,
      ipmi: {
        verdict: 'bmc',
        port: 20623,
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
      },
      redfish: {
        verdict: 'bmc',
        port: 44321,
        notes: [],
        fingerprint: 'AB:CD',
        rootRead: true,
        uuid: '92384634-2938-2342-8820-489239905423',
        vendor: 'Contoso',
        product: null,
        redfishVersion: '1.15.0',
        name: 'Root Service',
      },
    },
    {
      address: '127.0.0.3',
      verdict: 'other',
      new: false,
      ipmi: null,
      redfish: { verdict: 'other', port: 44321, notes: ['GET /redfish/v1/ answered HTTP 404: not a Redfish service root'], fingerprint: null, rootRead: false, uuid: null, vendor: null, product: null, redfishVersion: null, name: null },
    },
  ],
  silent: ['127.0.0.2', '127.0.0.4-127.0.0.6'],
  notScanned: [],
};

describe('formatScan', () => {
  it('says how many answered and how many were silent, lists what answered, the certificates seen and the silent ranges', () => {
    expect(formatScan(RESPONSE).split('\n')).toEqual([
      '127.0.0.0/29: 6 addresses scanned (ipmi/20623, redfish/44321) in 0.6 s: 2 answered (1 BMC, 1 new; 1 other), 4 silent',
      'ADDRESS    FOUND  NEW  IPMI                                      REDFISH',
      '127.0.0.1  BMC    yes  IPMI 1.5+2.0, auth none,md2,md5,password  Redfish 1.15.0, Contoso, uuid 92384634-2938-2342-8820-489239905423',
      '127.0.0.3  other  -    -                                         GET /redfish/v1/ answered HTTP 404: not a Redfish service root',
      'TLS certificates seen, not verified (kept to pin later: compare with what the BMC itself shows before trusting one):',
      '  127.0.0.1:44321 SHA-256 AB:CD',
      'silent: 127.0.0.2, 127.0.0.4-127.0.0.6',
    ]);
  });

  it('a scan where nothing answered is one line and the silent ranges', () => {
    const r = { ...RESPONSE, hosts: [], summary: { addresses: 6, answered: 0, silent: 6, bmcs: 0, other: 0, new: 0 }, silent: ['127.0.0.1-127.0.0.6'] };
    expect(formatScan(r)).toBe('127.0.0.0/29: 6 addresses scanned (ipmi/20623, redfish/44321) in 0.6 s: 0 answered (0 BMCs, 0 new; 0 other), 6 silent\nsilent: 127.0.0.1-127.0.0.6');
  });
});

describe('formatDiscoveredBmcs', () => {
  it('one line per BMC; says so when there is none', () => {
    expect(formatDiscoveredBmcs([])).toMatch(/^no BMCs found yet/);
    const text = formatDiscoveredBmcs([
      {
        address: '127.0.0.1',
        ipmi: { ...RESPONSE.hosts[0]!.ipmi!, verdict: undefined } as never,
        redfish: null,
        uuid: null,
        vendor: null,
        product: null,
        tlsFingerprint: null,
        firstSeen: '2026-01-01T00:00:00.000Z',
        lastSeen: '2026-01-01T00:00:00.000Z',
        nodes: ['n1'],
      },
    ]);
    expect(text.split('\n')).toEqual([
      'ADDRESS    IPMI            REDFISH  UUID  VENDOR  NODE  LAST SEEN',
      '127.0.0.1  20623 v1.5+2.0  -        -     -       n1    2026-01-01T00:00:00.000Z',
    ]);
  });
});
