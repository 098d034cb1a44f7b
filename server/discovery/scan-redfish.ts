/**
 * The Redfish probe of a BMC scan (I/O only; scan-classify.ts decides what
 * the answer means): one GET https://ADDR:PORT/redfish/v1/ without
 * credentials (DSP0266 lets anyone read the service root), over TLS that is
 * NOT verified, only to identify: the connector (bmc/redfish/tls.ts, trust
 * on first use on a connection of its own) records the SHA-256 of the
 * certificate so the operator can pin it later, and nothing is ever sent
 * that a stranger may not see. One deadline covers connect, handshake,
 * headers and body; the body is read up to a bound.
 */
import { Client, errors as undiciErrors } from 'undici';
import { isFleetError } from '../../common/errors.js';
import { trustingConnector, type TrustState } from '../bmc/redfish/tls.js';
import type { RedfishRaw } from './scan-classify.js';

/** A service root is a few KiB; anything much larger is not one. */
export const MAX_ROOT_BYTES = 256 * 1024;

export const SERVICE_ROOT_PATH = '/redfish/v1/';

class Deadline extends Error {}

function codeOf(e: unknown): string {
  const err = e as { code?: unknown; cause?: { code?: unknown } };
  if (typeof err?.code === 'string') return err.code;
  if (typeof err?.cause?.code === 'string') return err.cause.code;
  return '';
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Maps a failed exchange to what it says about the address. */
function failure(e: unknown, where: string, timeoutMs: number, timedOut: boolean): RedfishRaw {
  const code = codeOf(e);
  if (timedOut || e instanceof Deadline || e instanceof undiciErrors.ConnectTimeoutError || e instanceof undiciErrors.HeadersTimeoutError || e instanceof undiciErrors.BodyTimeoutError) {
    return { kind: 'timeout', message: `no HTTPS answer from ${where} within ${timeoutMs} ms` };
  }
  if (['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'].includes(code)) return { kind: 'refused', message: `TCP ${where}: ${code}` };
  if (isFleetError(e) && e.code === 'bmc.tls') return { kind: 'tls', message: e.message };
  const msg = messageOf(e);
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code === 'EPROTO' || /ssl|tls|certificate|handshake/i.test(msg)) {
    return { kind: 'tls', message: `${code || 'TLS'}: ${msg}`.slice(0, 300) };
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return { kind: 'tls', message: `${where} closed the connection during the TLS handshake or request (${code})` };
  return { kind: 'error', message: `GET ${SERVICE_ROOT_PATH} on ${where} failed: ${code ? `${code}: ` : ''}${msg}`.slice(0, 300) };
}

/** Probes one address; never throws, always ends within about `timeoutMs`. */
export async function probeRedfish(address: string, port: number, timeoutMs: number): Promise<RedfishRaw> {
  const where = `${address}:${port}`;
  const state: TrustState = {};
  const client = new Client(`https://${address}:${port}`, {
    connect: trustingConnector({ address, port, tls: { trustOnFirstUse: true }, timeoutMs, state }),
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    pipelining: 1,
  });
  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort(new Deadline('deadline'));
  }, timeoutMs);
  try {
    const res = await client.request({ method: 'GET', path: SERVICE_ROOT_PATH, headers: { accept: 'application/json', 'odata-version': '4.0' }, signal: ac.signal });
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    for await (const chunk of res.body) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      size += b.length;
      if (size > MAX_ROOT_BYTES) {
        tooLarge = true;
        res.body.destroy();
        break;
      }
      chunks.push(b);
    }
    const ct = res.headers['content-type'];
    return {
      kind: 'http',
      status: res.statusCode,
      contentType: typeof ct === 'string' ? ct : null,
      body: tooLarge ? null : Buffer.concat(chunks).toString('utf8'),
      fingerprint: state.lastSeen ?? null,
    };
  } catch (e) {
    return failure(e, where, timeoutMs, timedOut);
  } finally {
    clearTimeout(timer);
    await client.destroy().catch(() => undefined);
  }
}
