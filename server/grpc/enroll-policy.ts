/**
 * When an agent may enrol (issue 9): only as part of an install. The
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
 * served only while it is). Pure.
 */
import { FleetError } from '../../common/errors.js';
import { S } from '../lifecycle/states.js';

export const ENROLMENT_STATES: readonly string[] = [S.powerCycling, S.netbooting, S.installing];

/** Why the node's agent may not enrol now, or null when it may. */
export function enrolmentRefusal(node: { name: string; state: string; armed: boolean }): FleetError | null {
  if (!ENROLMENT_STATES.includes(node.state)) {
    return new FleetError(
      'enroll.not_installing',
      `node ${node.name} is ${node.state}, not installing: an agent enrols only during an install (${ENROLMENT_STATES.join(', ')}); reinstall the node to enrol it again`,
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
