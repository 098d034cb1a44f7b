/**
 * The caller as recorded in events. API callers share one token today, so the
 * actor is the name the client gives (X-Fleet-Actor, e.g. the CLI's user)
 * plus the client address; the name is sanitised, never trusted for access.
 */
export function actorOf(req: { ip: string; headers: Record<string, unknown> }): string {
  const raw = req.headers['x-fleet-actor'];
  const who = typeof raw === 'string' && raw !== '' ? raw.slice(0, 64) : 'api';
  return `${who.replace(/[^A-Za-z0-9@._-]/g, '_')}@${req.ip}`;
}
