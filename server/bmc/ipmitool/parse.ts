/**
 * Parsers for ipmitool 1.8.x output, and the mapping of its failures to the
 * error catalogue. Pure functions.
 */
import { FleetError } from '../../../common/errors.js';
import type { BootDeviceSetting, PowerState } from '../types.js';
import { decodeBootFlags } from '../ipmi/commands.js';

export function parsePowerStatus(stdout: string): PowerState {
  const m = /Chassis Power is (on|off)/i.exec(stdout);
  if (!m) throw new FleetError('bmc.protocol', 'ipmitool chassis power status: unexpected output');
  return m[1]!.toLowerCase() as PowerState;
}

/** `chassis bootparam get 5`: "Boot parameter data: 0004000000". */
export function parseBootParam5(stdout: string): BootDeviceSetting {
  const m = /Boot parameter data:\s*([0-9a-fA-F]{4,})/.exec(stdout);
  if (!m || m[1]!.length % 2 !== 0) throw new FleetError('bmc.protocol', 'ipmitool chassis bootparam get 5: unexpected output');
  const f = decodeBootFlags(Buffer.from(m[1]!, 'hex'));
  const device = f.device ?? 'none';
  if (!f.valid) return { device, persistent: null, mode: null };
  return { device, persistent: f.persistent, mode: f.efi ? 'uefi' : 'legacy' };
}

/** "Key   : value" lines → map (first occurrence wins). */
export function parseKeyValues(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const key = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    if (key && !out.has(key)) out.set(key, value);
  }
  return out;
}

export function parseMcInfo(stdout: string): { firmware?: string; manufacturerId?: number } {
  const kv = parseKeyValues(stdout);
  const out: { firmware?: string; manufacturerId?: number } = {};
  const fw = kv.get('Firmware Revision');
  if (fw) out.firmware = fw;
  const mfg = kv.get('Manufacturer ID');
  if (mfg && /^\d+$/.test(mfg)) out.manufacturerId = Number(mfg);
  return out;
}

export function parseGuid(stdout: string): string | undefined {
  const m = /System GUID\s*:\s*([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/.exec(stdout);
  return m ? m[1]!.toLowerCase() : undefined;
}

export interface FruStrings {
  manufacturer?: string;
  model?: string;
  serial?: string;
}

/** `fru print 0`: product fields first, board fields as fallback. */
export function parseFruPrint(stdout: string): FruStrings {
  const kv = parseKeyValues(stdout);
  const pick = (...keys: string[]): string | undefined => keys.map((k) => kv.get(k)).find((v) => v !== undefined && v !== '');
  const out: FruStrings = {};
  const manufacturer = pick('Product Manufacturer', 'Board Mfg');
  const model = pick('Product Name', 'Board Product');
  const serial = pick('Product Serial', 'Board Serial');
  if (manufacturer) out.manufacturer = manufacturer;
  if (model) out.model = model;
  if (serial) out.serial = serial;
  return out;
}

const TIMEOUT_RE = /Get Auth Capabilities error|Error issuing Get Channel Authentication|No response from remote controller|timed? ?out/i;
const SUITE_RE = /invalid (authentication|integrity|confidentiality) algorithm|no cipher suite match|Unsupported cipher suite/i;
const AUTH_RE = /RAKP 2 HMAC is invalid|unauthorized name|unauthorized role|RAKP \d message indicates an error|invalid integrity check|Insufficient privilege|Activate Session error/i;
const SESSION_RE = /Unable to establish IPMI v2 \/ RMCP\+ session|Unable to establish LAN session/i;
const UNSUPPORTED_RE = /Invalid command|not supported/i;
/** Lines `-v` adds on every run (IANA registry, VSO/PICMG probing): not evidence of anything. */
const NOISE_RE = /^(Loading IANA|Running Get (VSO|PICMG)|Invalid completion code received|Discovered IPMB|Get PICMG|Acquire IPMB)/;

/** stderr without the noise `-v` adds. */
export function cleanStderr(stderr: string): string {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !NOISE_RE.test(l))
    .join('\n');
}

/**
 * Maps a failed ipmitool run (run with -v, so RAKP failures are named) to a
 * catalogue error. Only ipmitool's own text is quoted: it never contains the
 * password, which travels in the environment.
 */
export function mapFailure(what: string, stderr: string, stdout: string): FleetError {
  const err = cleanStderr(stderr);
  const text = `${err}\n${stdout}`;
  const quoted = (err.split('\n').filter((l) => !/^Error: Unable to establish/.test(l)).join('; ') || err || stdout.trim() || 'no error text').slice(0, 300);
  const msg = `ipmitool ${what} failed: ${quoted}`;
  if (AUTH_RE.test(text)) return new FleetError('bmc.auth_failed', msg);
  if (TIMEOUT_RE.test(text)) return new FleetError('bmc.timeout', msg);
  if (SUITE_RE.test(text)) return new FleetError('bmc.unsupported', msg);
  if (SESSION_RE.test(text)) return new FleetError('bmc.auth_failed', msg);
  if (UNSUPPORTED_RE.test(text)) return new FleetError('bmc.unsupported', msg);
  return new FleetError('bmc.command_failed', msg);
}
