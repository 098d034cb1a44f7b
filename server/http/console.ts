/**
 * `fleet console NODE` on the admin listener: an HTTP/1.1 upgrade
 *
 *   GET /api/v1/nodes/NODE/console[?force=1]
 *   Connection: Upgrade
 *   Upgrade: fleet-console
 *   Authorization: Bearer TOKEN
 *
 * → 101 Switching Protocols, then the node's serial console on the same
 * connection (server → client raw output; client → server frames, see
 * server/console/frames.ts). Any refusal is an ordinary HTTP error with the
 * catalogue's JSON body before the upgrade (401 bad token, 404 no such node,
 * 409 console busy with holder and since, 501 BMC without a console ...).
 *
 * Fastify does not see upgrade requests (node:http emits 'upgrade'), so the
 * token is checked here with the same users' check and roles table as the admin scope's hook.
 * A plain GET of the path (no upgrade) reaches the fastify route of the same
 * path, which explains how to use it.
 */
import type { IncomingMessage, Server } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { authenticate, authorize, type TokenSource } from '../auth/users.js';
import { requiredRole } from '../auth/roles.js';
import { FleetError, toFleetError } from '../../common/errors.js';
import { FrameDecoder } from '../console/frames.js';
import type { ConsoleAttachment, ConsoleManager } from '../console/manager.js';
import { actorOf } from './routes/actor.js';

export const CONSOLE_UPGRADE = 'fleet-console';
const PATH = /^\/api\/v1\/nodes\/([^/?#]+)\/console$/;

export interface ConsoleUpgradeDeps {
  /** The API users' tokens (store.users): the attach needs the role the roles table gives the console route. */
  users: TokenSource;
  /** Absent: the server runs without BMC access; attaches answer not_implemented. */
  consoles?: ConsoleManager;
  log?: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

function refuse(socket: Duplex, e: FleetError): void {
  const body = JSON.stringify(e.toJSON());
  socket.end(
    `HTTP/1.1 ${e.http} ${STATUS_CODES[e.http] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export function installConsoleUpgrade(server: Server, deps: ConsoleUpgradeDeps): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    void handle(req, socket, head, deps).catch((e: unknown) => {
      if (!socket.destroyed) refuse(socket, toFleetError(e));
    });
  });
}

async function handle(req: IncomingMessage, socket: Duplex, head: Buffer, deps: ConsoleUpgradeDeps): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://fleet.invalid');
  const m = PATH.exec(url.pathname);
  if (!m || req.method !== 'GET') throw new FleetError('not_found', `no upgrade endpoint at ${req.method} ${url.pathname} (the console is GET /api/v1/nodes/NODE/console)`);
  if (String(req.headers.upgrade ?? '').toLowerCase() !== CONSOLE_UPGRADE) throw new FleetError('request.invalid', `the console endpoint speaks Upgrade: ${CONSOLE_UPGRADE} only`);
  const principal = await authenticate(deps.users, req.headers.authorization, new Date());
  authorize(principal, requiredRole('GET', '/api/v1/nodes/:name/console'), 'GET /api/v1/nodes/:name/console');
  let node: string;
  try {
    node = decodeURIComponent(m[1]!);
  } catch {
    throw new FleetError('request.invalid', 'bad percent-encoding in the node name');
  }
  if (!deps.consoles) throw new FleetError('not_implemented', 'this server runs without BMC access: no consoles');
  const force = ['1', 'true', 'yes'].includes(url.searchParams.get('force') ?? '');
  const actor = actorOf({ ip: req.socket.remoteAddress ?? '?', headers: req.headers, principal });

  let attachment: ConsoleAttachment | null = null;
  let gone = false;
  const early: Buffer[] = [];
  socket.on('close', () => {
    gone = true;
    void attachment?.detach();
  });
  attachment = await deps.consoles.attach(
    node,
    actor,
    {
      data: (chunk) => {
        if (attachment) socket.write(chunk);
        else early.push(chunk);
      },
      end: (reason) => {
        if (!socket.destroyed) socket.end(`\r\n[fleet console: ${reason.message}]\r\n`);
      },
    },
    { force },
  );
  if (gone) {
    await attachment.detach();
    return;
  }
  deps.log?.info({ node, actor, provider: attachment.provider, force }, 'console attached');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${CONSOLE_UPGRADE}\r\nConnection: Upgrade\r\nX-Fleet-Console-Provider: ${attachment.provider}\r\n` +
      (attachment.logFile ? `X-Fleet-Console-Log: ${attachment.logFile}\r\n` : '') +
      '\r\n',
  );
  for (const c of early.splice(0)) socket.write(c);
  const a = attachment;
  const frames = new FrameDecoder();
  const onInput = (chunk: Buffer): void => {
    try {
      for (const f of frames.push(chunk)) {
        if (f.type === 'data') a.write(f.data);
        else a.sendBreak();
      }
    } catch (e) {
      socket.end(`\r\n[fleet console: ${toFleetError(e).message}]\r\n`);
      void a.detach();
    }
  };
  if (head.length) onInput(head);
  socket.on('data', onInput);
  socket.on('end', () => {
    deps.log?.info({ node, actor }, 'console detached');
    void a.detach();
    socket.end();
  });
}
