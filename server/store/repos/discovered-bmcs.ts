/**
 * BMCs found by scanning a subnet (migration 009, `fleet discover bmc`): one
 * row per address with what its IPMI and Redfish services said before any
 * authentication. A scan refreshes what it saw and keeps the rest (an
 * IPMI-only scan leaves an earlier Redfish finding in place). The first
 * sighting of an address writes a bmc.discovered event, in the same
 * transaction. Nothing here is secret: a scan uses no credential.
 */
import type { Kysely } from 'kysely';
import { EVENT } from '../../../common/events.js';
import { FleetError } from '../../../common/errors.js';
import { isIPv4 } from '../../../common/patterns.js';
import type { HostFinding, IpmiFinding, RedfishFinding } from '../../discovery/scan-classify.js';
import { appendEvent, chunks, naturalCompare, type StoreContext } from '../context.js';
import { parseJson } from '../json.js';
import type { DB } from '../schema.js';
import type { WriteContext } from '../types.js';

/** Table of migration 009. */
export interface DiscoveredBmcsTable {
  address: string;
  ipmi_port: number | null;
  /** IpmiFinding without verdict and port, as JSON. */
  ipmi: string | null;
  redfish_port: number | null;
  /** RedfishFinding without verdict and port, as JSON. */
  redfish: string | null;
  uuid: string | null;
  vendor: string | null;
  product: string | null;
  tls_fingerprint: string | null;
  first_seen: string;
  last_seen: string;
}

type BmcsDB = DB & { discovered_bmcs: DiscoveredBmcsTable };

export type StoredIpmi = Omit<IpmiFinding, 'verdict'>;
export type StoredRedfish = Omit<RedfishFinding, 'verdict'>;

export interface DiscoveredBmc {
  address: string;
  /** What IPMI said when it last answered as a BMC; null: never did. */
  ipmi: StoredIpmi | null;
  redfish: StoredRedfish | null;
  /** Redfish service root UUID. */
  uuid: string | null;
  vendor: string | null;
  product: string | null;
  /** SHA-256 of the Redfish certificate last seen (not trusted: seen). */
  tlsFingerprint: string | null;
  firstSeen: string;
  lastSeen: string;
  /** Nodes whose BMC is at this address (fleet.yaml), if any. */
  nodes: string[];
}

export class DiscoveredBmcRepository {
  constructor(private readonly ctx: StoreContext) {}

  private get q(): Kysely<BmcsDB> {
    return this.ctx.q.withTables<{ discovered_bmcs: DiscoveredBmcsTable }>();
  }

  /** Records what a scan found at one address (a host whose verdict is bmc). */
  async record(h: HostFinding, wc: WriteContext): Promise<{ firstSeen: boolean; bmc: DiscoveredBmc }> {
    if (!isIPv4(h.address)) throw new FleetError('request.invalid', `not an IPv4 address: ${h.address}`);
    if (h.verdict !== 'bmc') throw new FleetError('internal', `${h.address} is not a BMC (${h.verdict}); only BMCs are recorded`);
    const ipmi = h.ipmi?.verdict === 'bmc' ? h.ipmi : null;
    const redfish = h.redfish?.verdict === 'bmc' ? h.redfish : null;
    return this.ctx.write(async (trx) => {
      const t = trx.withTables<{ discovered_bmcs: DiscoveredBmcsTable }>();
      const now = this.ctx.nowIso();
      const existing = await t.selectFrom('discovered_bmcs').select('address').where('address', '=', h.address).executeTakeFirst();
      const seen = {
        ...(ipmi ? { ipmi_port: ipmi.port, ipmi: JSON.stringify(stored(ipmi)) } : {}),
        ...(redfish
          ? {
              redfish_port: redfish.port,
              redfish: JSON.stringify(stored(redfish)),
              uuid: redfish.uuid,
              vendor: redfish.vendor,
              product: redfish.product,
              tls_fingerprint: redfish.fingerprint,
            }
          : {}),
        last_seen: now,
      };
      if (existing) {
        await t.updateTable('discovered_bmcs').set(seen).where('address', '=', h.address).execute();
      } else {
        await t
          .insertInto('discovered_bmcs')
          .values({ address: h.address, ipmi_port: null, ipmi: null, redfish_port: null, redfish: null, uuid: null, vendor: null, product: null, tls_fingerprint: null, first_seen: now, ...seen })
          .execute();
        const owners = await trx.selectFrom('bmc_endpoints').select('node').where('address', '=', h.address).execute();
        await appendEvent(trx, now, {
          node: owners.length === 1 ? owners[0]!.node : null,
          kind: EVENT.bmcDiscovered,
          actor: wc.actor,
          cause: wc.cause ?? null,
          details: {
            address: h.address,
            protocols: [...(ipmi ? [`ipmi/${ipmi.port}`] : []), ...(redfish ? [`redfish/${redfish.port}`] : [])],
            ...(ipmi ? { ipmiVersions: ipmi.versions, ...(ipmi.enterprise ? { enterprise: ipmi.enterprise } : {}) } : {}),
            ...(redfish ? { uuid: redfish.uuid, vendor: redfish.vendor, product: redfish.product, redfishVersion: redfish.redfishVersion, tlsFingerprint: redfish.fingerprint } : {}),
          },
        });
      }
      return { firstSeen: !existing, bmc: (await this.get(h.address))! };
    });
  }

  /** Every BMC found, in address order. */
  async list(): Promise<DiscoveredBmc[]> {
    const rows = await this.q.selectFrom('discovered_bmcs').selectAll().execute();
    const out = await this.withNodes(rows);
    return out.sort((a, b) => naturalCompare(a.address, b.address));
  }

  async get(address: string): Promise<DiscoveredBmc | null> {
    const row = await this.q.selectFrom('discovered_bmcs').selectAll().where('address', '=', address).executeTakeFirst();
    return row ? (await this.withNodes([row]))[0]! : null;
  }

  /** Forgets an address (no event: like discovered machines, a cache of observations). */
  async remove(address: string): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      const res = await trx.withTables<{ discovered_bmcs: DiscoveredBmcsTable }>().deleteFrom('discovered_bmcs').where('address', '=', address).executeTakeFirst();
      return Number(res.numDeletedRows) > 0;
    });
  }

  private async withNodes(rows: DiscoveredBmcsTable[]): Promise<DiscoveredBmc[]> {
    const owners = new Map<string, string[]>();
    for (const part of chunks([...new Set(rows.map((r) => r.address))])) {
      const eps = await this.ctx.q.selectFrom('bmc_endpoints').select(['address', 'node']).where('address', 'in', part).orderBy('node').execute();
      for (const e of eps) owners.set(e.address, [...(owners.get(e.address) ?? []), e.node]);
    }
    return rows.map((r) => toBmc(r, owners.get(r.address) ?? []));
  }
}

function stored<T extends { verdict: unknown }>(f: T): Omit<T, 'verdict'> {
  const { verdict: _verdict, ...rest } = f;
  return rest;
}

function toBmc(r: DiscoveredBmcsTable, nodes: string[]): DiscoveredBmc {
  return {
    address: r.address,
    ipmi: r.ipmi === null ? null : (parseJson(r.ipmi) as StoredIpmi),
    redfish: r.redfish === null ? null : (parseJson(r.redfish) as StoredRedfish),
    uuid: r.uuid,
    vendor: r.vendor,
    product: r.product,
    tlsFingerprint: r.tls_fingerprint,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    nodes,
  };
}
