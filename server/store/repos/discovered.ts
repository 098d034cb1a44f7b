import crypto from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { FleetError, isFleetError } from '../../../common/errors.js';
import { hashToken } from '../crypto.js';
import { inspectionSummary, type Inspection } from '../../discovery/inspection.js';
import { MAC_CANONICAL } from '../../../common/patterns.js';
import { appendEvent, bool, eventValues, int, type StoreContext } from '../context.js';
import { prepared } from '../prepared.js';
import type { DB } from '../schema.js';
import type { DiscoveredMachine, DiscoveryObservation, WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

/** At most this many reports in one transaction: a long one would hold every other writer up. */
const MAX_REPORT_BATCH = 100;

interface PendingReport {
  key: string;
  token: string;
  inspection: Inspection;
  ip: string;
  resolve: (r: { mac: string; inspectedAt: string }) => void;
  reject: (e: unknown) => void;
}

interface TokenRow {
  mac: string;
  inspect_token: string | null;
  inspect_token_expires_at: string | null;
  inspect_token_used_at: string | null;
  rejected_at: string | null;
  rejected_by: string | null;
  node: string | null;
}

/** What a machine's events are before it has a name: on accept they become its node's (accepted()). */
const MACHINE_EVENT_KINDS = [EVENT.machineDiscovered, EVENT.machineInspected, EVENT.inspectionRefused] as const;

/**
 * Machines seen on the provisioning network (dnsmasq lease events, iPXE
 * fetches). `node` tells whether a declared node owns the MAC.
 */
export class DiscoveredRepository {
  /** The inspection report's hot path (1,000 machines report at once: bench discovery-inspection), compiled once. */
  private readonly tokenRowQuery = prepared<{ mac: string }, TokenRow>((db, p) =>
    db
      .selectFrom('discovered')
      .leftJoin('interfaces', 'interfaces.mac', 'discovered.mac')
      .select(['discovered.mac', 'discovered.inspect_token', 'discovered.inspect_token_expires_at', 'discovered.inspect_token_used_at', 'discovered.rejected_at', 'discovered.rejected_by', 'interfaces.node as node'])
      .where('discovered.mac', '=', p('mac')),
  );
  private readonly keepInspection = prepared<{ mac: string; inspection: string; when: string; ip: string }, never>((db, p) =>
    db
      .updateTable('discovered')
      .set({ inspection: p('inspection'), inspected_at: p('when'), inspect_token_used_at: p('when'), last_seen: p('when'), ip: p('ip') })
      .where('mac', '=', p('mac')),
  );

  /** Inspection reports waiting for their batch's transaction (recordInspection). */
  private readonly pendingReports: PendingReport[] = [];

  constructor(private readonly ctx: StoreContext) {}

  /**
   * Records a sighting: inserts the machine (and a machine.discovered event)
   * the first time, refreshes last_seen and the given fields afterwards.
   */
  async record(obs: DiscoveryObservation, at?: Date): Promise<{ firstSeen: boolean; machine: DiscoveredMachine }> {
    const mac = obs.mac.toLowerCase();
    if (!MAC_CANONICAL.test(mac)) throw new FleetError('request.invalid', `not a MAC address: ${obs.mac}`);
    return this.ctx.write(async (trx) => {
      const when = (at ?? this.ctx.now()).toISOString();
      const existing = await trx.selectFrom('discovered').select('mac').where('mac', '=', mac).executeTakeFirst();
      if (!existing) {
        await trx
          .insertInto('discovered')
          .values({
            mac,
            ip: obs.ip ?? null,
            hostname: obs.hostname ?? null,
            vendor_class: obs.vendorClass ?? null,
            arch: obs.arch ?? null,
            pxe: int(obs.pxe === true),
            first_seen: when,
            last_seen: when,
          })
          .execute();
        const owner = await trx.selectFrom('interfaces').select('node').where('mac', '=', mac).executeTakeFirst();
        await appendEvent(trx, when, {
          node: owner?.node ?? null,
          kind: EVENT.machineDiscovered,
          actor: 'netboot',
          details: { mac, ip: obs.ip ?? null, vendorClass: obs.vendorClass ?? null, arch: obs.arch ?? null, pxe: obs.pxe === true },
        });
      } else {
        await trx
          .updateTable('discovered')
          .set({
            last_seen: when,
            ...(obs.ip !== undefined ? { ip: obs.ip } : {}),
            ...(obs.hostname !== undefined ? { hostname: obs.hostname } : {}),
            ...(obs.vendorClass !== undefined ? { vendor_class: obs.vendorClass } : {}),
            ...(obs.arch !== undefined ? { arch: obs.arch } : {}),
            ...(obs.pxe !== undefined ? { pxe: int(obs.pxe) } : {}),
          })
          .where('mac', '=', mac)
          .execute();
      }
      const machine = (await this.select(trx).where('discovered.mac', '=', mac).execute()).map(toMachine)[0]!;
      return { firstSeen: !existing, machine };
    });
  }

  /** Machines newest sighting first; unknownOnly leaves out MACs a node declares. */
  async list(opts: { unknownOnly?: boolean; since?: string } = {}): Promise<DiscoveredMachine[]> {
    let s = this.select(this.ctx.q);
    if (opts.unknownOnly) s = s.where('interfaces.node', 'is', null);
    if (opts.since !== undefined) s = s.where('discovered.last_seen', '>=', opts.since);
    return (await s.orderBy('discovered.last_seen', 'desc').orderBy('discovered.mac').execute()).map(toMachine);
  }

  async get(mac: string): Promise<DiscoveredMachine | null> {
    const rows = await this.select(this.ctx.q).where('discovered.mac', '=', mac.toLowerCase()).execute();
    return rows.map(toMachine)[0] ?? null;
  }

  /**
   * Sets machines aside (fleet discover --reject): discovery plans skip them
   * and list them as rejected; they stay rejected when seen again. Writes
   * machine.rejected per machine newly rejected; one already rejected is
   * left as it was. Refuses (nothing changed) a MAC that is not discovered
   * (not_found) or that a node declares (conflict).
   */
  async reject(macs: readonly string[], wc: WriteContext): Promise<{ mac: string; rejectedAt: string; already: boolean }[]> {
    return this.ctx.write(async (trx) => {
      const when = this.ctx.nowIso();
      const out: { mac: string; rejectedAt: string; already: boolean }[] = [];
      for (const raw of macs) {
        const mac = raw.toLowerCase();
        const row = (await this.select(trx).where('discovered.mac', '=', mac).execute())[0];
        if (!row) throw new FleetError('not_found', `no discovered machine with MAC ${mac} (see fleet discovered)`, { mac });
        if (row.node !== null) throw new FleetError('conflict', `MAC ${mac} belongs to node ${row.node}: it is not a discovered machine to reject`, { mac, node: row.node });
        if (row.rejected_at !== null) {
          out.push({ mac, rejectedAt: row.rejected_at, already: true });
          continue;
        }
        await trx.updateTable('discovered').set({ rejected_at: when, rejected_by: wc.actor }).where('mac', '=', mac).execute();
        await appendEvent(trx, when, { kind: EVENT.machineRejected, actor: wc.actor, cause: wc.cause ?? null, details: { mac } });
        out.push({ mac, rejectedAt: when, already: false });
      }
      return out;
    });
  }

  /**
   * Takes rejected machines back (fleet discover --unreject): plans consider
   * them again. Writes machine.unrejected per machine that was rejected; one
   * that was not is left as it was (already). Refuses, with nothing changed,
   * a MAC that is not discovered.
   */
  async unreject(macs: readonly string[], wc: WriteContext): Promise<{ mac: string; already: boolean }[]> {
    return this.ctx.write(async (trx) => {
      const when = this.ctx.nowIso();
      const out: { mac: string; already: boolean }[] = [];
      for (const raw of macs) {
        const mac = raw.toLowerCase();
        const row = (await this.select(trx).where('discovered.mac', '=', mac).execute())[0];
        if (!row) throw new FleetError('not_found', `no discovered machine with MAC ${mac} (see fleet discovered)`, { mac });
        if (row.rejected_at === null) {
          out.push({ mac, already: true });
          continue;
        }
        await trx.updateTable('discovered').set({ rejected_at: null, rejected_by: null }).where('mac', '=', mac).execute();
        await appendEvent(trx, when, { kind: EVENT.machineUnrejected, actor: wc.actor, cause: wc.cause ?? null, details: { mac, rejectedAt: row.rejected_at, rejectedBy: row.rejected_by } });
        out.push({ mac, already: false });
      }
      return out;
    });
  }

  /**
   * A discovered machine became node `node` through a discovery rule: the
   * machine is forgotten and machine.accepted is written (on the node, with
   * the rule and what it gave), in one transaction.
   */
  async accepted(mac: string, node: string, details: Record<string, unknown>, wc: WriteContext): Promise<void> {
    await this.ctx.write(async (trx) => {
      const when = this.ctx.nowIso();
      const res = await trx.deleteFrom('discovered').where('mac', '=', mac.toLowerCase()).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) throw new FleetError('not_found', `no discovered machine with MAC ${mac}`, { mac });
      // The machine's story before it had a name (its first lease, its inspection reports, refusals)
      // is the node's now: `fleet events NODE` tells it from the first DHCP lease. Times, ids and
      // details stay as written; only the node they are about is filled in.
      await trx
        .updateTable('events')
        .set({ node })
        .where('node', 'is', null)
        .where('kind', 'in', [...MACHINE_EVENT_KINDS])
        .where(this.ctx.engine === 'postgres' ? sql<string>`(details::jsonb ->> 'mac')` : sql<string>`json_extract(details, '$.mac')`, '=', mac.toLowerCase())
        .execute();
      await appendEvent(trx, when, { node, kind: EVENT.machineAccepted, actor: wc.actor, cause: wc.cause ?? null, details: { mac: mac.toLowerCase(), ...details } });
    });
  }

  /** The machine's current inspect token (its SHA-256, never the token) and expiry; null when none. */
  async inspectTokenOf(mac: string): Promise<{ hash: string; expiresAt: string } | null> {
    const r = await this.ctx.q.selectFrom('discovered').select(['inspect_token', 'inspect_token_expires_at']).where('mac', '=', mac.toLowerCase()).executeTakeFirst();
    return r && r.inspect_token !== null && r.inspect_token_expires_at !== null ? { hash: r.inspect_token, expiresAt: r.inspect_token_expires_at } : null;
  }

  /**
   * A new inspect token for the machine's inspect script (its iPXE script
   * carries it to the boot environment's report and polls). Only its
   * SHA-256 is kept; the machine's earlier token stops working. The
   * machine must have been recorded (its script fetch records it first).
   */
  async issueInspectToken(mac: string, ttlMs: number): Promise<{ token: string; expiresAt: string }> {
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new FleetError('request.invalid', 'token ttl must be positive');
    const token = crypto.randomBytes(32).toString('base64url');
    return this.ctx.write(async (trx) => {
      const expiresAt = new Date(this.ctx.now().getTime() + ttlMs).toISOString();
      const res = await trx
        .updateTable('discovered')
        .set({ inspect_token: hashToken(token), inspect_token_expires_at: expiresAt, inspect_token_used_at: null })
        .where('mac', '=', mac.toLowerCase())
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) throw new FleetError('not_found', `no discovered machine with MAC ${mac}`, { mac });
      return { token, expiresAt };
    });
  }

  /**
   * Checks an inspect token (a poll may use it again after the report).
   * Throws auth.forbidden with the reason in words, never the token; the
   * machine's row when it holds.
   */
  async checkInspectToken(mac: string, token: string): Promise<{ mac: string; tokenUsedAt: string | null; rejectedAt: string | null; rejectedBy: string | null }> {
    const row = await this.tokenRow(this.ctx.q, mac.toLowerCase());
    inspectRefusal(row, token, this.ctx.now());
    return { mac: row!.mac, tokenUsedAt: row!.inspect_token_used_at, rejectedAt: row!.rejected_at, rejectedBy: row!.rejected_by };
  }

  /**
   * Keeps an inspection report: one per inspect token (a second report of
   * the same boot is refused), the token checked, the report and
   * machine.inspected (a summary: never a secret) written, and committed
   * before this resolves.
   *
   * Reports that arrive together are written together (group commit): a
   * rack powered on at once reports within a second, and one transaction
   * per report spent more on BEGIN/COMMIT and the WAL than on the report
   * (bench discovery-inspection). Each report of a batch is checked on its
   * own and a refused one (auth.forbidden, thrown before it writes) leaves
   * the others alone; an error of the database fails the whole batch,
   * nothing of it kept. Inside a caller's transaction it joins that one.
   */
  recordInspection(mac: string, token: string, inspection: Inspection, ip: string): Promise<{ mac: string; inspectedAt: string }> {
    const report: PendingReport = { key: mac.toLowerCase(), token, inspection, ip, resolve: () => {}, reject: () => {} };
    if (this.ctx.inTransaction) return this.ctx.write((trx) => this.keepReport(trx, report));
    return new Promise((resolve, reject) => {
      report.resolve = resolve;
      report.reject = reject;
      this.pendingReports.push(report);
      // The first of a batch schedules its write; the ones of the same turn of the event loop join it.
      if (this.pendingReports.length === 1) setImmediate(() => void this.writeReports());
    });
  }

  private async writeReports(): Promise<void> {
    const batch = this.pendingReports.splice(0, MAX_REPORT_BATCH);
    if (this.pendingReports.length > 0) setImmediate(() => void this.writeReports());
    const outcomes: ({ mac: string; inspectedAt: string } | FleetError)[] = [];
    try {
      await this.ctx.write(async (trx) => {
        outcomes.length = 0;
        for (const r of batch) {
          try {
            outcomes.push(await this.keepReport(trx, r));
          } catch (e) {
            if (!isFleetError(e) || e.code !== 'auth.forbidden') throw e;
            outcomes.push(e);
          }
        }
      });
    } catch (e) {
      for (const r of batch) r.reject(e);
      return;
    }
    batch.forEach((r, i) => {
      const o = outcomes[i]!;
      if (o instanceof FleetError) r.reject(o);
      else r.resolve(o);
    });
  }

  /** One report, in the caller's transaction; auth.forbidden before anything is written. */
  private async keepReport(trx: Kysely<DB>, r: PendingReport): Promise<{ mac: string; inspectedAt: string }> {
    const { key, token, inspection, ip } = r;
    const now = this.ctx.now();
    const row = await this.tokenRow(trx, key);
    inspectRefusal(row, token, now);
    if (row!.inspect_token_used_at !== null) {
      throw new FleetError('auth.forbidden', `already used by a report at ${row!.inspect_token_used_at} (one report per boot)`, { mac: key });
    }
    const when = now.toISOString();
    await this.keepInspection.execute(trx, { mac: key, inspection: JSON.stringify(inspection), when, ip });
    await this.ctx.appendEventRow(
      trx,
      eventValues(when, { node: row!.node, kind: EVENT.machineInspected, actor: 'bootenv', details: { mac: key, ip, ...inspectionSummary(inspection) } }),
    );
    // What was just written, not read back: a report is on the inspection hot path.
    return { mac: key, inspectedAt: when };
  }

  /** Forgets a machine (no event: discovery data is a cache of observations). Returns whether it was there. */
  async remove(mac: string): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      const res = await trx.deleteFrom('discovered').where('mac', '=', mac.toLowerCase()).executeTakeFirst();
      return Number(res.numDeletedRows) > 0;
    });
  }

  /** What the token checks need, without the stored report (kilobytes of JSON a check never reads). */
  private tokenRow(q: Kysely<DB>, key: string): Promise<TokenRow | undefined> {
    return this.tokenRowQuery.first(q, { mac: key });
  }

  private select(q: Kysely<DB>) {
    return q
      .selectFrom('discovered')
      .leftJoin('interfaces', 'interfaces.mac', 'discovered.mac')
      .selectAll('discovered')
      .select('interfaces.node as node');
  }
}

/** Why an inspect token is refused, as auth.forbidden; nothing when it holds. */
function inspectRefusal(
  row: { mac: string; inspect_token: string | null; inspect_token_expires_at: string | null } | undefined,
  token: string,
  now: Date,
): void {
  if (!row) throw new FleetError('auth.forbidden', 'not a discovered machine (no inspect script was served to this MAC)');
  if (row.inspect_token === null || row.inspect_token_expires_at === null) throw new FleetError('auth.forbidden', 'no inspect token was issued to this machine', { mac: row.mac });
  const a = Buffer.from(hashToken(token));
  const b = Buffer.from(row.inspect_token);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) throw new FleetError('auth.forbidden', "unknown token (not the one of this machine's last inspect script)", { mac: row.mac });
  if (row.inspect_token_expires_at <= now.toISOString()) throw new FleetError('auth.forbidden', `expired at ${row.inspect_token_expires_at}`, { mac: row.mac });
}

function toMachine(r: {
  mac: string;
  ip: string | null;
  hostname: string | null;
  vendor_class: string | null;
  arch: string | null;
  pxe: number;
  first_seen: string;
  last_seen: string;
  node: string | null;
  rejected_at: string | null;
  rejected_by: string | null;
  inspection: string | null;
  inspected_at: string | null;
}): DiscoveredMachine {
  return {
    mac: r.mac,
    ip: r.ip,
    hostname: r.hostname,
    vendorClass: r.vendor_class,
    arch: r.arch,
    pxe: bool(r.pxe),
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
    node: r.node,
    rejectedAt: r.rejected_at,
    rejectedBy: r.rejected_by,
    inspection: r.inspection === null ? null : (JSON.parse(r.inspection) as Inspection),
    inspectedAt: r.inspected_at,
  };
}
