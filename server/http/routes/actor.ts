/**
 * The caller as recorded in events: the user whose token authenticated the
 * request (set by the admin scope's auth hook) and the client address,
 * `alice@127.0.0.1`. The name a client claims (X-Fleet-Actor, e.g. the
 * CLI's login name) is recorded beside it, sanitised, when it differs, and
 * never stands for the caller: `alice@127.0.0.1 (client: root)`.
 */
import { FleetError } from '../../../common/errors.js';
import type { Principal } from '../../auth/users.js';

export function actorOf(req: { ip: string; headers: Record<string, unknown>; principal?: Pick<Principal, 'user'> }): string {
  if (!req.principal) throw new FleetError('internal', 'actorOf() on a request that no credential authenticated');
  const user = req.principal.user;
  const raw = req.headers['x-fleet-actor'];
  const claim = typeof raw === 'string' && raw !== '' ? raw.slice(0, 64).replace(/[^A-Za-z0-9@._-]/g, '_') : undefined;
  return `${user}@${req.ip}${claim !== undefined && claim !== user ? ` (client: ${claim})` : ''}`;
}
