/**
 * BMC discovery by scan (issue 13 item 4): every address of a subnet is
 * probed for IPMI (scan-ipmi.ts) and Redfish (scan-redfish.ts), at most
 * `concurrency` addresses at a time, each probe within the per-host timeout;
 * the answers are classified (scan-classify.ts) and the BMCs found recorded
 * in the store (discovered_bmcs, a bmc.discovered event the first time).
 *
 * Bounded: a fixed number of workers walk a fixed list of addresses, each
 * probe ends by its deadline, so the scan ends within plan.boundMs
 * (scan-input.ts). No credential is used or sent: pre-session IPMI commands
 * and the anonymous Redfish service root only.
 */
import { EVENT } from '../../common/events.js';
import { intToIp } from '../../common/patterns.js';
import { IpmiTransport } from '../bmc/ipmi/transport.js';
import type { Store } from '../store/index.js';
import type { DiscoveredBmc } from '../store/repos/discovered-bmcs.js';
import { type HostFinding, type IpmiRaw, type RedfishRaw, type ScanCounts, classifyHost, classifyIpmi, classifyRedfish, countVerdicts } from './scan-classify.js';
import { foldAddressRanges, type ScanPlan } from './scan-input.js';
import { probeIpmi } from './scan-ipmi.js';
import { probeRedfish } from './scan-redfish.js';

export interface ScanProbes {
  ipmi(transport: IpmiTransport, address: string, port: number, timeoutMs: number, retries: number): Promise<IpmiRaw>;
  redfish(address: string, port: number, timeoutMs: number): Promise<RedfishRaw>;
}

export const REAL_PROBES: ScanProbes = { ipmi: probeIpmi, redfish: probeRedfish };

export interface ScanOptions {
  /** Stops handing out addresses (server shutdown); those not probed are reported as not scanned. */
  signal?: AbortSignal;
  /** Called after each address (progress). */
  onHost?: (done: number, total: number) => void;
  probes?: ScanProbes;
}

export interface ScanResult {
  plan: ScanPlan;
  startedAt: string;
  durationMs: number;
  counts: ScanCounts;
  /** Addresses where something answered (BMCs and others), in address order. */
  answered: HostFinding[];
  /** Silent addresses folded into ranges: ["10.0.0.2-10.0.0.6"]. */
  silent: string[];
  /** Addresses left unprobed because the scan was stopped, folded; empty when it ran to the end. */
  notScanned: string[];
  /** IPMI datagrams: sent (with retransmits), retransmits, received, dropped (stray or from another address), garbage. */
  ipmiPackets: { sent: number; retransmits: number; received: number; dropped: number; garbage: number } | null;
}

/** Runs the scan of a plan (planScan). Never throws for what peers do; every address gets a verdict. */
export async function runBmcScan(plan: ScanPlan, opts: ScanOptions = {}): Promise<ScanResult> {
  const probes = opts.probes ?? REAL_PROBES;
  const startedAt = new Date();
  const t0 = performance.now();
  // A transport of its own: its retransmit interval is the scan's, and a peer's garbage fails only the scan's requests.
  const interval = Math.max(20, Math.floor(plan.timeoutMs / (plan.retries + 1)));
  const transport = plan.ipmi ? await IpmiTransport.open({ retransmitMs: [interval], recvBufferSize: 1 << 20 }) : null;
  const results: (HostFinding | undefined)[] = new Array(plan.count);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    // Each index is taken once; the loop ends when the list does (or the scan is stopped).
    while (next < plan.count && !opts.signal?.aborted) {
      const i = next++;
      const address = intToIp(plan.first + i);
      const [ipmiRaw, redfishRaw] = await Promise.all([
        transport && plan.ipmi ? probes.ipmi(transport, address, plan.ipmi.port, plan.timeoutMs, plan.retries) : null,
        plan.redfish ? probes.redfish(address, plan.redfish.port, plan.timeoutMs) : null,
      ]);
      results[i] = classifyHost(
        address,
        ipmiRaw && plan.ipmi ? classifyIpmi(ipmiRaw, plan.ipmi.port) : null,
        redfishRaw && plan.redfish ? classifyRedfish(redfishRaw, plan.redfish.port) : null,
      );
      opts.onHost?.(++done, plan.count);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(plan.concurrency, plan.count) }, worker));
  } finally {
    await transport?.close();
  }
  const scanned = results.filter((r): r is HostFinding => r !== undefined);
  const notScanned: string[] = [];
  for (let i = 0; i < plan.count; i++) if (!results[i]) notScanned.push(intToIp(plan.first + i));
  return {
    plan,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    counts: countVerdicts(scanned),
    answered: scanned.filter((h) => h.verdict !== 'silent'),
    silent: foldAddressRanges(scanned.filter((h) => h.verdict === 'silent').map((h) => h.address)),
    notScanned: foldAddressRanges(notScanned),
    ipmiPackets: transport ? { ...transport.stats } : null,
  };
}

/**
 * Records the BMCs of a scan in the store, in one transaction: each address
 * found is inserted (with a bmc.discovered event) or refreshed, and one
 * bmc.scanned event sums the scan up. Returns the records by address and
 * which of them are new.
 */
export async function recordBmcScan(store: Store, result: ScanResult, actor: string): Promise<{ records: Map<string, DiscoveredBmc>; added: Set<string> }> {
  const bmcs = result.answered.filter((h) => h.verdict === 'bmc');
  return store.transaction(async (tx) => {
    const records = new Map<string, DiscoveredBmc>();
    const added = new Set<string>();
    for (const h of bmcs) {
      const r = await tx.discoveredBmcs.record(h, { actor, cause: `BMC scan of ${result.plan.subnet}` });
      records.set(h.address, r.bmc);
      if (r.firstSeen) added.add(h.address);
    }
    await tx.events.append({
      kind: EVENT.bmcScanned,
      actor,
      details: {
        subnet: result.plan.subnet,
        protocols: [...(result.plan.ipmi ? [`ipmi/${result.plan.ipmi.port}`] : []), ...(result.plan.redfish ? [`redfish/${result.plan.redfish.port}`] : [])],
        ...result.counts,
        new: added.size,
        durationMs: result.durationMs,
        ...(result.notScanned.length ? { notScanned: result.notScanned } : {}),
      },
    });
    return { records, added };
  });
}
