/**
 * API users (issue 17 item 1; role admin, server/auth/roles.ts):
 *   GET    /users                  users, roles and token ids (never a token)
 *   POST   /users                  add a user; the answer holds its first token, once
 *   DELETE /users/:name            remove a user and its tokens (not the last enabled admin)
 *   POST   /users/:name/tokens     a new token (revokeOthers: the others go)
 *   POST   /users/:name/disable    its tokens stop working (kept); /enable undoes it
 *
 * A token is in its answer only: the store keeps its SHA-256, events and
 * logs name its id.
 */
import type { FastifyInstance } from 'fastify';
import * as S from '../../../common/api/schemas.js';
import { FleetError } from '../../../common/errors.js';
import { digestToken, newUserToken, parseExpiry } from '../../auth/users.js';
import type { Store } from '../../store/index.js';
import { actorOf } from './actor.js';

export async function registerUserRoutes(api: FastifyInstance, deps: { store: Store }): Promise<void> {
  const { store } = deps;
  const toApi = (u: NonNullable<Awaited<ReturnType<Store['users']['get']>>>): S.ApiUser => ({ ...u, role: u.role as S.ApiUser['role'] });

  api.get('/users', { schema: { summary: 'API users, their roles and token ids (never a token)', response: { 200: S.UsersResponse } } }, async (): Promise<S.UsersResponse> => ({
    users: (await store.users.list()).map(toApi),
  }));

  api.post<{ Body: S.UserAddRequest }>(
    '/users',
    { schema: { summary: 'Add an API user with a role; the answer holds its token, shown this once', body: S.UserAddRequest, response: { 200: S.UserTokenResponse } } },
    async (req): Promise<S.UserTokenResponse> => {
      const expiresAt = req.body.expires !== undefined ? parseExpiry(req.body.expires, new Date()) : null;
      const token = newUserToken();
      const digest = digestToken(token, expiresAt);
      await store.users.add(req.body.name, req.body.role, digest, { actor: actorOf(req) });
      req.log.info({ user: req.body.name, role: req.body.role, tokenId: digest.id }, 'user added');
      return { user: req.body.name, role: req.body.role, token, tokenId: digest.id, expiresAt, revoked: 0 };
    },
  );

  api.delete<{ Params: S.UserParams }>(
    '/users/:name',
    { schema: { summary: 'Remove an API user and its tokens (never the last enabled admin)', params: S.UserParams, response: { 200: S.UserRemoveResponse } } },
    async (req): Promise<S.UserRemoveResponse> => {
      await store.users.remove(req.params.name, { actor: actorOf(req) });
      req.log.info({ user: req.params.name }, 'user removed');
      return { removed: req.params.name };
    },
  );

  api.post<{ Params: S.UserParams; Body: S.UserTokenRequest | undefined }>(
    '/users/:name/tokens',
    {
      schema: {
        summary: "Issue a new token to a user, shown this once; revokeOthers: its other tokens stop working",
        params: S.UserParams,
        body: S.UserTokenRequest,
        response: { 200: S.UserTokenResponse },
      },
    },
    async (req): Promise<S.UserTokenResponse> => {
      const body = req.body ?? {};
      const expiresAt = body.expires !== undefined ? parseExpiry(body.expires, new Date()) : null;
      const token = newUserToken();
      const digest = digestToken(token, expiresAt);
      const revoked = await store.users.addToken(req.params.name, digest, { revokeOthers: body.revokeOthers === true }, { actor: actorOf(req) });
      const u = await store.users.get(req.params.name);
      if (!u) throw new FleetError('not_found', `no user ${req.params.name}`);
      req.log.info({ user: u.name, tokenId: digest.id, revoked }, 'user token issued');
      return { user: u.name, role: u.role as S.UserTokenResponse['role'], token, tokenId: digest.id, expiresAt, revoked };
    },
  );

  for (const [path, disabled] of [['/users/:name/disable', true], ['/users/:name/enable', false]] as const) {
    api.post<{ Params: S.UserParams }>(
      path,
      {
        schema: {
          summary: disabled ? "Disable an API user: its tokens stop working, kept (never the last enabled admin)" : 'Enable a disabled API user again',
          params: S.UserParams,
          response: { 200: S.UserDisableResponse },
        },
      },
      async (req): Promise<S.UserDisableResponse> => {
        const changed = await store.users.setDisabled(req.params.name, disabled, { actor: actorOf(req) });
        return { user: req.params.name, disabled, changed };
      },
    );
  }
}
