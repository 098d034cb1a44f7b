/**
 * `fleet console NODE [--force]`: the node's serial console through the
 * server (which holds the BMC secrets and talks SOL to the BMC). The terminal
 * goes raw while attached when stdin is a TTY; `~.` after Enter detaches,
 * `~?` lists the escapes, `~B` sends a break (server/console/escape.ts).
 * Exit 0 when the user detached, 1 when the console ended underneath
 * (BMC gone, taken over with --force, server stopping): its last line says why.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { CATALOGUE, Exit, FleetError, type ErrorCode } from '../../../common/errors.js';
import { ESCAPE_HELP, EscapeScanner } from '../../console/escape.js';
import { encodeBreakFrame, encodeDataFrames } from '../../console/frames.js';
import type { CliIo } from '../io.js';
import { resolveClientSettings, type ClientSettings, type GlobalFlags } from '../settings.js';

export interface ConsoleFlags {
  force?: boolean;
}

export interface ConsoleDeps {
  /** Keystrokes; default process.stdin (raw mode while attached when it is a TTY). */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  /** Console output, bytes as they come; default process.stdout. */
  stdout?: NodeJS.WritableStream;
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Opens the upgraded connection, or throws the server's FleetError (busy, no such node, ...). */
export function openConsole(settings: ClientSettings, node: string, force: boolean): Promise<{ socket: Socket; head: Buffer; provider: string; logFile?: string }> {
  const u = new URL(`${settings.url}/api/v1/nodes/${encodeURIComponent(node)}/console${force ? '?force=1' : ''}`);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers: Record<string, string> = { connection: 'Upgrade', upgrade: 'fleet-console' };
  if (settings.token) headers.authorization = `Bearer ${settings.token}`;
  if (settings.actor) headers['x-fleet-actor'] = settings.actor;
  return new Promise((resolve, reject) => {
    const r = send(u, { method: 'GET', headers, ...(settings.ca ? { ca: settings.ca } : {}) });
    r.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      const logFile = res.headers['x-fleet-console-log'];
      resolve({ socket, head, provider: String(res.headers['x-fleet-console-provider'] ?? '?'), ...(typeof logFile === 'string' ? { logFile } : {}) });
    });
    r.on('response', (res) => {
      void readBody(res).then((text) => {
        let err: { code?: string; message?: string; details?: unknown } | undefined;
        try {
          err = (JSON.parse(text) as { error?: typeof err }).error;
        } catch {
          // not JSON
        }
        const code = err?.code && err.code in CATALOGUE ? (err.code as ErrorCode) : 'internal';
        let message = err?.message ?? `HTTP ${res.statusCode} from ${settings.url}`;
        if (code === 'auth.missing' && !settings.token) message += '; set FLEET_TOKEN, pass --token-file, or run on the server host next to its data dir';
        reject(new FleetError(code, message, err?.details));
      }, reject);
    });
    r.on('error', (e: NodeJS.ErrnoException) => reject(new FleetError('unavailable', `cannot reach the fleet server at ${settings.url} (${e.code ?? e.name}); is 'fleet server' running?`)));
    r.end();
  });
}

export async function cmdConsole(flags: GlobalFlags, node: string, opts: ConsoleFlags, io: CliIo, deps: ConsoleDeps = {}): Promise<number> {
  const settings = await resolveClientSettings(flags, io);
  const stdin = deps.stdin ?? process.stdin;
  const stdout = deps.stdout ?? process.stdout;
  const { socket, head, provider, logFile } = await openConsole(settings, node, Boolean(opts.force));
  const tty = stdin.isTTY === true && typeof stdin.setRawMode === 'function';
  // In raw mode the terminal no longer turns \n into \r\n: our own lines carry \r\n.
  io.stderr(`[fleet console: ${node} via ${provider}${opts.force ? ' (taken over)' : ''}; ~. after Enter detaches, ~? for help${logFile ? `; log ${logFile}` : ''}]\r\n`);
  if (tty) stdin.setRawMode!(true);
  const scanner = new EscapeScanner();
  let detached = false;
  const onKeys = (chunk: Buffer | string): void => {
    const r = scanner.feed(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (r.send.length) socket.write(encodeDataFrames(r.send));
    for (const a of r.actions) {
      if (a === 'help') io.stderr(ESCAPE_HELP);
      else if (a === 'break') socket.write(encodeBreakFrame());
      else if (a === 'detach') {
        detached = true;
        io.stderr('\r\n[fleet console: detached]\r\n');
        socket.end();
        return;
      }
    }
  };
  const onEof = (): void => {
    // Keystrokes from a pipe that ended: nothing more to type, detach.
    if (detached) return;
    detached = true;
    socket.end();
  };
  try {
    if (head.length) stdout.write(head);
    socket.on('data', (d: Buffer) => stdout.write(d));
    stdin.on('data', onKeys);
    stdin.on('end', onEof);
    stdin.resume();
    await new Promise<void>((resolve) => {
      socket.on('close', () => resolve());
      socket.on('error', () => resolve());
    });
  } finally {
    stdin.off('data', onKeys);
    stdin.off('end', onEof);
    if (tty) stdin.setRawMode!(false);
    stdin.pause();
    socket.destroy();
  }
  return detached ? Exit.OK : Exit.FAILED;
}
