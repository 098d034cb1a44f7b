import type { Kysely } from 'kysely';
import { FleetError } from '../../../common/errors.js';
import { eventValues, type StoreContext } from '../context.js';
import { parseJson } from '../json.js';
import { prepared } from '../prepared.js';
import type { DB } from '../schema.js';
import type { WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

/** Table of migration 002 (kept here: schema.ts describes 001). */
export interface AgentsTable {
  node: string;
  cert_serial: string;
  cert_fingerprint: string;
  cert_pem: string;
  cert_not_after: string;
  key_sha256: string;
  enrolled_at: string;
  identity: string;
  agent_version: string | null;
  boot_id: string | null;
  booted_at: string | null;
  applied_version: string | null;
  applied_at: string | null;
  updated_at: string;
}

export type AgentDB = DB & { agents: AgentsTable };

/** What a machine said about itself when it enrolled. */
export interface AgentIdentity {
  serial: string;
  uuid: string;
  macs: string[];
  hostname: string;
}

export interface AgentRecord {
  node: string;
  certSerial: string;
  /** SHA-256 of the node certificate (DER), upper-case colon hex. */
  certFingerprint: string;
  certPem: string;
  certNotAfter: string;
  /** SHA-256 (hex) of the node's public key. */
  keySha256: string;
  enrolledAt: string;
  identity: AgentIdentity;
  agentVersion: string | null;
  bootId: string | null;
  bootedAt: string | null;
  appliedVersion: string | null;
  appliedAt: string | null;
  updatedAt: string;
}

export interface Enrolment {
  certSerial: string;
  certFingerprint: string;
  certPem: string;
  certNotAfter: string;
  keySha256: string;
  identity: AgentIdentity;
  agentVersion?: string | null;
  /** Secret-free context for the event (peer address, ...). */
  details?: Record<string, unknown>;
}

function toRecord(r: AgentsTable): AgentRecord {
  return {
    node: r.node,
    certSerial: r.cert_serial,
    certFingerprint: r.cert_fingerprint,
    certPem: r.cert_pem,
    certNotAfter: r.cert_not_after,
    keySha256: r.key_sha256,
    enrolledAt: r.enrolled_at,
    identity: parseJson(r.identity) as AgentIdentity,
    agentVersion: r.agent_version,
    bootId: r.boot_id,
    bootedAt: r.booted_at,
    appliedVersion: r.applied_version,
    appliedAt: r.applied_at,
    updatedAt: r.updated_at,
  };
}

/**
 * Enrolled agents: each node's current certificate (the node credential,
 * docs/decisions/0004) and the last boot and config apply it reported.
 * A node has at most one current certificate; enrolling again replaces it,
 * and removing the node removes it, which revokes the old one for the gRPC
 * edge (it checks the presented certificate against this row).
 */
export class AgentRepository {
  constructor(private readonly ctx: StoreContext) {}

  // What the agent service writes on every boot and apply report: compiled once (prepared.ts).
  private readonly bootIdOf = prepared<{ node: string }, { boot_id: string | null }>((db, p) =>
    db.withTables<{ agents: AgentsTable }>().selectFrom('agents').select(['boot_id']).where('node', '=', p('node')),
  );
  private readonly writeBoot = prepared<{ node: string; boot_id: string; now: string }, unknown>((db, p) =>
    db.withTables<{ agents: AgentsTable }>().updateTable('agents').set({ boot_id: p('boot_id'), booted_at: p('now'), updated_at: p('now') }).where('node', '=', p('node')),
  );
  private readonly writeApplied = prepared<{ node: string; version: string; now: string }, unknown>((db, p) =>
    db
      .withTables<{ agents: AgentsTable }>()
      .updateTable('agents')
      .set({ applied_version: p('version'), applied_at: p('now'), updated_at: p('now') })
      .where('node', '=', p('node')),
  );
  private readonly writeApplyFailed = prepared<{ node: string; now: string }, unknown>((db, p) =>
    db.withTables<{ agents: AgentsTable }>().updateTable('agents').set({ updated_at: p('now') }).where('node', '=', p('node')),
  );

  private get q(): Kysely<AgentDB> {
    return this.ctx.q.withTables<{ agents: AgentsTable }>();
  }

  async get(node: string): Promise<AgentRecord | null> {
    const row = await this.q.selectFrom('agents').selectAll().where('node', '=', node).executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async list(): Promise<AgentRecord[]> {
    const rows = await this.q.selectFrom('agents').selectAll().orderBy('node').execute();
    return rows.map(toRecord);
  }

  /**
   * Records a (re-)enrolment: the node's certificate becomes this one.
   * Writes agent.enrolled (with identity, serial and fingerprint; never the
   * token), and agent.identity_changed when the machine's serial or UUID
   * differs from the previous enrolment's.
   */
  async recordEnrolment(node: string, e: Enrolment, wc: WriteContext): Promise<AgentRecord> {
    return this.ctx.write(async (trx) => {
      const t = trx.withTables<{ agents: AgentsTable }>();
      const exists = await trx.selectFrom('nodes').select('name').where('name', '=', node).executeTakeFirst();
      if (!exists) throw new FleetError('node.not_found', `no node named ${node}`, { node });
      const now = this.ctx.nowIso();
      const before = await t.selectFrom('agents').selectAll().where('node', '=', node).executeTakeFirst();
      const row: AgentsTable = {
        node,
        cert_serial: e.certSerial,
        cert_fingerprint: e.certFingerprint,
        cert_pem: e.certPem,
        cert_not_after: e.certNotAfter,
        key_sha256: e.keySha256,
        enrolled_at: now,
        identity: JSON.stringify(e.identity),
        agent_version: e.agentVersion ?? null,
        boot_id: null,
        booted_at: null,
        applied_version: null,
        applied_at: null,
        updated_at: now,
      };
      if (before) {
        const { node: _n, ...rest } = row;
        await t.updateTable('agents').set(rest).where('node', '=', node).execute();
      } else {
        await t.insertInto('agents').values(row).execute();
      }
      if (before) {
        const prev = parseJson(before.identity) as AgentIdentity;
        const changed: string[] = [];
        if (prev.serial && e.identity.serial && prev.serial !== e.identity.serial) changed.push('serial');
        if (prev.uuid && e.identity.uuid && prev.uuid.toLowerCase() !== e.identity.uuid.toLowerCase()) changed.push('uuid');
        if (changed.length > 0) {
          await this.ctx.appendEventRow(
            trx,
            eventValues(now, {
              node,
              kind: EVENT.agentIdentityChanged,
              actor: wc.actor,
              cause: wc.cause ?? null,
              details: { fields: changed, from: { serial: prev.serial, uuid: prev.uuid }, to: { serial: e.identity.serial, uuid: e.identity.uuid } },
            }),
          );
        }
      }
      await this.ctx.appendEventRow(
        trx,
        eventValues(now, {
          node,
          kind: EVENT.agentEnrolled,
          actor: wc.actor,
          cause: wc.cause ?? null,
          details: {
            ...(e.details ?? {}),
            reenrolment: before !== undefined,
            certSerial: e.certSerial,
            certFingerprint: e.certFingerprint,
            certNotAfter: e.certNotAfter,
            identity: e.identity,
            agentVersion: e.agentVersion ?? null,
          },
        }),
      );
      return toRecord(row);
    });
  }

  /**
   * Records how the node booted. A report of the boot already recorded
   * (same boot id: a retried call) writes nothing and returns false.
   * Otherwise writes agent.boot with the given details and returns true.
   */
  async recordBoot(node: string, bootId: string, details: Record<string, unknown>, wc: WriteContext): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      const row = await this.bootIdOf.first(trx, { node });
      if (!row) throw new FleetError('node.not_found', `node ${node} has no enrolled agent`, { node });
      if (row.boot_id !== null && row.boot_id === bootId) return false;
      const now = this.ctx.nowIso();
      await this.writeBoot.execute(trx, { node, boot_id: bootId, now });
      await this.ctx.appendEventRow(trx, eventValues(now, { node, kind: EVENT.agentBoot, actor: wc.actor, cause: wc.cause ?? null, details: { bootId, ...details } }));
      return true;
    });
  }

  /** Records the outcome of a config apply; writes agent.applied (or agent.apply_failed when a role failed). */
  async recordApply(node: string, version: string, failed: boolean, details: Record<string, unknown>, wc: WriteContext): Promise<void> {
    await this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      const n = failed ? await this.writeApplyFailed.affected(trx, { node, now }) : await this.writeApplied.affected(trx, { node, version, now });
      if (n === 0) throw new FleetError('node.not_found', `node ${node} has no enrolled agent`, { node });
      await this.ctx.appendEventRow(
        trx,
        eventValues(now, {
          node,
          kind: failed ? EVENT.agentApplyFailed : EVENT.agentApplied,
          actor: wc.actor,
          cause: wc.cause ?? null,
          details: { version, ...details },
        }),
      );
    });
  }

  /** Notes the agent's version (heartbeat); no event. */
  async noteVersion(node: string, agentVersion: string): Promise<void> {
    await this.ctx.write(async (trx) => {
      await trx
        .withTables<{ agents: AgentsTable }>()
        .updateTable('agents')
        .set({ agent_version: agentVersion })
        .where('node', '=', node)
        .where((eb) => eb.or([eb('agent_version', 'is', null), eb('agent_version', '!=', agentVersion)]))
        .execute();
    });
  }
}
