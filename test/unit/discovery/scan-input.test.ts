/** What a BMC scan will do, decided before a packet leaves (server/discovery/scan-input.ts). */
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { intToIp } from '../../../common/patterns.js';
import { SCAN_DEFAULTS, SCAN_LIMITS, foldAddressRanges, hostRange, planScan, roughDuration, scanBoundMs } from '../../../server/discovery/scan-input.js';

function refused(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    expect((e as FleetError).code).toBe('request.invalid');
    return (e as FleetError).message;
  }
  throw new Error('expected request.invalid');
}

const addresses = (p: ReturnType<typeof planScan>): string[] => Array.from({ length: p.count }, (_, i) => intToIp(p.first + i));

describe('planScan: the subnet', () => {
  it.each([
    ['127.0.0.0/29', '127.0.0.0/29', 6, '127.0.0.1', '127.0.0.6'],
    ['10.20.0.0/24', '10.20.0.0/24', 254, '10.20.0.1', '10.20.0.254'],
    ['10.20.0.0/30', '10.20.0.0/30', 2, '10.20.0.1', '10.20.0.2'],
    // RFC 3021: both addresses of a /31 are hosts.
    ['10.20.0.4/31', '10.20.0.4/31', 2, '10.20.0.4', '10.20.0.5'],
    ['10.20.0.7/32', '10.20.0.7/32', 1, '10.20.0.7', '10.20.0.7'],
    // A bare address is its /32.
    [' 10.20.0.9 ', '10.20.0.9/32', 1, '10.20.0.9', '10.20.0.9'],
    ['10.20.0.0/16', '10.20.0.0/16', 65534, '10.20.0.1', '10.20.255.254'],
  ])('%s → %s: %i addresses, %s to %s', (subnet, canonical, count, first, last) => {
    const p = planScan({ subnet });
    expect(p.subnet).toBe(canonical);
    expect(p.count).toBe(count);
    expect(intToIp(p.first)).toBe(first);
    expect(intToIp(p.last)).toBe(last);
  });

  it('leaves out the network and broadcast addresses of a /29', () => {
    expect(addresses(planScan({ subnet: '127.0.0.0/29' }))).toEqual(['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']);
    expect(hostRange(0, 7, 29)).toEqual({ first: 1, last: 6, count: 6 });
  });

  it.each([
    ['', /is not a valid IPv4 CIDR/],
    ['10.20.0.0', null],
    ['10.20.0.0/33', /is not a valid IPv4 CIDR/],
    ['10.20.0.0/-1', /is not a valid IPv4 CIDR/],
    ['10.20.0.256/24', /is not a valid IPv4 CIDR/],
    ['010.20.0.0/24', /is not a valid IPv4 CIDR/],
    ['10.20.0.1/24', /has host bits set; did you mean 10\.20\.0\.0\/24\?/],
    ['bmc.example.com/24', /is not a valid IPv4 CIDR/],
    ['10.20.0.0/24; rm -rf /', /is not a valid IPv4 CIDR/],
    ['fd00::/64', /IPv6: fleet scans IPv4 subnets only/],
    ['0.0.0.0/0', /"this network"/],
    ['224.0.0.0/24', /multicast/],
    ['255.255.255.255', /reserved/],
  ])('refuses %j with a reason', (subnet, why) => {
    if (why === null) return void expect(planScan({ subnet }).count).toBe(1);
    expect(refused(() => planScan({ subnet }))).toMatch(why);
  });

  it('refuses more than a /16 unless forced, and says why and how long it could take', () => {
    const m = refused(() => planScan({ subnet: '10.0.0.0/15' }));
    expect(m).toMatch(/^10\.0\.0\.0\/15 has 131070 addresses: fleet scans at most 65536 \(a \/16\) unless forced \(--force\)/);
    expect(m).toMatch(/with 64 in flight and a 3000 ms timeout it could take up to 3\.4 h and probes every address of it; scan the BMC subnet itself$/);
    expect(planScan({ subnet: '10.0.0.0/15', force: true }).count).toBe(131070);
    expect(planScan({ subnet: '10.0.0.0/12', force: true }).count).toBe(SCAN_LIMITS.maxForcedAddresses - 2);
    expect(refused(() => planScan({ subnet: '10.0.0.0/8', force: true }))).toMatch(/never scans more than 1048576 \(a \/12\), forced or not/);
  });
});

describe('planScan: protocols, ports, concurrency, timeout', () => {
  it('defaults: both protocols on 623 and 443, 64 in flight, 3 s, two retries', () => {
    const p = planScan({ subnet: '10.1.0.0/24' });
    expect(p).toMatchObject({ ipmi: { port: 623 }, redfish: { port: 443 }, concurrency: 64, timeoutMs: 3000, retries: 2 });
    expect(p.retries).toBe(SCAN_DEFAULTS.retries);
  });

  it('one protocol leaves the other out; ports as given', () => {
    expect(planScan({ subnet: '10.1.0.0/24', protocol: 'ipmi', ipmiPort: 1623 })).toMatchObject({ ipmi: { port: 1623 }, redfish: null });
    expect(planScan({ subnet: '10.1.0.0/24', protocol: 'redfish', redfishPort: 8443 })).toMatchObject({ ipmi: null, redfish: { port: 8443 } });
  });

  it.each([
    [{ protocol: 'snmp' }, /protocol snmp is not one of ipmi, redfish, both/],
    [{ ipmiPort: 0 }, /IPMI port 0 is not an integer from 1 to 65535/],
    [{ ipmiPort: 65536 }, /IPMI port 65536 is not an integer/],
    [{ redfishPort: 44.3 }, /Redfish port 44.3 is not an integer/],
    [{ redfishPort: Number.NaN }, /Redfish port NaN/],
    [{ concurrency: 0 }, /concurrency 0 is not an integer from 1 to 1024/],
    [{ concurrency: 5000 }, /concurrency 5000/],
    [{ timeoutMs: 50 }, /timeout \(ms\) 50 is not an integer from 100 to 60000/],
    [{ timeoutMs: 600_000 }, /timeout \(ms\) 600000/],
  ])('refuses %j', (extra, why) => {
    expect(refused(() => planScan({ subnet: '10.1.0.0/24', ...(extra as object) }))).toMatch(why);
  });
});

describe('the bound of a scan', () => {
  it('is (ceil(count / concurrency) + 1) slots of two timeouts', () => {
    // A /24 with the defaults: 254 addresses, 64 in flight, 3 s: 5 slots of 6 s.
    expect(scanBoundMs(254, 64, 3000)).toBe(30_000);
    expect(planScan({ subnet: '10.1.0.0/24' }).boundMs).toBe(30_000);
    expect(scanBoundMs(1, 64, 500)).toBe(2000);
    expect(roughDuration(30_000)).toBe('30 s');
    expect(roughDuration(600_000)).toBe('10 min');
    expect(roughDuration(3 * 3_600_000)).toBe('3.0 h');
  });
});

describe('foldAddressRanges', () => {
  it('folds runs, keeps singles, sorts numerically, ignores duplicates and non-addresses', () => {
    expect(foldAddressRanges(['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6'])).toEqual(['127.0.0.2-127.0.0.6']);
    expect(foldAddressRanges(['10.0.0.10', '10.0.0.9', '10.0.0.1', '10.0.0.9', 'junk', '10.0.1.0', '10.0.0.255'])).toEqual(['10.0.0.1', '10.0.0.9-10.0.0.10', '10.0.0.255-10.0.1.0']);
    expect(foldAddressRanges([])).toEqual([]);
  });
});
