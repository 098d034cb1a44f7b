/**
 * `fleet user add|list|rm|token|disable|enable`: API users and their tokens
 * (issue 17 item 1; /api/v1/users, role admin). A new token is printed once,
 * alone on stdout (`TOKEN=$(fleet user add ci --role operator)`), what it
 * is on stderr; the server keeps its SHA-256 only.
 */
import type { UserDisableResponse, UserRemoveResponse, UsersResponse, UserTokenResponse } from '../../../common/api/schemas.js';
import { Exit, FleetError } from '../../../common/errors.js';
import { apiRequest } from '../client.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type GlobalFlags } from '../settings.js';
import { formatTable } from '../table.js';

export const ROLE_NAMES = ['read-only', 'operator', 'admin'] as const;

const enc = encodeURIComponent;

function printToken(res: UserTokenResponse, what: string, json: boolean | undefined, io: CliIo): void {
  if (json) {
    io.stdout(JSON.stringify(res, null, 2) + '\n');
    return;
  }
  io.stdout(res.token + '\n');
  const exp = res.expiresAt ? `, expires ${res.expiresAt}` : '';
  const rev = res.revoked > 0 ? `; ${res.revoked} other token${res.revoked === 1 ? '' : 's'} revoked` : '';
  io.stderr(`fleet: ${what}: user ${res.user} (role ${res.role}), token id ${res.tokenId}${exp}${rev}; the token above is shown this once (use it as FLEET_TOKEN or in a token file, mode 0600)\n`);
}

export async function cmdUserAdd(flags: GlobalFlags, name: string, opts: { role?: string; expires?: string; json?: boolean }, io: CliIo): Promise<number> {
  if (!opts.role || !(ROLE_NAMES as readonly string[]).includes(opts.role)) {
    throw new FleetError('usage.invalid', `--role must be one of ${ROLE_NAMES.join(', ')}`);
  }
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<UserTokenResponse>(settings, 'POST', '/api/v1/users', { name, role: opts.role, ...(opts.expires ? { expires: opts.expires } : {}) });
  printToken(res, 'user added', opts.json, io);
  return Exit.OK;
}

export async function cmdUserToken(flags: GlobalFlags, name: string, opts: { revokeOthers?: boolean; expires?: string; json?: boolean }, io: CliIo): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<UserTokenResponse>(settings, 'POST', `/api/v1/users/${enc(name)}/tokens`, {
    ...(opts.revokeOthers ? { revokeOthers: true } : {}),
    ...(opts.expires ? { expires: opts.expires } : {}),
  });
  printToken(res, 'token issued', opts.json, io);
  return Exit.OK;
}

/** One line per user: name, role, state, token count, the latest use of any of its tokens. */
export function formatUsers(users: UsersResponse['users']): string {
  if (users.length === 0) return 'no users\n';
  const rows = users.map((u) => {
    const used = u.tokens.map((t) => t.lastUsedAt).filter((t): t is string => t !== null).sort().at(-1) ?? '-';
    return [u.name, u.role, u.disabled ? 'disabled' : 'enabled', String(u.tokens.length), used, u.tokens.map((t) => t.id).join(',') || '-'];
  });
  return formatTable(['name', 'role', 'state', 'tokens', 'last used', 'token ids'], rows) + '\n';
}

export async function cmdUserList(flags: GlobalFlags, opts: { json?: boolean }, io: CliIo): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<UsersResponse>(settings, 'GET', '/api/v1/users');
  io.stdout(opts.json ? JSON.stringify(res, null, 2) + '\n' : formatUsers(res.users));
  return Exit.OK;
}

export async function cmdUserRm(flags: GlobalFlags, name: string, io: CliIo): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<UserRemoveResponse>(settings, 'DELETE', `/api/v1/users/${enc(name)}`);
  io.stdout(`user ${res.removed} removed; its tokens no longer work\n`);
  return Exit.OK;
}

export async function cmdUserDisable(flags: GlobalFlags, name: string, disable: boolean, io: CliIo): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const res = await apiRequest<UserDisableResponse>(settings, 'POST', `/api/v1/users/${enc(name)}/${disable ? 'disable' : 'enable'}`);
  io.stdout(`user ${res.user} ${res.disabled ? 'disabled' : 'enabled'}${res.changed ? '' : ' (already)'}\n`);
  return Exit.OK;
}
