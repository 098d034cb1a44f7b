import type { Kysely, Selectable } from 'kysely';
import { FleetError } from '../../../common/errors.js';
import type { BmcProtocol, NodeSpec, RedfishAuth } from '../../model.js';
import { appendEvent, bool, chunks, int, naturalCompare, type StoreContext } from '../context.js';
import type { DB, NodesTable } from '../schema.js';
import { bmcColumns, diffNodeSpec, hasChanges, nodeSpecOf, normalizeNodeSpec } from '../spec.js';
import type { NodeChanges, NodeOrigin, NodeRecord, NodeState, WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

export const BMC_PROTOCOLS: readonly BmcProtocol[] = ['ipmi', 'redfish', 'ipmitool'];

export interface NodeFilter {
  /** Only these nodes (the caller expands nodesets); unknown names are left out, not an error. */
  names?: string[];
  states?: NodeState[];
  profile?: string;
}

export interface UpsertResult {
  action: 'added' | 'changed' | 'unchanged';
  node: NodeRecord;
  /** Field changes for 'changed'; empty otherwise. */
  changes: NodeChanges;
}

export interface SetStateOptions extends WriteContext {
  /** Refuse (FleetError 'conflict') unless the node is in this state (or one of these). */
  expectedFrom?: NodeState | NodeState[];
  /** Refuse (FleetError 'conflict') unless the node's generation is this one. */
  expectedGeneration?: number;
  /** Secret-free details for the event row. */
  details?: unknown;
  /** When the new state times out (ISO); null or absent: no timer. */
  deadline?: string | null;
}

export interface UpsertOptions {
  /** Origin of nodes this call adds (default 'config'); existing nodes keep theirs (see setOrigin). */
  origin?: NodeOrigin;
}

export interface SetArmedOptions extends WriteContext {
  expectedGeneration?: number;
}

type NodeRow = Selectable<NodesTable>;

function validateSpec(spec: NodeSpec): void {
  const problems: string[] = [];
  if (typeof spec.name !== 'string' || spec.name === '') problems.push('name is empty');
  if (typeof spec.profile !== 'string' || spec.profile === '') problems.push('profile is empty');
  if (!Array.isArray(spec.macs)) problems.push('macs is not a list');
  if (spec.bmc) {
    if (!BMC_PROTOCOLS.includes(spec.bmc.protocol)) problems.push(`bmc protocol ${String(spec.bmc.protocol)} is unknown`);
    if (!Number.isInteger(spec.bmc.port) || spec.bmc.port < 1 || spec.bmc.port > 65535) problems.push('bmc port is not 1-65535');
    if (!spec.bmc.address) problems.push('bmc address is empty');
    if (!spec.bmc.credentials) problems.push('bmc credentials is empty');
  }
  if (problems.length > 0) {
    throw new FleetError('request.invalid', `node ${String(spec.name)}: ${problems.join('; ')}`, { node: spec.name, problems });
  }
}

export class NodeRepository {
  constructor(private readonly ctx: StoreContext) {}

  /** Nodes in natural name order (node2 before node10). */
  async list(filter: NodeFilter = {}): Promise<NodeRecord[]> {
    if (filter.states?.length === 0 || filter.names?.length === 0) return [];
    const q = this.ctx.q;
    let rows: NodeRow[] = [];
    const base = () => {
      let s = q.selectFrom('nodes').selectAll();
      if (filter.states) s = s.where('state', 'in', filter.states);
      if (filter.profile !== undefined) s = s.where('profile', '=', filter.profile);
      return s;
    };
    if (filter.names) {
      for (const part of chunks([...new Set(filter.names)])) rows.push(...(await base().where('name', 'in', part).execute()));
    } else {
      rows = await base().execute();
    }
    return this.hydrate(q, rows, filter.names === undefined && filter.states === undefined && filter.profile === undefined);
  }

  async get(name: string): Promise<NodeRecord | null> {
    const q = this.ctx.q;
    const rows = await q.selectFrom('nodes').selectAll().where('name', '=', name).execute();
    return (await this.hydrate(q, rows))[0] ?? null;
  }

  /** Like get, but a missing node is FleetError('node.not_found'). */
  async require(name: string): Promise<NodeRecord> {
    const node = await this.get(name);
    if (!node) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
    return node;
  }

  async findByMac(mac: string): Promise<NodeRecord | null> {
    const row = await this.ctx.q.selectFrom('interfaces').select('node').where('mac', '=', mac.toLowerCase()).executeTakeFirst();
    return row ? this.get(row.node) : null;
  }

  async findByIp(ip: string): Promise<NodeRecord | null> {
    const q = this.ctx.q;
    const rows = await q.selectFrom('nodes').selectAll().where('ip', '=', ip).execute();
    return (await this.hydrate(q, rows))[0] ?? null;
  }

  /** Nodes whose state deadline is at or before `at` (default now): the conductor's timers. */
  async listDue(at?: Date): Promise<NodeRecord[]> {
    const q = this.ctx.q;
    const when = (at ?? this.ctx.now()).toISOString();
    const rows = await q.selectFrom('nodes').selectAll().where('state_deadline', 'is not', null).where('state_deadline', '<=', when).execute();
    return this.hydrate(q, rows);
  }

  /** Adds or updates one node from its spec; writes node.added / node.changed, nothing when unchanged. */
  async upsert(spec: NodeSpec, wc: WriteContext, opts: UpsertOptions = {}): Promise<UpsertResult> {
    const [result] = await this.upsertMany([spec], wc, opts);
    return result!;
  }

  /**
   * Adds or updates several nodes in one transaction. IPs and MACs that move
   * between the given nodes (swaps included) are released before any is
   * taken, so the unique constraints hold at every statement.
   */
  async upsertMany(specs: NodeSpec[], wc: WriteContext, opts: UpsertOptions = {}): Promise<UpsertResult[]> {
    const origin = opts.origin ?? 'config';
    const wanted = specs.map((s) => {
      validateSpec(s);
      return normalizeNodeSpec(s);
    });
    const seen = new Set<string>();
    for (const s of wanted) {
      if (seen.has(s.name)) throw new FleetError('request.invalid', `node ${s.name} is given twice`, { node: s.name });
      seen.add(s.name);
    }
    if (wanted.length === 0) return [];
    return this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      const existing = new Map<string, NodeRecord>();
      for (const part of chunks(wanted.map((s) => s.name))) {
        const rows = await trx.selectFrom('nodes').selectAll().where('name', 'in', part).execute();
        for (const r of await this.hydrate(trx, rows)) existing.set(r.name, r);
      }
      const plan = wanted.map((spec) => {
        const before = existing.get(spec.name);
        if (!before) return { spec, before, action: 'added' as const, changes: {} as NodeChanges };
        const changes = diffNodeSpec(nodeSpecOf(before), spec);
        return { spec, before, action: hasChanges(changes) ? ('changed' as const) : ('unchanged' as const), changes };
      });

      // Phase 1: release IPs and MACs that change hands.
      const releaseIp = plan.filter((p) => p.action === 'changed' && p.changes.ip && p.changes.ip.from !== null).map((p) => p.spec.name);
      const releaseMacs = plan.filter((p) => p.action === 'changed' && p.changes.macs).map((p) => p.spec.name);
      for (const part of chunks(releaseIp)) await trx.updateTable('nodes').set({ ip: null }).where('name', 'in', part).execute();
      for (const part of chunks(releaseMacs)) await trx.deleteFrom('interfaces').where('node', 'in', part).execute();

      // Phase 2: write.
      for (const p of plan) {
        const s = p.spec;
        if (p.action === 'added') {
          await trx
            .insertInto('nodes')
            .values({
              name: s.name,
              profile: s.profile,
              ip: s.ip ?? null,
              pet: int(s.pet),
              origin,
              state_since: now,
              state_deadline: null,
              last_seen: null,
              created_at: now,
              updated_at: now,
            })
            .execute();
          await insertInterfaces(trx, s.name, s.macs);
          if (s.bmc) {
            await trx
              .insertInto('bmc_endpoints')
              .values({ node: s.name, ...bmcColumns(s.bmc), tls_fingerprint: null, last_provider: null, last_answer_at: null })
              .execute();
          }
          const { name: _name, ...details } = s;
          await appendEvent(trx, now, { node: s.name, kind: EVENT.nodeAdded, actor: wc.actor, cause: wc.cause ?? null, details: origin === 'config' ? details : { ...details, origin } });
        } else if (p.action === 'changed') {
          const c = p.changes;
          await trx
            .updateTable('nodes')
            .set((eb) => ({
              profile: s.profile,
              ip: s.ip ?? null,
              pet: int(s.pet),
              generation: eb('generation', '+', 1),
              updated_at: now,
            }))
            .where('name', '=', s.name)
            .execute();
          if (c.macs) await insertInterfaces(trx, s.name, s.macs);
          if (c.bmc) {
            const { from, to } = c.bmc;
            if (!to) {
              await trx.deleteFrom('bmc_endpoints').where('node', '=', s.name).execute();
            } else if (!from) {
              await trx
                .insertInto('bmc_endpoints')
                .values({ node: s.name, ...bmcColumns(to), tls_fingerprint: null, last_provider: null, last_answer_at: null })
                .execute();
            } else {
              // Another address, port or protocol is another BMC: forget what was learnt about the old one.
              const moved = from.address !== to.address || from.port !== to.port || from.protocol !== to.protocol;
              await trx
                .updateTable('bmc_endpoints')
                .set({
                  ...bmcColumns(to),
                  ...(moved ? { tls_fingerprint: null, last_provider: null, last_answer_at: null } : {}),
                })
                .where('node', '=', s.name)
                .execute();
            }
          }
          await appendEvent(trx, now, { node: s.name, kind: EVENT.nodeChanged, actor: wc.actor, cause: wc.cause ?? null, details: { changes: c } });
        }
      }

      const after = new Map<string, NodeRecord>();
      const touched = plan.filter((p) => p.action !== 'unchanged').map((p) => p.spec.name);
      for (const part of chunks(touched)) {
        const rows = await trx.selectFrom('nodes').selectAll().where('name', 'in', part).execute();
        for (const r of await this.hydrate(trx, rows)) after.set(r.name, r);
      }
      return plan.map((p) => ({
        action: p.action,
        node: after.get(p.spec.name) ?? p.before!,
        changes: p.action === 'changed' ? p.changes : {},
      }));
    });
  }

  /**
   * Records that nodes now come from `origin` (apply adopts an enrolled node
   * that fleet.yaml declares); one node.changed event per node that changes.
   */
  async setOrigin(names: string[], origin: NodeOrigin, wc: WriteContext): Promise<void> {
    if (names.length === 0) return;
    await this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      for (const part of chunks([...new Set(names)])) {
        const rows = await trx.selectFrom('nodes').select(['name', 'origin']).where('name', 'in', part).where('origin', '!=', origin).execute();
        for (const r of rows) {
          await trx
            .updateTable('nodes')
            .set((eb) => ({ origin, generation: eb('generation', '+', 1), updated_at: now }))
            .where('name', '=', r.name)
            .execute();
          await appendEvent(trx, now, {
            node: r.name,
            kind: EVENT.nodeChanged,
            actor: wc.actor,
            cause: wc.cause ?? null,
            details: { changes: { origin: { from: r.origin, to: origin } } },
          });
        }
      }
    });
  }

  /** Removes a node (its interfaces, BMC endpoint, tokens and lock go with it); writes node.removed. */
  async remove(name: string, wc: WriteContext): Promise<void> {
    await this.ctx.write(async (trx) => {
      const rows = await trx.selectFrom('nodes').selectAll().where('name', '=', name).execute();
      const [before] = await this.hydrate(trx, rows);
      if (!before) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
      await trx.deleteFrom('nodes').where('name', '=', name).execute();
      const { name: _name, ...spec } = nodeSpecOf(before);
      await appendEvent(trx, this.ctx.nowIso(), {
        node: name,
        kind: EVENT.nodeRemoved,
        fromState: before.state,
        actor: wc.actor,
        cause: wc.cause ?? null,
        details: { ...spec, state: before.state },
      });
    });
  }

  /**
   * Moves a node to another state and writes its state.changed event, in one
   * transaction. With expectedFrom / expectedGeneration it is a
   * compare-and-set: a node that moved meanwhile gives FleetError('conflict').
   * The store does not judge transitions; server/lifecycle does.
   */
  async setState(name: string, to: NodeState, opts: SetStateOptions): Promise<NodeRecord> {
    if (typeof to !== 'string' || to === '') throw new FleetError('request.invalid', 'target state is empty');
    return this.ctx.write(async (trx) => {
      const row = await this.requireRow(trx, name);
      const expected = opts.expectedFrom === undefined ? undefined : Array.isArray(opts.expectedFrom) ? opts.expectedFrom : [opts.expectedFrom];
      if (expected && !expected.includes(row.state)) {
        throw new FleetError('conflict', `node ${name} is ${row.state}, not ${expected.join(' or ')}`, {
          node: name,
          state: row.state,
          expected,
        });
      }
      this.checkGeneration(name, row, opts.expectedGeneration);
      const now = this.ctx.nowIso();
      const res = await trx
        .updateTable('nodes')
        .set((eb) => ({
          state: to,
          state_since: now,
          state_deadline: opts.deadline ?? null,
          generation: eb('generation', '+', 1),
          updated_at: now,
        }))
        .where('name', '=', name)
        .where('generation', '=', row.generation)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) throw new FleetError('conflict', `node ${name} changed underneath`, { node: name });
      await appendEvent(trx, now, {
        node: name,
        kind: EVENT.stateChanged,
        fromState: row.state,
        toState: to,
        actor: opts.actor,
        cause: opts.cause ?? null,
        details: opts.details,
      });
      return (await this.hydrate(trx, [{ ...row, state: to, state_since: now, state_deadline: opts.deadline ?? null, generation: row.generation + 1, updated_at: now }]))[0]!;
    });
  }

  /** Sets the armed flag (DESIGN §3: only an armed node netboots into an install); no write when unchanged. */
  async setArmed(name: string, armed: boolean, opts: SetArmedOptions): Promise<NodeRecord> {
    return this.ctx.write(async (trx) => {
      const row = await this.requireRow(trx, name);
      this.checkGeneration(name, row, opts.expectedGeneration);
      if (bool(row.armed) === armed) return (await this.hydrate(trx, [row]))[0]!;
      const now = this.ctx.nowIso();
      await trx
        .updateTable('nodes')
        .set((eb) => ({ armed: int(armed), generation: eb('generation', '+', 1), updated_at: now }))
        .where('name', '=', name)
        .execute();
      await appendEvent(trx, now, {
        node: name,
        kind: armed ? EVENT.nodeArmed : EVENT.nodeDisarmed,
        fromState: row.state,
        toState: row.state,
        actor: opts.actor,
        cause: opts.cause ?? null,
      });
      return (await this.hydrate(trx, [{ ...row, armed: int(armed), generation: row.generation + 1, updated_at: now }]))[0]!;
    });
  }

  /**
   * Records that the node was heard from. Deliberately no event and no
   * generation bump: a heartbeat is an observation, not a change, and must
   * not flood the event log or break compare-and-set of the conductor.
   */
  async markSeen(name: string, at?: Date): Promise<void> {
    await this.ctx.write(async (trx) => {
      const res = await trx
        .updateTable('nodes')
        .set({ last_seen: (at ?? this.ctx.now()).toISOString() })
        .where('name', '=', name)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
    });
  }

  private async requireRow(trx: Kysely<DB>, name: string): Promise<NodeRow> {
    const row = await trx.selectFrom('nodes').selectAll().where('name', '=', name).executeTakeFirst();
    if (!row) throw new FleetError('node.not_found', `no node named ${name}`, { node: name });
    return row;
  }

  private checkGeneration(name: string, row: NodeRow, expected: number | undefined): void {
    if (expected !== undefined && row.generation !== expected) {
      throw new FleetError('conflict', `node ${name} changed underneath (generation ${row.generation}, expected ${expected})`, {
        node: name,
        generation: row.generation,
        expected,
      });
    }
  }

  /** Rows to records: joins interfaces and BMC endpoints. `all`: the rows are every node (one query per table). */
  private async hydrate(q: Kysely<DB>, rows: NodeRow[], all = false): Promise<NodeRecord[]> {
    if (rows.length === 0) return [];
    const names = rows.map((r) => r.name);
    const macs = new Map<string, string[]>();
    const bmcs = new Map<string, NonNullable<NodeRecord['bmc']>>();
    const ifaceQuery = () => q.selectFrom('interfaces').select(['node', 'mac']).orderBy('node').orderBy('position');
    const bmcQuery = () => q.selectFrom('bmc_endpoints').select(['node', 'address', 'port', 'protocol', 'credentials', 'system', 'auth', 'power_wait']);
    const ifaceRows = [];
    const bmcRows = [];
    if (all) {
      ifaceRows.push(...(await ifaceQuery().execute()));
      bmcRows.push(...(await bmcQuery().execute()));
    } else {
      for (const part of chunks(names)) {
        ifaceRows.push(...(await ifaceQuery().where('node', 'in', part).execute()));
        bmcRows.push(...(await bmcQuery().where('node', 'in', part).execute()));
      }
    }
    for (const r of ifaceRows) {
      const list = macs.get(r.node);
      if (list) list.push(r.mac);
      else macs.set(r.node, [r.mac]);
    }
    for (const r of bmcRows) {
      bmcs.set(r.node, {
        address: r.address,
        port: r.port,
        protocol: r.protocol as BmcProtocol,
        credentials: r.credentials,
        ...(r.system !== null ? { system: r.system } : {}),
        ...(r.auth !== null ? { auth: r.auth as RedfishAuth } : {}),
        ...(r.power_wait !== null ? { powerWait: r.power_wait } : {}),
      });
    }
    return rows
      .map((r): NodeRecord => {
        const rec: NodeRecord = {
          name: r.name,
          profile: r.profile,
          ip: r.ip,
          macs: macs.get(r.name) ?? [],
          pet: bool(r.pet),
          state: r.state,
          stateSince: r.state_since,
          stateDeadline: r.state_deadline,
          armed: bool(r.armed),
          lastSeen: r.last_seen,
          generation: r.generation,
          origin: r.origin as NodeOrigin,
          createdAt: r.created_at,
          updatedAt: r.updated_at,
        };
        const bmc = bmcs.get(r.name);
        if (bmc) rec.bmc = bmc;
        return rec;
      })
      .sort((a, b) => naturalCompare(a.name, b.name));
  }
}

async function insertInterfaces(trx: Kysely<DB>, node: string, macs: string[]): Promise<void> {
  if (macs.length === 0) return;
  await trx
    .insertInto('interfaces')
    .values(macs.map((mac, i) => ({ mac, node, is_primary: i === 0 ? 1 : 0, position: i })))
    .execute();
}
