/**
 * Roles of API users (issue 17 item 1) and the role each admin route needs.
 *
 *   read-only  every GET (nodes, events, the event stream, inventory, plans, iPXE renders, exports)
 *   operator   + power, bootdev, BMC info, reinstall, cancel, reconcile, BMC scans, kickstart renders
 *              (they hold the root password hash), and a console when there is one
 *   admin      + apply, enroll, adopt, discovery accept/reject, munge key rotation, users (GET /users too)
 *
 * ROUTE_ROLES is the one table: the admin scope's onRoute hook copies each
 * route's entry into its route options (`config.role`) when the route is
 * registered, and the auth hook reads it from the route the router matched
 * (never from the raw URL). A route missing from the table needs `admin`
 * (closed by default) and fails test/unit/http/roles.test.ts, which walks
 * every registered route.
 */
export const ROLES = ['read-only', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

/** Whether `have` may do what `need` allows (the roles are ordered: each includes the ones before it). */
export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

/**
 * The role each admin route needs, by `METHOD url` as fastify registers it
 * (with the /api/v1 prefix, `:param` placeholders). HEAD follows GET.
 */
export const ROUTE_ROLES: Readonly<Record<string, Role>> = Object.freeze({
  'GET /api/v1/nodes': 'read-only',
  'GET /api/v1/groups': 'read-only',
  // Outside /api/v1, guarded by its own scope's hook with this role (http/app.ts).
  'GET /metrics': 'read-only',
  'GET /api/v1/nodes/:name': 'read-only',
  'GET /api/v1/nodes/:name/events': 'read-only',
  'GET /api/v1/nodes/status': 'read-only',
  'GET /api/v1/events': 'read-only',
  'GET /api/v1/events/stream': 'read-only',
  'GET /api/v1/discover/bmc': 'read-only',
  'GET /api/v1/inventory': 'read-only',
  'GET /api/v1/inventory/:name/history': 'read-only',
  'GET /api/v1/inventory/:name/diff': 'read-only',
  'GET /api/v1/render/:name/ipxe': 'read-only',
  'GET /api/v1/export/:format': 'read-only',
  'GET /api/v1/discovered': 'read-only',
  'GET /api/v1/discover/plan': 'read-only',
  'GET /api/v1/timeline': 'read-only',

  // A rendered kickstart holds the profile's root password hash (crypt): not for read-only.
  'GET /api/v1/render/:name/kickstart': 'operator',
  'POST /api/v1/power': 'operator',
  // The serial console (an HTTP upgrade on this path, server/http/console.ts; a plain GET explains it).
  'GET /api/v1/nodes/:name/console': 'operator',
  'POST /api/v1/bootdev': 'operator',
  'POST /api/v1/bmc/info': 'operator',
  // Replaces BMC accounts and disables the old one: credential management.
  'POST /api/v1/bmc/rotate': 'admin',
  'POST /api/v1/nodes/reinstall': 'operator',
  'POST /api/v1/nodes/cancel': 'operator',
  'POST /api/v1/inventory/reconcile': 'operator',
  'POST /api/v1/discover/bmc': 'operator',

  'POST /api/v1/apply': 'admin',
  'POST /api/v1/enroll': 'admin',
  'POST /api/v1/nodes/:name/adopt': 'admin',
  'POST /api/v1/discover/accept': 'admin',
  'POST /api/v1/discover/reject': 'admin',
  'POST /api/v1/discover/unreject': 'admin',
  'POST /api/v1/slurm/rotate-key': 'admin',
  'GET /api/v1/users': 'admin',
  'POST /api/v1/users': 'admin',
  'DELETE /api/v1/users/:name': 'admin',
  'POST /api/v1/users/:name/tokens': 'admin',
  'POST /api/v1/users/:name/disable': 'admin',
  'POST /api/v1/users/:name/enable': 'admin',

  // The dashboard (server/http/dashboard.ts): a session cookie instead of the bearer token, the same roles.
  // Its public routes (/, /ui, /ui/login, /ui/assets/:file) are DASHBOARD_PUBLIC_ROUTES there.
  'GET /ui/': 'read-only',
  'GET /ui/nodes': 'read-only',
  'GET /ui/nodes/:name': 'read-only',
  'GET /ui/events': 'read-only',
  'POST /ui/logout': 'read-only',
  'POST /ui/actions': 'operator',
  'GET /ui/timeline': 'read-only',
  'GET /ui/timeline.svg': 'read-only',
  'GET /ui/discovery': 'read-only',
  'POST /ui/discovery': 'admin',
});

/** The table's role for a route, or undefined when the table has none (HEAD is looked up as GET). */
export function tableRole(method: string, url: string): Role | undefined {
  const m = method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase();
  return ROUTE_ROLES[`${m} ${url}`];
}

/** What a route's options say it needs: its own `config.role`, else the table's, else admin (closed by default). */
export function requiredRole(method: string, url: string, declared?: unknown): Role {
  if (typeof declared === 'string' && isRole(declared)) return declared;
  return tableRole(method, url) ?? 'admin';
}
