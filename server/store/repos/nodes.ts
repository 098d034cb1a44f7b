import type { Kysely, Selectable } from 'kysely';
import { FleetError } from '../../../common/errors.js';
import type { BmcProtocol, NodeSpec, RedfishAuth } from '../../model.js';
import { appendEvent, bool, chunks, eventValues, int, naturalCompare, type StoreContext } from '../context.js';
import { prepared } from '../prepared.js';
import type { BmcEndpointsTable, DB, NodesTable } from '../schema.js';
import { bmcColumns, diffNodeSpec, hasChanges, nodeSpecOf, normalizeNodeSpec } from '../spec.js';
import type { NodeChanges, NodeOrigin, NodeRecord, NodeState, WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';
import { rotatedCredentialName } from './bmc.js';

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
  /**
   * Also sets the armed flag, in the same write: as setArmed right after
   * would (its node.armed / node.disarmed event with `cause`, one more
   * generation), nothing when the flag is already `to`.
   */
  armed?: { to: boolean; cause?: string };
  /**
   * The caller's record of the node at expectedGeneration (ignored without
   * one): the result takes its interfaces and BMC endpoint instead of
   * reading them again. Every change of those bumps the generation, so a
   * compare-and-set that held proves them unchanged.
   */
  known?: Pick<NodeRecord, 'macs' | 'bmc'>;
}

export interface UpsertOptions {
  /** Origin of nodes this call adds (default 'config'); existing nodes keep theirs (see setOrigin). */
  origin?: NodeOrigin;
}

export interface SetArmedOptions extends WriteContext {
  expectedGeneration?: number;
}

type NodeRow = Selectable<NodesTable>;
type BmcRow = Pick<Selectable<BmcEndpointsTable>, (typeof BMC_COLUMNS)[number]>;
/** BmcRow's columns as a left join gives them: bmc_ prefixed, all null when the node has no BMC. */
type JoinedBmc = { [K in keyof BmcRow as `bmc_${K}`]: BmcRow[K] | null };

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

const BMC_COLUMNS = ['node', 'address', 'port', 'protocol', 'credentials', 'system', 'auth', 'power_wait'] as const;

export class NodeRepository {
  constructor(private readonly ctx: StoreContext) {}

  // The conductor's hot paths, compiled once (prepared.ts).
  private readonly rowByName = prepared<{ name: string }, NodeRow>((db, p) => db.selectFrom('nodes').selectAll().where('name', '=', p('name')));
  private readonly macsOf = prepared<{ node: string }, { mac: string }>((db, p) =>
    db.selectFrom('interfaces').select('mac').where('node', '=', p('node')).orderBy('position'),
  );
  private readonly bmcOf = prepared<{ node: string }, BmcRow>((db, p) => db.selectFrom('bmc_endpoints').select(BMC_COLUMNS).where('node', '=', p('node')));
  /**
   * A node with its BMC endpoint (left join: at most one) and its interfaces (left join: one row
   * per MAC, in order; one row with a null MAC when it has none), for get: one statement.
   */
  private readonly rowWithBmc = prepared<{ name: string }, NodeRow & JoinedBmc & { iface_mac: string | null }>((db, p) =>
    db
      .selectFrom('nodes')
      .leftJoin('bmc_endpoints', 'bmc_endpoints.node', 'nodes.name')
      .leftJoin('interfaces', 'interfaces.node', 'nodes.name')
      .selectAll('nodes')
      .select([
        'bmc_endpoints.node as bmc_node',
        'bmc_endpoints.address as bmc_address',
        'bmc_endpoints.port as bmc_port',
        'bmc_endpoints.protocol as bmc_protocol',
        'bmc_endpoints.credentials as bmc_credentials',
        'bmc_endpoints.system as bmc_system',
        'bmc_endpoints.auth as bmc_auth',
        'bmc_endpoints.power_wait as bmc_power_wait',
        'interfaces.mac as iface_mac',
      ])
      .where('nodes.name', '=', p('name'))
      .orderBy('interfaces.position'),
  );
  /** setState's compare-and-set when the caller names the state and generation it read: no read before the write. */
  private readonly casState = prepared<{ name: string; from: string; generation: number; to: string; now: string; deadline: string | null }, NodeRow>(
    (db, p) =>
      db
        .updateTable('nodes')
        .set((eb) => ({ state: p('to'), state_since: p('now'), state_deadline: p('deadline'), generation: eb('generation', '+', 1), updated_at: p('now') }))
        .where('name', '=', p('name'))
        .where('generation', '=', p('generation'))
        .where('state', '=', p('from'))
        .returningAll(),
  );
  private readonly writeState = prepared<{ name: string; generation: number; to: string; now: string; deadline: string | null; armed: number; bump: number }, NodeRow>(
    (db, p) =>
      db
        .updateTable('nodes')
        .set((eb) => ({
          state: p('to'),
          state_since: p('now'),
          state_deadline: p('deadline'),
          armed: p('armed'),
          generation: eb('generation', '+', p('bump')),
          updated_at: p('now'),
        }))
        .where('name', '=', p('name'))
        .where('generation', '=', p('generation'))
        .returningAll(),
  );
  private readonly writeArmed = prepared<{ name: string; armed: number; now: string }, NodeRow>((db, p) =>
    db
      .updateTable('nodes')
      .set((eb) => ({ armed: p('armed'), generation: eb('generation', '+', 1), updated_at: p('now') }))
      .where('name', '=', p('name'))
      .returningAll(),
  );

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
    const rows = await this.rowWithBmc.rows(q, { name });
    const row = rows[0];
    if (!row) return null;
    const { bmc_node, bmc_address, bmc_port, bmc_protocol, bmc_credentials, bmc_system, bmc_auth, bmc_power_wait, iface_mac: _mac, ...node } = row;
    const macs: string[] = [];
    for (const r of rows) if (r.iface_mac !== null) macs.push(r.iface_mac);
    const bmc =
      bmc_node !== null
        ? toBmc({ node: bmc_node, address: bmc_address!, port: bmc_port!, protocol: bmc_protocol!, credentials: bmc_credentials!, system: bmc_system, auth: bmc_auth, power_wait: bmc_power_wait })
        : undefined;
    return toRecord(node, macs, bmc);
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
              await trx.deleteFrom('credentials').where('name', '=', rotatedCredentialName(s.name)).execute();
            } else if (!from) {
              await trx
                .insertInto('bmc_endpoints')
                .values({ node: s.name, ...bmcColumns(to), tls_fingerprint: null, last_provider: null, last_answer_at: null })
                .execute();
            } else {
              // Another address, port or protocol is another BMC: forget what was learnt about the old one.
              const moved = from.address !== to.address || from.port !== to.port || from.protocol !== to.protocol;
              // A rotated credential belongs to that BMC and replaced that set: another BMC, or a set fleet.yaml changed, ends it.
              const unrotate = moved || from.credentials !== to.credentials;
              await trx
                .updateTable('bmc_endpoints')
                .set({
                  ...bmcColumns(to),
                  ...(moved ? { tls_fingerprint: null, last_provider: null, last_answer_at: null } : {}),
                  ...(unrotate ? { rotated_credentials: null } : {}),
                })
                .where('node', '=', s.name)
                .execute();
              if (unrotate) await trx.deleteFrom('credentials').where('name', '=', rotatedCredentialName(s.name)).execute();
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
      await trx.deleteFrom('credentials').where('name', '=', rotatedCredentialName(name)).execute();
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
      const expected = opts.expectedFrom === undefined ? undefined : Array.isArray(opts.expectedFrom) ? opts.expectedFrom : [opts.expectedFrom];
      const now = this.ctx.nowIso();
      const deadline = opts.deadline ?? null;
      let from: string | undefined;
      let after: NodeRow | undefined;
      let armedChanged = false;
      if (expected?.length === 1 && opts.expectedGeneration !== undefined && opts.armed === undefined) {
        // The compare-and-set is the write itself; when it misses, the read below says why.
        from = expected[0]!;
        after = await this.casState.first(trx, { name, from, generation: opts.expectedGeneration, to, now, deadline });
      }
      if (!after) {
        const row = await this.requireRow(trx, name);
        if (expected && !expected.includes(row.state)) {
          throw new FleetError('conflict', `node ${name} is ${row.state}, not ${expected.join(' or ')}`, {
            node: name,
            state: row.state,
            expected,
          });
        }
        this.checkGeneration(name, row, opts.expectedGeneration);
        from = row.state;
        armedChanged = opts.armed !== undefined && bool(row.armed) !== opts.armed.to;
        after = await this.writeState.first(trx, {
          name,
          generation: row.generation,
          to,
          now,
          deadline,
          armed: armedChanged ? int(opts.armed!.to) : row.armed,
          // One generation per change, as setState then setArmed would.
          bump: armedChanged ? 2 : 1,
        });
        if (!after) throw new FleetError('conflict', `node ${name} changed underneath`, { node: name });
      }
      await this.ctx.appendEventRow(
        trx,
        eventValues(now, { node: name, kind: EVENT.stateChanged, fromState: from, toState: to, actor: opts.actor, cause: opts.cause ?? null, details: opts.details }),
      );
      if (armedChanged) {
        const armed = opts.armed!;
        await this.ctx.appendEventRow(
          trx,
          eventValues(now, { node: name, kind: armed.to ? EVENT.nodeArmed : EVENT.nodeDisarmed, fromState: to, toState: to, actor: opts.actor, cause: armed.cause ?? opts.cause ?? null }),
        );
      }
      const known = opts.expectedGeneration !== undefined ? opts.known : undefined;
      if (known) return toRecord(after, [...known.macs], known.bmc && { ...known.bmc });
      return this.hydrateOne(trx, after);
    });
  }

  /** Sets the armed flag (DESIGN §3: only an armed node netboots into an install); no write when unchanged. */
  async setArmed(name: string, armed: boolean, opts: SetArmedOptions): Promise<NodeRecord> {
    return this.ctx.write(async (trx) => {
      const row = await this.requireRow(trx, name);
      this.checkGeneration(name, row, opts.expectedGeneration);
      if (bool(row.armed) === armed) return this.hydrateOne(trx, row);
      const now = this.ctx.nowIso();
      const after = await this.writeArmed.first(trx, { name, armed: int(armed), now });
      await this.ctx.appendEventRow(
        trx,
        eventValues(now, { node: name, kind: armed ? EVENT.nodeArmed : EVENT.nodeDisarmed, fromState: row.state, toState: row.state, actor: opts.actor, cause: opts.cause ?? null }),
      );
      return this.hydrateOne(trx, after!);
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
    const row = await this.rowByName.first(trx, { name });
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
    const bmcQuery = () => q.selectFrom('bmc_endpoints').select(BMC_COLUMNS);
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
    for (const r of bmcRows) bmcs.set(r.node, toBmc(r));
    return rows.map((r) => toRecord(r, macs.get(r.name) ?? [], bmcs.get(r.name))).sort((a, b) => naturalCompare(a.name, b.name));
  }

  /** One row to its record: its interfaces and BMC endpoint by key (queries compiled once). */
  private async hydrateOne(q: Kysely<DB>, row: NodeRow): Promise<NodeRecord> {
    const macs = await this.macsOf.rows(q, { node: row.name });
    const bmc = await this.bmcOf.first(q, { node: row.name });
    return toRecord(
      row,
      macs.map((m) => m.mac),
      bmc && toBmc(bmc),
    );
  }
}

function toBmc(r: BmcRow): NonNullable<NodeRecord['bmc']> {
  return {
    address: r.address,
    port: r.port,
    protocol: r.protocol as BmcProtocol,
    credentials: r.credentials,
    ...(r.system !== null ? { system: r.system } : {}),
    ...(r.auth !== null ? { auth: r.auth as RedfishAuth } : {}),
    ...(r.power_wait !== null ? { powerWait: r.power_wait } : {}),
  };
}

function toRecord(r: NodeRow, macs: string[], bmc: NodeRecord['bmc'] | undefined): NodeRecord {
  const rec: NodeRecord = {
    name: r.name,
    profile: r.profile,
    ip: r.ip,
    macs,
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
  if (bmc) rec.bmc = bmc;
  return rec;
}

async function insertInterfaces(trx: Kysely<DB>, node: string, macs: string[]): Promise<void> {
  if (macs.length === 0) return;
  await trx
    .insertInto('interfaces')
    .values(macs.map((mac, i) => ({ mac, node, is_primary: i === 0 ? 1 : 0, position: i })))
    .execute();
}
