/**
 * Value checks for the netboot renderers (DESIGN §4): every value that lands
 * in an iPXE script or a kickstart is checked against a strict pattern right
 * before rendering. A value that does not match is an error, never escaped.
 *
 * The shared patterns live in common/patterns.ts (the config parser
 * uses the same ones); this file adds what only the renderers need (tokens,
 * fingerprints, console text, URLs inside kernel arguments, ...) and a small
 * collector that gathers every problem of one render into one FleetError.
 *
 * Pure: no I/O.
 */
import {
  checkCryptHash,
  checkHttpUrl,
  checkKernelArg,
  checkNodeName,
  checkPackageName,
  checkPartitionLine,
  checkSshKey,
  checkTimezone,
  isDomain,
  normalizeMac,
  OBJECT_NAME,
  show,
} from '../../../common/patterns.js';
import { FleetError, type ErrorCode } from '../../../common/errors.js';

export {
  checkCryptHash,
  checkKernelArg,
  checkNodeName,
  checkPackageName,
  checkPartitionLine,
  checkSshKey,
  checkTimezone,
  normalizeMac,
  show,
};

/** A check returns a problem description, or undefined when the value is fine. */
export type Check = (value: string) => string | undefined;

/**
 * Characters allowed in a URL that is rendered into a script: RFC 3986
 * unreserved, gen-delims and a few sub-delims, but none of `$ & ; ' " ( ) ! *`
 * backslash, backtick, whitespace or `#`. Such a URL is safe inside a
 * double-quoted shell word, on an iPXE command line and in a kernel argument.
 */
const RENDER_URL_CHARS = /^https?:\/\/[A-Za-z0-9._~:/?@+,=%[\]-]+$/;

/** One-time enrolment / callback token: base64url, 16-512 characters (store issues 43). */
export const TOKEN = /^[A-Za-z0-9_-]{16,512}$/;
/** SHA-256 certificate fingerprint: 64 hex digits, optionally colon-separated pairs. */
export const FINGERPRINT = /^(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31})$/;
/** Console keymap / X layout name (us, be-oss, fr-latin9). */
export const KEYMAP = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
/** Locale as kickstart `lang` takes it (en_US.UTF-8, de_DE, C.UTF-8). */
export const LOCALE = /^(?:[a-z]{2,3}(?:_[A-Z]{2})?|C)(?:\.(?:UTF-8|utf8))?(?:@[a-z]+)?$/;
/**
 * Free text shown on the console by iPXE `echo` (reasons, messages). No `$`
 * (iPXE setting expansion), no `&`, `|`, `;`, `#`, quotes or backslashes.
 */
export const CONSOLE_TEXT = /^[A-Za-z0-9 .,:()/_+=@%-]{1,300}$/;
/** A kernel argument whose value is a URL, e.g. inst.ks=http://10.10.0.1/kickstart/n1.ks */
const URL_KERNEL_ARG = /^([A-Za-z_][A-Za-z0-9_.-]*)=(https?:\/\/.*)$/;

/** A URL to render into a script: a valid http(s) URL made only of safe characters. */
export function checkRenderUrl(url: string): string | undefined {
  const bad = checkHttpUrl(url);
  if (bad) return bad;
  if (!RENDER_URL_CHARS.test(url)) return `URL ${show(url)} has characters outside [A-Za-z0-9._~:/?@+,=%[]-]`;
  return undefined;
}

/** The fleet server's base URL: a render URL with no query, fragment or trailing '/'. */
export function checkServerUrl(url: string): string | undefined {
  const bad = checkRenderUrl(url);
  if (bad) return bad;
  if (/[?#]/.test(url)) return `server URL ${show(url)} must not have a query or fragment`;
  if (url.endsWith('/')) return `server URL ${show(url)} must not end with '/'`;
  return undefined;
}

/** A kernel argument: a single safe token, or NAME=URL where the URL is a render URL. */
export function checkBootArg(arg: string): string | undefined {
  const plain = checkKernelArg(arg);
  if (!plain) return undefined;
  const m = URL_KERNEL_ARG.exec(arg);
  if (m && !checkRenderUrl(m[2]!)) return undefined;
  if (m) return `kernel argument ${show(arg)}: ${checkRenderUrl(m[2]!)}`;
  return plain;
}

export function checkToken(token: string): string | undefined {
  if (TOKEN.test(token)) return undefined;
  if (/[\r\n]/.test(token)) return 'token contains a newline';
  return 'token must be base64url (A-Z a-z 0-9 _ -), 16-512 characters';
}

export function checkFingerprint(fp: string): string | undefined {
  if (FINGERPRINT.test(fp)) return undefined;
  return `CA fingerprint ${show(fp)} must be a SHA-256 digest in hex (64 digits, optionally colon-separated)`;
}

export function checkKeymap(k: string): string | undefined {
  return KEYMAP.test(k) ? undefined : `keyboard layout ${show(k)} must match ${KEYMAP.source}`;
}

export function checkLocale(l: string): string | undefined {
  return LOCALE.test(l) ? undefined : `language ${show(l)} must be a locale such as en_US.UTF-8`;
}

export function checkConsoleText(t: string): string | undefined {
  if (CONSOLE_TEXT.test(t)) return undefined;
  if (/[\r\n]/.test(t)) return `console text ${show(t)} contains a newline`;
  return `console text ${show(t)} has characters outside [A-Za-z0-9 .,:()/_+=@%-] or is longer than 300`;
}

export function checkDomain(d: string): string | undefined {
  return isDomain(d) ? undefined : `${show(d)} is not a valid DNS domain`;
}

export function checkProfileName(n: string): string | undefined {
  return OBJECT_NAME.test(n) ? undefined : `${show(n)} is not a valid profile name`;
}

export function checkMac(mac: string): string | undefined {
  return normalizeMac(mac) ? undefined : `${show(mac)} is not a unicast MAC address`;
}

/** A positive integer within bounds (sleep seconds, retry counts). */
export function checkCount(n: number, min: number, max: number, what: string): string | undefined {
  return Number.isInteger(n) && n >= min && n <= max ? undefined : `${what} ${n} must be an integer between ${min} and ${max}`;
}

/**
 * Collects the problems of one render; `throwIfAny` raises one FleetError
 * whose message names the artefact and the first problem, with every problem
 * in details.
 */
export class Problems {
  readonly list: string[] = [];
  constructor(
    /** What is being rendered, e.g. "kickstart for valkyrie01". */
    readonly subject: string,
    readonly code: ErrorCode = 'config.invalid',
  ) {}

  /** Runs `check` on `value`; records "<what>: <problem>" when it fails. Returns whether the value is fine. */
  check(what: string, value: string, check: Check): boolean {
    const bad = typeof value === 'string' ? check(value) : `expected a string, got ${typeof value}`;
    if (bad) this.list.push(`${what}: ${bad}`);
    return !bad;
  }

  add(problem: string): void {
    this.list.push(problem);
  }

  throwIfAny(): void {
    if (this.list.length === 0) return;
    const more = this.list.length > 1 ? ` (and ${this.list.length - 1} more)` : '';
    throw new FleetError(this.code, `${this.subject}: ${this.list[0]}${more}`, { problems: [...this.list] });
  }
}
