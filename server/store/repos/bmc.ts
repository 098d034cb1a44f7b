import { timingSafeEqual } from 'node:crypto';
import { FleetError } from '../../../common/errors.js';
import { hashToken } from '../crypto.js';
import { ROTATED_PREFIX, type BmcProtocol, type RedfishAuth } from '../../model.js';
import { appendEvent, type StoreContext } from '../context.js';
import type { BmcEndpointRecord, WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

/** The per-node credential set a rotation writes: not a name fleet.yaml may use (config refuses the prefix). */
export { ROTATED_PREFIX };
export function rotatedCredentialName(node: string): string {
  return ROTATED_PREFIX + node;
}

export interface RotationCommit {
  /** The BMC account now in use and its password (sealed; never in an event). */
  username: string;
  secret: string;
  /** What the event tells: slot, account names, which credential it replaced. */
  details: Record<string, unknown>;
}

/** What the boot environment does in band on an accepted machine's BMC (discovery rule bmc.setup); the password travels apart. */
export interface BmcSetupJob {
  /** The BMC's LAN channel, as the inspection saw it. */
  channel: number;
  /** The user slot of the new account and its name (fleet-a). */
  slot: number;
  account: string;
  passwordLength: 16 | 20;
  /** The planned static address on the BMC network, its netmask, and gateway when fleet.yaml gives one. */
  address: string;
  netmask: string;
  gateway: string | null;
  /** The factory account (disabled out of band once the new one is verified and recorded); null: not seen in the inspection. */
  retire: { id: number; name: string } | null;
  /** on_accept install: the reinstall starts once the BMC is set up. */
  install: boolean;
}

export type BmcSetupState = 'pending' | 'sent' | 'done' | 'failed';

export interface BmcSetupRecord {
  node: string;
  mac: string;
  job: BmcSetupJob;
  state: BmcSetupState;
  reason: string | null;
  createdAt: string;
  updatedAt: string;
}

const setupAad = (node: string): string => `bmc-setup/${node}`;

/**
 * What is learnt about a node's BMC at run time. Where the BMC is and which
 * credential set it uses come from the node spec (nodes.upsert); changing
 * its address, port or protocol forgets the pinned fingerprint and provider.
 */
export class BmcRepository {
  constructor(private readonly ctx: StoreContext) {}

  async get(node: string): Promise<BmcEndpointRecord | null> {
    const r = await this.ctx.q.selectFrom('bmc_endpoints').selectAll().where('node', '=', node).executeTakeFirst();
    if (!r) return null;
    return {
      node: r.node,
      address: r.address,
      port: r.port,
      protocol: r.protocol as BmcProtocol,
      credentials: r.credentials,
      system: r.system,
      auth: r.auth as RedfishAuth | null,
      powerWait: r.power_wait,
      tlsFingerprint: r.tls_fingerprint,
      rotatedCredentials: r.rotated_credentials ?? null,
      lastProvider: r.last_provider,
      lastAnswerAt: r.last_answer_at,
    };
  }

  /** node → the credential set its BMC logs in with now (the rotated one where there is one), for the given nodes. */
  async rotated(nodes: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (nodes.length === 0) return out;
    for (let i = 0; i < nodes.length; i += 500) {
      const rows = await this.ctx.q
        .selectFrom('bmc_endpoints')
        .select(['node', 'rotated_credentials'])
        .where('node', 'in', nodes.slice(i, i + 500))
        .where('rotated_credentials', 'is not', null)
        .execute();
      for (const r of rows) out.set(r.node, r.rotated_credentials!);
    }
    return out;
  }

  /**
   * Records a verified new BMC credential, in one transaction: the per-node
   * set rotated.NODE (sealed like every BMC secret) and the endpoint pointing
   * at it, plus bmc.credential_rotated. Called only after the new account
   * answered a session of its own. `expect` is the credential set the
   * rotation started from: another rotation or an apply since then refuses
   * (conflict), so that a stale rotation never overwrites a newer one.
   */
  async commitRotation(node: string, expect: string, c: RotationCommit, wc: WriteContext): Promise<void> {
    const name = rotatedCredentialName(node);
    await this.ctx.write(async (trx) => {
      const row = await trx.selectFrom('bmc_endpoints').select(['credentials', 'rotated_credentials']).where('node', '=', node).executeTakeFirst();
      if (!row) throw new FleetError('not_found', `node ${node} has no BMC`, { node });
      const now = row.rotated_credentials ?? row.credentials;
      if (now !== expect) throw new FleetError('conflict', `the BMC credential of ${node} changed during the rotation (was ${expect}, now ${now})`, { node });
      const keys = this.ctx.keys;
      const at = this.ctx.nowIso();
      const values = { username: c.username, key_id: keys.keyId, secret_box: keys.seal(name, c.secret), secret_digest: keys.digest(c.secret), updated_at: at };
      const exists = await trx.selectFrom('credentials').select('name').where('name', '=', name).executeTakeFirst();
      if (exists) await trx.updateTable('credentials').set(values).where('name', '=', name).execute();
      else await trx.insertInto('credentials').values({ name, ...values, created_at: at }).execute();
      await trx.updateTable('bmc_endpoints').set({ rotated_credentials: name }).where('node', '=', node).execute();
      await appendEvent(trx, at, { node, kind: EVENT.bmcCredentialRotated, actor: wc.actor, cause: wc.cause ?? null, details: { from: expect, to: name, ...c.details } });
    });
  }

  /** Plans the in-band set-up of a node's BMC (replacing an earlier plan); bmc.setup_planned tells the job, never the password. */
  async createSetup(node: string, mac: string, job: BmcSetupJob, password: string, token: { hash: string; expiresAt: string } | null, wc: WriteContext): Promise<void> {
    await this.ctx.write(async (trx) => {
      const at = this.ctx.nowIso();
      const keys = this.ctx.keys;
      await trx.deleteFrom('bmc_setups').where('node', '=', node).execute();
      await trx
        .insertInto('bmc_setups')
        .values({
          node,
          mac: mac.toLowerCase(),
          job: JSON.stringify(job),
          key_id: keys.keyId,
          secret_box: keys.seal(setupAad(node), password),
          state: 'pending',
          reason: null,
          inspect_token: token?.hash ?? null,
          inspect_token_expires_at: token?.expiresAt ?? null,
          created_at: at,
          updated_at: at,
        })
        .execute();
      await appendEvent(trx, at, { node, kind: EVENT.bmcSetupPlanned, actor: wc.actor, cause: wc.cause ?? null, details: { mac, ...job } });
    });
  }

  /** The set-up of the node that owns `mac`, with its password (for the boot environment's job and the verification only). */
  async setupByMac(mac: string): Promise<(BmcSetupRecord & { password: string }) | null> {
    const r = await this.ctx.q.selectFrom('bmc_setups').selectAll().where('mac', '=', mac.toLowerCase()).executeTakeFirst();
    if (!r) return null;
    return {
      node: r.node,
      mac: r.mac,
      job: JSON.parse(r.job) as BmcSetupJob,
      state: r.state as BmcSetupState,
      reason: r.reason,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      password: this.ctx.keys.open(setupAad(r.node), r.key_id, Buffer.from(r.secret_box)),
    };
  }

  /**
   * Checks the inspect token a set-up's machine presents (carried over from
   * its discovered row); auth.forbidden with why, as the discovered check.
   * Null: no set-up for this MAC (check the discovered row instead).
   */
  async checkSetupToken(mac: string, token: string): Promise<{ node: string } | null> {
    const r = await this.ctx.q.selectFrom('bmc_setups').select(['node', 'inspect_token', 'inspect_token_expires_at']).where('mac', '=', mac.toLowerCase()).executeTakeFirst();
    if (!r) return null;
    if (r.inspect_token === null || r.inspect_token_expires_at === null) throw new FleetError('auth.forbidden', `no inspect token was carried over to ${r.node}'s BMC set-up`, { mac });
    const a = Buffer.from(hashToken(token));
    const b = Buffer.from(r.inspect_token);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new FleetError('auth.forbidden', "unknown token (not the one of this machine's last inspect script)", { mac });
    if (r.inspect_token_expires_at <= this.ctx.nowIso()) throw new FleetError('auth.forbidden', `expired at ${r.inspect_token_expires_at}`, { mac });
    return { node: r.node };
  }

  /** Moves a set-up on (compare-and-set on its state); false when it was not in `from` any more. */
  async markSetup(node: string, from: readonly BmcSetupState[], to: BmcSetupState, reason: string | null): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      const res = await trx
        .updateTable('bmc_setups')
        .set({ state: to, reason, updated_at: this.ctx.nowIso() })
        .where('node', '=', node)
        .where('state', 'in', [...from])
        .executeTakeFirst();
      return Number(res.numUpdatedRows) > 0;
    });
  }

  /** Records which provider answered (no event: an observation, written often). */
  async recordAnswer(node: string, provider: string, at?: Date): Promise<void> {
    await this.ctx.write(async (trx) => {
      const res = await trx
        .updateTable('bmc_endpoints')
        .set({ last_provider: provider, last_answer_at: (at ?? this.ctx.now()).toISOString() })
        .where('node', '=', node)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) throw new FleetError('not_found', `node ${node} has no BMC`, { node });
    });
  }

  /** Pins (or with null, forgets) the BMC's TLS certificate fingerprint; writes bmc.tls_trusted. */
  async trustFingerprint(node: string, fingerprint: string | null, wc: WriteContext): Promise<void> {
    await this.ctx.write(async (trx) => {
      const row = await trx.selectFrom('bmc_endpoints').select(['address', 'tls_fingerprint']).where('node', '=', node).executeTakeFirst();
      if (!row) throw new FleetError('not_found', `node ${node} has no BMC`, { node });
      if (row.tls_fingerprint === fingerprint) return;
      await trx.updateTable('bmc_endpoints').set({ tls_fingerprint: fingerprint }).where('node', '=', node).execute();
      await appendEvent(trx, this.ctx.nowIso(), {
        node,
        kind: EVENT.bmcTlsTrusted,
        actor: wc.actor,
        cause: wc.cause ?? null,
        details: { address: row.address, from: row.tls_fingerprint, to: fingerprint },
      });
    });
  }
}
