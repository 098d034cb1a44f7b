/**
 * When an agent may enrol (issue 9): only as part of an install, or of an
 * adoption (issue 12: `fleet adopt` put the node in `adopting` and issued
 * the adoption token; the admin runs the printed line on the machine). The
 * kickstart's %post runs `fleet-agent enroll` on the freshly installed
 * system, before its last section posts install-finished; the agent at the
 * first boot and after it uses the certificate it got then and never enrols.
 *
 * Allowed states: `installing` (the %post), and the two before it,
 * `netbooting` and `power-cycling`, because the lifecycle may lag behind the
 * installer (a script or kickstart fetch signal that found the node busy is
 * replayed later), so a fast install can enrol before its node is seen
 * installing. `installed` and later are refused: install-finished revoked
 * the enrolment token anyway. The node must be armed too (the kickstart is
 * served only while it is). An adopting node is not armed (nothing netboots):
 * the adoption token, which only `fleet adopt` issues, is what authorises it.
 * A stateless node (docs/stateless.md) enrols at every boot, in any state and
 * unarmed: nothing of its last boot survives, its certificate included. Its
 * enrolment token comes only with the stateless plan, which only the install
 * token of the node's own boot script opens.
 *
 * Also here: what an Enroll request must look like (token, identity) and
 * which node its MAC addresses name. Pure.
 */
import type { EnrollRequest } from '../../proto/gen/fleet/v1/agent.js';
import { FleetError } from '../../common/errors.js';
import { MAC_CANONICAL } from '../../common/patterns.js';
import { S } from '../lifecycle/states.js';
import type { AgentIdentity } from '../store/index.js';
import { MAX_FIELD, MAX_MACS, short } from './bounds.js';

export const ENROLMENT_STATES: readonly string[] = [S.powerCycling, S.netbooting, S.installing];

/** States in which an adopted machine enrols (no install, not armed). */
export const ADOPTION_STATES: readonly string[] = [S.adopting];

/** Why the node's agent may not enrol now, or null when it may. */
export function enrolmentRefusal(node: { name: string; state: string; armed: boolean }, o: { stateless?: boolean } = {}): FleetError | null {
  if (o.stateless) return null;
  if (ADOPTION_STATES.includes(node.state)) return null;
  if (!ENROLMENT_STATES.includes(node.state)) {
    return new FleetError(
      'enroll.not_installing',
      `node ${node.name} is ${node.state}, not installing or adopting: an agent enrols only during an install (${ENROLMENT_STATES.join(', ')}) or an adoption (fleet adopt); reinstall or adopt the node to enrol it again`,
      { node: node.name, state: node.state },
    );
  }
  if (!node.armed) {
    return new FleetError('enroll.not_installing', `node ${node.name} is not armed for install: an agent enrols only during an install`, {
      node: node.name,
      state: node.state,
    });
  }
  return null;
}

const TOKEN_RE = /^[A-Za-z0-9_-]{16,256}$/;

/** Throws unless the enrolment carries a well-formed token (its validity is the store's to say). */
export function checkEnrolToken(token: string): void {
  if (token === '') throw new FleetError('auth.missing', 'the enrolment carries no token');
  if (!TOKEN_RE.test(token)) throw new FleetError('auth.invalid', 'the enrolment token is malformed');
}

/** The machine identity of an enrolment, canonical (MACs lower-case with colons, deduplicated) and bounded. */
export function checkIdentity(id: EnrollRequest['identity']): AgentIdentity {
  if (!id) throw new FleetError('request.invalid', 'the enrolment carries no machine identity');
  if (id.macs.length > MAX_MACS) throw new FleetError('request.invalid', `at most ${MAX_MACS} MAC addresses`);
  const macs = [...new Set(id.macs.map((m) => m.trim().toLowerCase().replace(/-/g, ':')))];
  const bad = macs.filter((m) => !MAC_CANONICAL.test(m));
  if (bad.length > 0) throw new FleetError('request.invalid', `not MAC addresses: ${bad.slice(0, 3).map((m) => JSON.stringify(short(m, 40))).join(', ')}`);
  for (const [k, v] of [
    ['serial', id.serial],
    ['uuid', id.uuid],
    ['hostname', id.hostname],
  ] as const) {
    if (v.length > MAX_FIELD) throw new FleetError('request.invalid', `identity ${k} is longer than ${MAX_FIELD} characters`);
  }
  return { serial: id.serial.trim(), uuid: id.uuid.trim().toLowerCase(), macs, hostname: id.hostname.trim() };
}

/** The node the machine claims to be by its MACs (the nodes owning them): undefined when none, refused when several. */
export function claimedNode(owners: ReadonlySet<string>): string | undefined {
  if (owners.size > 1) {
    throw new FleetError('auth.forbidden', `the reported MAC addresses belong to several nodes (${[...owners].sort().join(', ')})`);
  }
  return owners.values().next().value;
}

/** A token's node with declared MACs must be the machine's: refused when none of the machine's MACs is one of them. */
export function macRefusal(node: { name: string; macs: readonly string[] }, claimed: string | undefined): FleetError | null {
  if (claimed === undefined && node.macs.length > 0) {
    return new FleetError('auth.forbidden', `none of the reported MAC addresses is one of node ${node.name}'s`, { node: node.name });
  }
  return null;
}
