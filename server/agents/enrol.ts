/**
 * Enrol (issue 9, docs/decisions/0004): a one-time token bound to a node,
 * checked against the machine's identity, buys a node certificate for the
 * agent's own key (CSR), and only while the node is in an install phase or
 * adopting (enroll-policy.ts). The enrolment is told to the conductor as the
 * `agent.enrolled` fact: an adopting node moves on to configuring. Every
 * refusal is an `agent.enroll_refused` event (reason = catalogue code; never
 * the token); the token's use is a `token.used` event with the peer address
 * (the store writes it).
 *
 * Refusals are counted per peer address: past the limit a minute, Enroll
 * answers rate_limited without looking at the request (logged once per
 * window).
 */
import type { EnrollRequest, EnrollResponse } from '../../proto/gen/fleet/v1/agent.js';
import { FleetError, isFleetError, toFleetError } from '../../common/errors.js';
import { EVENT } from '../../common/events.js';
import { issueNodeCert, parseCsr } from '../pki/index.js';
import type { AgentIdentity, AgentRecord } from '../store/index.js';
import { short } from './bounds.js';
import { checkEnrolToken, checkIdentity, claimedNode, enrolmentRefusal, macRefusal } from './enroll-policy.js';
import { bootsFromNetwork } from '../stateless/profile.js';
import type { AgentDeps } from './types.js';

/** Failed enrolments per peer address, in one-minute windows; bounded memory. */
export class EnrollLimiter {
  private readonly windows = new Map<string, { start: number; failures: number; reported: boolean }>();
  constructor(
    private readonly limit: number,
    private readonly now: () => number,
  ) {}
  private window(peer: string) {
    const t = this.now();
    let w = this.windows.get(peer);
    if (!w || t - w.start >= 60_000) {
      if (this.windows.size > 10_000) {
        for (const [k, v] of this.windows) if (t - v.start >= 60_000) this.windows.delete(k);
      }
      w = { start: t, failures: 0, reported: false };
      this.windows.set(peer, w);
    }
    return w;
  }
  /** 'ok', 'blocked' or 'blocked-first' (the first refusal of this window, to be logged once). */
  check(peer: string): 'ok' | 'blocked' | 'blocked-first' {
    const w = this.window(peer);
    if (w.failures < this.limit) return 'ok';
    if (w.reported) return 'blocked';
    w.reported = true;
    return 'blocked-first';
  }
  fail(peer: string): void {
    this.window(peer).failures++;
  }
}

export interface Enrolment {
  /**
   * Enrols the machine at `peer` (its address). `req` is the decoded request,
   * or the error decoding it gave (refused like any other bad request).
   * Throws a FleetError for every refusal.
   */
  enroll(req: EnrollRequest | FleetError, peer: string): Promise<EnrollResponse>;
}

export function createEnrolment(deps: AgentDeps): Enrolment {
  const { store, ca, log, clock } = deps;
  const limiter = new EnrollLimiter(deps.limits.enrollFailuresPerMinute, () => Date.now());

  async function refused(fe: FleetError, node: string | null, peer: string, identity: unknown): Promise<void> {
    try {
      await store.events.append({
        node,
        kind: EVENT.agentEnrollRefused,
        actor: 'agent',
        cause: fe.code,
        details: { reason: fe.code, message: fe.message, peer, identity },
      });
    } catch (e) {
      log.error({ err: e, node, peer }, 'cannot record a refused enrolment');
    }
  }

  function response(agent: AgentRecord): EnrollResponse {
    return { nodeName: agent.node, certificatePem: agent.certPem, caCertificatePem: ca.certPem, notAfterMs: Date.parse(agent.certNotAfter) };
  }

  async function enroll(req: EnrollRequest | FleetError, peer: string): Promise<EnrollResponse> {
    let claimed: string | undefined;
    let tokenNode: string | undefined;
    let identity: AgentIdentity | undefined;
    const gate = limiter.check(peer);
    if (gate !== 'ok') {
      const fe = new FleetError('rate_limited', 'too many refused enrolments from this address; wait a minute');
      if (gate === 'blocked-first') await refused(fe, null, peer, null);
      throw fe;
    }
    try {
      if (req instanceof FleetError) throw req;
      checkEnrolToken(req.token);
      identity = checkIdentity(req.identity);
      const csr = await parseCsr(req.csrPem);
      // The node the machine is, by its MACs (fleet.yaml declares boot MACs).
      const owners = new Set<string>();
      for (const mac of identity.macs) {
        const n = await store.nodes.findByMac(mac);
        if (n) owners.add(n.name);
      }
      claimed = claimedNode(owners);
      const agentVersion = short(req.agentVersion, 64);
      const id = identity;
      const res = await store.transaction(async (tx) => {
        // Refused outside an install phase; thrown inside the transaction, so the token is not used up.
        const inInstall = async (name: string) => {
          const n = await tx.nodes.require(name);
          const refusal = enrolmentRefusal(n, { stateless: await bootsFromNetwork(tx, n.profile) });
          if (refusal) throw refusal;
          return n;
        };
        let consumed: { node: string };
        try {
          consumed = await tx.tokens.consume(req.token, { ...(claimed !== undefined ? { node: claimed } : {}), actor: 'agent', ip: peer });
        } catch (e) {
          // A retried Enroll (the answer was lost) with the same key gets the same certificate back.
          if (isFleetError(e) && e.code === 'token.used') {
            const n = (e.details as { node?: string } | undefined)?.node;
            const agent = n !== undefined ? await tx.agents.get(n) : null;
            if (agent && agent.keySha256 === csr.keySha256) {
              await inInstall(agent.node);
              return { agent, repeated: true };
            }
          }
          throw e;
        }
        tokenNode = consumed.node;
        const node = await inInstall(consumed.node);
        const notHers = macRefusal(node, claimed);
        if (notHers) throw notHers;
        const cert = await issueNodeCert(ca, node.name, csr, {
          now: clock,
          ...(deps.nodeCertValidityDays !== undefined ? { validityDays: deps.nodeCertValidityDays } : {}),
        });
        const agent = await tx.agents.recordEnrolment(
          node.name,
          {
            certSerial: cert.serial,
            certFingerprint: cert.fingerprint,
            certPem: cert.certPem,
            certNotAfter: cert.notAfter.toISOString(),
            keySha256: csr.keySha256,
            identity: id,
            agentVersion: agentVersion || null,
            details: { peer, macsKnown: claimed !== undefined },
          },
          { actor: `node:${node.name}`, cause: 'enroll' },
        );
        return { agent, repeated: false };
      });
      log.info({ node: res.agent.node, peer, repeated: res.repeated }, 'agent enrolled');
      // The row (agent.enrolled) is written by the store; the conductor is told (an adopting node configures).
      await deps.recorder.recorded({ node: res.agent.node, kind: EVENT.agentEnrolled, details: { peer, repeated: res.repeated } });
      return response(res.agent);
    } catch (e) {
      const fe = toFleetError(e);
      limiter.fail(peer);
      const detailNode = (fe.details as { node?: unknown } | undefined)?.node;
      const node = tokenNode ?? (typeof detailNode === 'string' ? detailNode : undefined) ?? claimed ?? null;
      await refused(fe, node, peer, identity ?? null);
      throw fe;
    }
  }

  return { enroll };
}
