/**
 * Listen addresses ("ADDR:PORT") of the server's faces and its gRPC service:
 * one parser, one formatter. Pure.
 */
import { FleetError } from './errors.js';

export interface HostPort {
  host: string;
  port: number;
}

/** "ADDR:PORT", "[v6]:PORT", "*:PORT" or ":PORT" → host and port ("*" and "" are every IPv4 address). */
export function parseListen(listen: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new FleetError('usage.invalid', `bad listen address '${listen}' (expected ADDR:PORT, e.g. 127.0.0.1:8080)`);
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' || host === '*' ? '0.0.0.0' : host, port };
}

export function formatHostPort(h: HostPort): string {
  return `${h.host.includes(':') ? `[${h.host}]` : h.host}:${h.port}`;
}

export function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === '::1' || host === 'localhost';
}
