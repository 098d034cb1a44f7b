/**
 * The PostgreSQL store's URL (store.url in fleet.yaml, fleet server --store):
 * checked and shown without its secrets. Pure, no driver: the config parser
 * uses it too.
 */

/**
 * Checks a store URL: postgres:// or postgresql://, a database named, no
 * password in it (secrets come from a file or the environment, and a URL
 * is shown in logs and process lists). Returns why it is refused (never
 * repeating the URL), or undefined. Pure.
 */
export function checkStoreUrl(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'is not a URL (expected postgres://USER@HOST:PORT/DATABASE)';
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') return `has scheme ${u.protocol.replace(/:$/, '')}: only postgres:// (or postgresql://) is supported`;
  if (u.password !== '') return 'has a password in it: a URL is shown in logs and process lists; give the password with store.password_file or store.password_env (or PGPASSWORD)';
  if (u.pathname === '' || u.pathname === '/') return 'names no database (expected postgres://USER@HOST:PORT/DATABASE)';
  return undefined;
}

/** The URL as shown in logs: scheme, user, host, port and database; never a password, never query parameters. */
export function redactStoreUrl(url: string): string {
  try {
    const u = new URL(url);
    const user = u.username ? `${decodeURIComponent(u.username)}@` : '';
    // pg lets ?host= (a socket directory, or a host) win over the URL's host.
    const host = u.searchParams.get('host') ?? u.host;
    return `${u.protocol}//${user}${host}${u.pathname}`;
  } catch {
    return 'postgres://(unparsable URL)';
  }
}
