/**
 * What a BMC scan (`fleet discover bmc`, POST /api/v1/discover/bmc) will do,
 * decided from its request before a packet leaves: the subnet and its
 * addresses, the protocols and ports, the concurrency, the per-host timeout
 * and the fixed retry count, and the time the whole scan can take at most.
 * Pure: every refusal is a FleetError('request.invalid') that says why.
 */
import { FleetError } from '../../common/errors.js';
import { intToIp, ipToInt, isIPv4, parseCidr, show } from '../../common/patterns.js';

export const SCAN_PROTOCOLS = ['ipmi', 'redfish', 'both'] as const;
export type ScanProtocol = (typeof SCAN_PROTOCOLS)[number];

export const SCAN_DEFAULTS = {
  protocol: 'both' as ScanProtocol,
  /** RMCP (IPMI v2.0 §13.1). */
  ipmiPort: 623,
  /** HTTPS (DSP0266). */
  redfishPort: 443,
  concurrency: 64,
  /** Per host and protocol: the whole exchange (every IPMI retransmit; Redfish connect, TLS, headers and body). */
  timeoutMs: 3000,
  /** IPMI datagrams sent again after the first, evenly spaced within the timeout. Redfish is one TCP attempt (TCP retransmits its SYN itself). */
  retries: 2,
} as const;

export const SCAN_LIMITS = {
  maxConcurrency: 1024,
  minTimeoutMs: 100,
  maxTimeoutMs: 60_000,
  /** A /16: more needs force. */
  maxAddresses: 65_536,
  /** A /12: never more, forced or not. */
  maxForcedAddresses: 1_048_576,
} as const;

export interface ScanRequestInput {
  subnet: string;
  protocol?: string;
  ipmiPort?: number;
  redfishPort?: number;
  concurrency?: number;
  timeoutMs?: number;
  /** Scan more than a /16 (up to a /12). */
  force?: boolean;
}

export interface ScanPlan {
  /** Canonical CIDR, e.g. 10.20.0.0/24 (a bare address is its /32). */
  subnet: string;
  /** First and last address scanned, as integers (network and broadcast addresses left out up to a /30). */
  first: number;
  last: number;
  /** Addresses scanned. */
  count: number;
  ipmi: { port: number } | null;
  redfish: { port: number } | null;
  concurrency: number;
  timeoutMs: number;
  retries: number;
  /** The longest the scan can take (scanBoundMs). */
  boundMs: number;
}

function invalid(message: string): FleetError {
  return new FleetError('request.invalid', message);
}

function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} ${show(String(value))} is not an integer from ${min} to ${max}`);
  }
  return value;
}

/** The block of a subnet as given: IPv4 CIDR with host bits zero, or a bare IPv4 address (its /32). */
export function parseScanSubnet(text: string): { address: string; prefix: number; first: number; last: number } {
  const s = typeof text === 'string' ? text.trim() : '';
  if (s.includes(':')) throw invalid(`${show(s)} is IPv6: fleet scans IPv4 subnets only (a /64 alone has 2^64 addresses; give the BMCs' IPv4 subnet)`);
  if (isIPv4(s)) return { address: s, prefix: 32, first: ipToInt(s), last: ipToInt(s) };
  const c = parseCidr(s);
  if (typeof c === 'string') throw invalid(c);
  return c;
}

/** Addresses a prefix has for hosts: all but network and broadcast up to a /30; both of a /31 (RFC 3021); the one of a /32. */
export function hostRange(first: number, last: number, prefix: number): { first: number; last: number; count: number } {
  if (prefix >= 31) return { first, last, count: last - first + 1 };
  return { first: first + 1, last: last - 1, count: last - first - 1 };
}

/** Blocks a BMC cannot be in: sending there is pointless or worse. */
const UNSCANNABLE: readonly { first: number; last: number; why: string }[] = [
  { first: ipToInt('0.0.0.0'), last: ipToInt('0.255.255.255'), why: '0.0.0.0/8 is "this network" (RFC 1122), never a host' },
  { first: ipToInt('224.0.0.0'), last: ipToInt('239.255.255.255'), why: '224.0.0.0/4 is multicast; BMCs have unicast addresses' },
  { first: ipToInt('240.0.0.0'), last: ipToInt('255.255.255.255'), why: '240.0.0.0/4 is reserved (and holds the broadcast address)' },
];

/**
 * The longest a scan can take: each of `concurrency` workers takes the next
 * address when it is done with one, and one address costs at most two
 * timeouts (IPMI ping, Get Channel Auth Caps and Redfish run side by side;
 * a BMC that refuses the IPMI v2.0 form of Get Channel Auth Caps is asked
 * the v1.5 form after). Greedy scheduling ends within (count / concurrency
 * + 1) such slots.
 */
export function scanBoundMs(count: number, concurrency: number, timeoutMs: number): number {
  return (Math.ceil(count / concurrency) + 1) * 2 * timeoutMs;
}

/** "12 s", "8 min", "2.1 h": for messages. */
export function roughDuration(ms: number): string {
  if (ms < 120_000) return `${Math.ceil(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.ceil(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function planScan(req: ScanRequestInput): ScanPlan {
  const block = parseScanSubnet(req.subnet);
  const subnet = `${intToIp(block.first)}/${block.prefix}`;
  for (const u of UNSCANNABLE) {
    if (block.first <= u.last && block.last >= u.first) throw invalid(`refusing to scan ${subnet}: ${u.why}`);
  }
  const protocol = req.protocol ?? SCAN_DEFAULTS.protocol;
  if (!(SCAN_PROTOCOLS as readonly string[]).includes(protocol)) throw invalid(`protocol ${show(protocol)} is not one of ${SCAN_PROTOCOLS.join(', ')}`);
  const ipmiPort = integerIn('IPMI port', req.ipmiPort ?? SCAN_DEFAULTS.ipmiPort, 1, 65535);
  const redfishPort = integerIn('Redfish port', req.redfishPort ?? SCAN_DEFAULTS.redfishPort, 1, 65535);
  const concurrency = integerIn('concurrency', req.concurrency ?? SCAN_DEFAULTS.concurrency, 1, SCAN_LIMITS.maxConcurrency);
  const timeoutMs = integerIn('timeout (ms)', req.timeoutMs ?? SCAN_DEFAULTS.timeoutMs, SCAN_LIMITS.minTimeoutMs, SCAN_LIMITS.maxTimeoutMs);
  const hosts = hostRange(block.first, block.last, block.prefix);
  const limit = req.force ? SCAN_LIMITS.maxForcedAddresses : SCAN_LIMITS.maxAddresses;
  if (hosts.count > limit) {
    const took = roughDuration(scanBoundMs(hosts.count, concurrency, timeoutMs));
    throw invalid(
      req.force
        ? `${subnet} has ${hosts.count} addresses: fleet never scans more than ${SCAN_LIMITS.maxForcedAddresses} (a /12), forced or not; scan its parts`
        : `${subnet} has ${hosts.count} addresses: fleet scans at most ${SCAN_LIMITS.maxAddresses} (a /16) unless forced (--force), because ` +
            `with ${concurrency} in flight and a ${timeoutMs} ms timeout it could take up to ${took} and probes every address of it; scan the BMC subnet itself`,
    );
  }
  return {
    subnet,
    first: hosts.first,
    last: hosts.last,
    count: hosts.count,
    ipmi: protocol === 'redfish' ? null : { port: ipmiPort },
    redfish: protocol === 'ipmi' ? null : { port: redfishPort },
    concurrency,
    timeoutMs,
    retries: SCAN_DEFAULTS.retries,
    boundMs: scanBoundMs(hosts.count, concurrency, timeoutMs),
  };
}

/** Folds addresses into ranges for a short report: ["127.0.0.2-127.0.0.6", "127.0.0.9"]. Input in any order, duplicates ignored. */
export function foldAddressRanges(addresses: readonly string[]): string[] {
  const ns = [...new Set(addresses.filter(isIPv4).map(ipToInt))].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < ns.length; ) {
    let j = i;
    while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++;
    out.push(i === j ? intToIp(ns[i]!) : `${intToIp(ns[i]!)}-${intToIp(ns[j]!)}`);
    i = j + 1;
  }
  return out;
}
