/**
 * Label values, pure. Every label fleet exports comes from a closed set (a
 * catalogue, the state table, a route table) or is folded into `other`, so a
 * bad or hostile value can never grow the number of series.
 */
import { CATALOGUE } from '../../common/errors.js';
import { isEventKind } from '../../common/events.js';
import { isLifecycleState } from '../lifecycle/states.js';

export const OTHER = 'other';

/** A lifecycle state, or `other`. */
export function stateLabel(s: unknown): string {
  return typeof s === 'string' && isLifecycleState(s) ? s : OTHER;
}

/** An event kind of the catalogue (common/events.ts), or `other`. */
export function kindLabel(k: unknown): string {
  return typeof k === 'string' && isEventKind(k) ? k : OTHER;
}

/** An error catalogue code (common/errors.ts), or `other`. */
export function codeLabel(c: unknown): string {
  return typeof c === 'string' && Object.hasOwn(CATALOGUE, c) ? c : OTHER;
}

/**
 * A short name fleet writes itself (a step, an operation): lower-case
 * letters, digits, `-`, `_`, `.`, at most 40 characters; anything else is `other`.
 */
export function nameLabel(s: unknown): string {
  return typeof s === 'string' && /^[a-z][a-z0-9._-]{0,39}$/.test(s) ? s : OTHER;
}

/**
 * The boot face's route (as the router matched it, e.g. `/repo/debian/*`)
 * as the `tree` label of the boot HTTP metrics: the static trees by their
 * prefix, the dynamic endpoints by what they serve; no route matched is `none`.
 */
export function bootTreeOf(routeUrl: string | undefined): string {
  if (routeUrl === undefined || routeUrl === '') return 'none';
  const statics: [string, string][] = [
    ['/repo/debian/', 'repo/debian'],
    ['/repo/', 'repo'],
    ['/images/sha256/', 'images/sha256'],
    ['/images/', 'images'],
    ['/bootenv/vmlinuz', 'bootenv'],
    ['/bootenv/initrd.img', 'bootenv'],
    ['/agent/adopt.sh', 'adopt'],
    ['/agent/', 'agent'],
  ];
  for (const [prefix, tree] of statics) if (routeUrl.startsWith(prefix)) return tree;
  if (routeUrl === '/boot.ipxe' || routeUrl.startsWith('/boot/')) return 'script';
  if (routeUrl.startsWith('/kickstart/')) return 'kickstart';
  if (routeUrl.startsWith('/bootenv/') && routeUrl.endsWith('/plan')) return 'plan';
  if (routeUrl.startsWith('/api/v1/boot-events/')) return 'callback';
  if (routeUrl.startsWith('/inspection/')) return 'inspection';
  return OTHER;
}

/** The bytes of an answer's body as fastify hands it to onSend: a string, a Buffer, a stream (its content-length), nothing. */
export function bodyBytes(method: string, payload: unknown, contentLength: unknown): number {
  if (method === 'HEAD' || payload === undefined || payload === null) return 0;
  if (typeof payload === 'string') return Buffer.byteLength(payload);
  if (Buffer.isBuffer(payload) || payload instanceof Uint8Array) return payload.byteLength;
  const n = Number(contentLength);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}
