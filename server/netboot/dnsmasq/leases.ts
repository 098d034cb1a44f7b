/** dnsmasq's lease file (dhcp-leasefile): one lease per line, `EXPIRY MAC IP HOSTNAME|* CLIENTID|*`. Pure. */
import { isIPv4, normalizeMac } from '../../../common/patterns.js';

export interface DnsmasqLease {
  /** Seconds since the epoch; 0: infinite. */
  expires: number;
  mac: string;
  ip: string;
  hostname: string | null;
  clientId: string | null;
}

/** Parses the IPv4 leases of a lease file; DHCPv6 lines (duid, IPv6) and malformed lines are skipped. */
export function parseLeaseFile(text: string): DnsmasqLease[] {
  const out: DnsmasqLease[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const mac = normalizeMac(f[1]!);
    if (!mac || !isIPv4(f[2]!) || !/^\d+$/.test(f[0]!)) continue;
    out.push({ expires: Number(f[0]), mac, ip: f[2]!, hostname: f[3] === '*' ? null : f[3]!, clientId: !f[4] || f[4] === '*' ? null : f[4] });
  }
  return out;
}
