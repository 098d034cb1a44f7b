/**
 * The caller as recorded in events: the credential that authenticated the
 * request (set by the admin scope's auth hook) and the client address. The
 * name a client claims (X-Fleet-Actor, e.g. the CLI's user) is recorded
 * beside it, sanitised, and never stands for the caller alone:
 * `alice@127.0.0.1 via api-token:1a2b3c4d`.
 */
import { FleetError } from '../../../common/errors.js';

export function actorOf(req: { ip: string; headers: Record<string, unknown>; principal?: string }): string {
  if (!req.principal) throw new FleetError('internal', 'actorOf() on a request that no credential authenticated');
  const raw = req.headers['x-fleet-actor'];
  const who = typeof raw === 'string' && raw !== '' ? raw.slice(0, 64).replace(/[^A-Za-z0-9@._-]/g, '_') : 'api';
  return `${who}@${req.ip} via ${req.principal}`;
}
