import { FleetError } from '../../../common/errors.js';
import type { BmcProtocol, RedfishAuth } from '../../model.js';
import { appendEvent, type StoreContext } from '../context.js';
import type { BmcEndpointRecord, WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

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
      lastProvider: r.last_provider,
      lastAnswerAt: r.last_answer_at,
    };
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
