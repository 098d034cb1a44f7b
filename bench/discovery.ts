/**
 * Discovery under load: perfdhcp plays N distinct unknown PXE clients against
 * fleet's real dnsmasq (DnsmasqSupervisor, in a network namespace); every
 * lease goes dhcp-script → FIFO → DiscoveryListener → DiscoveryConsumer →
 * store. The peer figure is dnsmasq's own lease file: every MAC with a lease
 * there must be in store.discovered, none lost.
 *
 *   const r = await benchDiscovery({ clients: 1000 });   // prints the table; the integration test runs 200
 *   writeResult('discovery', discoveryBenchTable(r));    // from a bench/*.bench.ts runner (bench/table.ts)
 * Needs root, dnsmasq-base, kea-admin (perfdhcp).
 *
 * perfdhcp -R N uses N client MACs in turn; -n 3N sends each of them three
 * times, so a DISCOVER that perfdhcp gave up on (it does not retransmit) is
 * asked again: later rounds of the same MACs show up as "old" events.
 */
import { readFile } from 'node:fs/promises';
import { parseLeaseFile } from '../server/netboot/dnsmasq/leases.js';
import { type NetbootLab, skipReason, startNetbootLab } from '../test/helpers/netns.js';
import { type BenchTable, renderTable } from './table.js';

export interface DiscoveryBenchOptions {
  /** Distinct unknown clients (perfdhcp -R). Default 1000, at most 20000. */
  clients?: number;
  /** perfdhcp exchange rate per second (-r). Default 300 (on 2 cores dnsmasq + one hook process per event saturate near 400 events/s). */
  rate?: number;
  /** Exchanges per client (-n passes*N): perfdhcp never retransmits, so later passes ask again for clients whose exchange it dropped. Default 3. */
  passes?: number;
  /** Bound on the whole run. Default 120 s. */
  timeoutMs?: number;
  /** Print the table. Default true. */
  print?: boolean;
}

export interface DiscoveryBenchResult {
  clients: number;
  /** DHCP exchanges perfdhcp completed (DISCOVER-OFFER and REQUEST-ACK received) and gave up on. */
  perfdhcp: { sent: number; acks: number; drops: number; seconds: number };
  /** Leases in dnsmasq's lease file: the peer's own count. */
  leases: number;
  /** Distinct MACs in store.discovered. */
  discovered: number;
  /** Leases dnsmasq has that the store does not. */
  lost: number;
  /** Lines the listener accepted (add + old + del). */
  events: number;
  malformed: number;
  failed: number;
  /** From the first perfdhcp packet to the last event applied to the store. */
  seconds: number;
  eventsPerSecond: number;
  /** From the first perfdhcp packet to the last machine recorded for the first time. */
  discoverySeconds: number;
  discoveredPerSecond: number;
  maxQueued: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function stat(text: string, section: string, key: string): number {
  const i = text.indexOf(section);
  if (i < 0) return 0;
  const m = new RegExp(`${key}:\\s*(\\d+)`).exec(text.slice(i));
  return m ? Number(m[1]) : 0;
}

/** The result as a bench/table.ts table (writeResult('discovery', ...) stores it under bench/results/). */
export function discoveryBenchTable(r: DiscoveryBenchResult): BenchTable {
  return {
    title: `Discovery: ${r.clients} unknown PXE clients (perfdhcp) → dnsmasq → dhcp-script → store`,
    headers: ['metric', 'value'],
    rows: [
      ['distinct clients (perfdhcp -R)', r.clients],
      ['DHCP exchanges acked / sent (perfdhcp)', `${r.perfdhcp.acks} / ${r.perfdhcp.sent}`],
      ['perfdhcp run time (s)', r.perfdhcp.seconds.toFixed(2)],
      ["leases in dnsmasq's lease file (peer figure)", r.leases],
      ['discovered in the store', r.discovered],
      ['lost (leases not in the store)', r.lost],
      ['hook events received (add/old/del)', r.events],
      ['malformed lines / failed store writes', `${r.malformed} / ${r.failed}`],
      ['seconds, first packet to last event applied', r.seconds.toFixed(2)],
      ['events/s', r.eventsPerSecond.toFixed(0)],
      ['seconds, first packet to last machine discovered', r.discoverySeconds.toFixed(2)],
      ['discovered machines/s', r.discoveredPerSecond.toFixed(0)],
      ['largest consumer queue', r.maxQueued],
    ],
    notes: [
      'perfdhcp -R N -n 3N: every client asks three times (later exchanges are "old" events), so a DISCOVER perfdhcp gave up on is asked again.',
      'dnsmasq runs the hook serially (one bash process per event); that, not the server, bounds events/s.',
    ],
  };
}

export async function benchDiscovery(opts: DiscoveryBenchOptions = {}): Promise<DiscoveryBenchResult> {
  const clients = opts.clients ?? 1000;
  if (!Number.isInteger(clients) || clients < 1 || clients > 20_000) throw new Error('clients must be 1-20000');
  const rate = opts.rate ?? 300;
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const why = skipReason(['dnsmasq', 'perfdhcp']);
  if (why) throw new Error(`discovery bench cannot run: ${why}`);

  let nb: NetbootLab | null = null;
  try {
    nb = await startNetbootLab({
      // A large unknown range: dnsmasq hashes a MAC into the range and walks to the next free
      // address, so a nearly full range makes concurrent clients collide (NAK "address in use").
      address: '10.77.0.1/16',
      settings: { subnet: '10.77.0.0/16', unknownRange: { start: '10.77.16.1', end: '10.77.255.254' } },
    });
    const nic = await nb.lab.addClient('52:54:00:fe:00:01', { address: '10.77.0.2/16' });
    const vendor = Buffer.from('PXEClient:Arch:00007:UNDI:003016').toString('hex');
    const passes = opts.passes ?? 3;
    const periodS = Math.max(5, Math.ceil((passes * 2 * clients) / rate) + 5);
    const t0 = performance.now();
    const perf = await nb.lab.exec(
      nb.lab.client,
      ['perfdhcp', '-4', '-l', nic, '-R', String(clients), '-n', String(passes * clients), '-r', String(rate), '-p', String(periodS), '-o', '93,0007', '-o', `60,${vendor}`],
      { timeoutMs: Math.min(deadline - Date.now(), (periodS + 15) * 1000) },
    );
    const perfSecs = (performance.now() - t0) / 1000;
    const out = perf.stdout + perf.stderr;

    // Wait, bounded, until the store holds every leased MAC and the pipeline is quiet.
    let leases = 0;
    let discovered = 0;
    let lastApplied = nb.consumer.stats().applied;
    let lastChange = performance.now();
    let lastFirstSeen = 0;
    let lastDiscovery = performance.now();
    while (Date.now() < deadline) {
      leases = parseLeaseFile(await readFile(nb.paths.leaseFile, 'utf8').catch(() => '')).length;
      discovered = nb.consumer.stats().firstSeen;
      if (discovered !== lastFirstSeen) {
        lastFirstSeen = discovered;
        lastDiscovery = performance.now();
      }
      const applied = nb.consumer.stats().applied;
      if (applied !== lastApplied) {
        lastApplied = applied;
        lastChange = performance.now();
      }
      const quiet = performance.now() - lastChange > 1000 && nb.consumer.stats().queued === 0;
      if (discovered >= leases && leases > 0 && quiet) break;
      await sleep(25);
    }
    const macs = new Set((await nb.store.discovered.list()).map((m) => m.mac));
    const leased = parseLeaseFile(await readFile(nb.paths.leaseFile, 'utf8').catch(() => ''));
    const ls = nb.listener.stats();
    const cs = nb.consumer.stats();
    const seconds = (lastChange - t0) / 1000;
    const discoverySeconds = (lastDiscovery - t0) / 1000;
    const result: DiscoveryBenchResult = {
      clients,
      perfdhcp: { sent: stat(out, 'DISCOVER-OFFER', 'sent packets'), acks: stat(out, 'REQUEST-ACK', 'received packets'), drops: stat(out, 'DISCOVER-OFFER', 'drops') + stat(out, 'REQUEST-ACK', 'drops'), seconds: perfSecs },
      leases: leased.length,
      discovered: macs.size,
      lost: leased.filter((l) => !macs.has(l.mac)).length,
      events: ls.accepted,
      malformed: ls.malformed + ls.unauthenticated + ls.tooLong,
      failed: cs.failed,
      seconds,
      eventsPerSecond: ls.accepted / seconds,
      discoverySeconds,
      discoveredPerSecond: macs.size / discoverySeconds,
      maxQueued: cs.maxQueued,
    };
    if (opts.print !== false) console.log(renderTable(discoveryBenchTable(result)));
    return result;
  } finally {
    await nb?.stop();
  }
}
