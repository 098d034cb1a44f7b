/**
 * `npm run bench -- bmc-scan`: `fleet discover bmc` of a /24 on loopback
 * (127.0.0.0/24) where one address answers (ipmi_sim for IPMI and the
 * DMTF-mockup Redfish double over HTTPS, both on 127.0.0.1) and 253 are
 * silent, through the scan engine the server runs (plan → probes →
 * classification). Defaults first (64 in flight, 3 s per address, two IPMI
 * retries), then with every address in flight at once. Each run must find
 * the one BMC and 253 silent addresses before its time counts. The silent
 * addresses dominate: a UDP probe to nobody costs the whole timeout (Linux
 * drops the ICMP port-unreachable for an unconnected socket), a TCP connect
 * to a closed loopback port is refused at once; on a real network a
 * silent TCP peer costs the timeout too, which the bound allows for.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { planScan, type ScanRequestInput } from '../server/discovery/scan-input.js';
import { runBmcScan } from '../server/discovery/scan.js';
import { IPMI_SIM, startIpmiSims, type IpmiSimLab } from '../test/helpers/ipmisim.js';
import { makeTestPki, RedfishDouble } from '../test/helpers/redfish-double.js';
import { writeResult } from './table.js';

let dir: string;
let lab: IpmiSimLab;
let redfish: RedfishDouble;

beforeAll(async () => {
  if (!IPMI_SIM) throw new Error('the bmc-scan benchmark needs ipmi_sim (openipmi): sudo bash .ci/deps.sh');
  dir = await mkdtemp(join(tmpdir(), 'fleet-bench-scan-'));
  await mkdir(join(dir, 'pki'));
  lab = await startIpmiSims(1);
  redfish = await RedfishDouble.start({ tls: makeTestPki(join(dir, 'pki')).server });
}, 120_000);

afterAll(async () => {
  await redfish?.close();
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('scan of 127.0.0.0/24, one BMC answering', async () => {
  const base: ScanRequestInput = { subnet: '127.0.0.0/24', ipmiPort: lab.bmcs[0]!.port, redfishPort: redfish.port };
  const runs: [string, ScanRequestInput][] = [
    ['defaults: 64 in flight, 3 s timeout', base],
    ['256 in flight, 3 s timeout', { ...base, concurrency: 256 }],
    ['64 in flight, 1 s timeout', { ...base, timeoutMs: 1000 }],
  ];
  const rows: (string | number)[][] = [];
  for (const [label, req] of runs) {
    const plan = planScan(req);
    const r = await runBmcScan(plan);
    expect(r.counts).toEqual({ addresses: 254, answered: 1, silent: 253, bmcs: 1, other: 0 });
    expect(r.silent).toEqual(['127.0.0.2-127.0.0.254']);
    expect(r.answered[0]).toMatchObject({ address: '127.0.0.1', ipmi: { verdict: 'bmc' }, redfish: { verdict: 'bmc' } });
    // Two requests per address, each sent 1 + 2 retries times at most.
    expect(r.ipmiPackets!.sent).toBeLessThanOrEqual(254 * 2 * 3);
    rows.push([
      label,
      (r.durationMs / 1000).toFixed(2),
      (plan.boundMs / 1000).toFixed(0),
      `${r.counts.answered} / ${r.counts.silent}`,
      r.ipmiPackets!.sent,
      r.ipmiPackets!.retransmits,
    ]);
  }
  writeResult('bmc-scan', {
    title: 'BMC discovery by scan: 127.0.0.0/24 on loopback, one BMC (ipmi_sim + Redfish double on 127.0.0.1), 253 silent',
    headers: ['run', 'seconds', 'bound (s)', 'answered / silent', 'IPMI datagrams sent', 'of which retransmits'],
    rows,
    notes: [
      'Per address: RMCP presence ping and Get Channel Auth Caps side by side, each sent 3 times (timeout / 3 apart) to a silent address; GET /redfish/v1/ over unverified TLS at the same time.',
      'A silent address costs one timeout, so a /24 takes about ceil(254 / concurrency) timeouts; the bound is (ceil(n / c) + 1) × 2 timeouts.',
      'The Redfish probes of silent loopback addresses are refused at once (closed TCP port); IPMI sets the pace.',
    ],
  });
});
