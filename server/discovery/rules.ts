/**
 * Does a discovery rule match a machine? Pure: `matchRule(rule, facts)`.
 *
 * Each criterion the rule gives is checked against the machine's facts, in
 * a fixed order (serial, MAC prefix, manufacturer, model, NICs, disks, BMC
 * subnet, LLDP switch, LLDP port):
 *   - a criterion on a known fact that fails: `no`, with the first such reason;
 *   - otherwise, criteria on facts the machine lacks: `unknown`, naming them
 *     ("serial unknown: no inspection report yet");
 *   - otherwise: `match` (with the serial's position, for a rule with serials).
 * A rule without criteria matches every machine.
 */
import { meets, ruleText, type ExpectRule } from '../../common/inventory/expect.js';
import { cidrContains, isIPv4, parseCidr, type Cidr } from '../../common/patterns.js';
import type { DiscoveryRule, MachineFacts, MatchResult } from './types.js';

/** A case-insensitive glob (`*` any run, `?` one character; nothing else is special); exact when it has neither. */
export function globRegExp(pattern: string): RegExp {
  const body = [...pattern.trim()].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`, 'is');
}

/** Serials compare without surrounding spaces, case-insensitively (SMBIOS pads and vendors vary the case). */
export function serialKey(serial: string): string {
  return serial.trim().toUpperCase();
}

interface Compiled {
  serialIndex?: Map<string, number>;
  manufacturer?: RegExp;
  model?: RegExp;
  bmcSubnet?: Cidr;
  lldpSwitch?: RegExp;
  lldpPort?: RegExp;
}

/** Compiled criteria per rule object (rules are data; compiling once keeps a plan of many machines linear). */
const compiled = new WeakMap<DiscoveryRule, Compiled>();

function compile(rule: DiscoveryRule): Compiled {
  const hit = compiled.get(rule);
  if (hit) return hit;
  const m = rule.match;
  const c: Compiled = {};
  if (m.serials) {
    c.serialIndex = new Map();
    // The first position of a serial counts (the parser refuses a serial listed twice).
    m.serials.forEach((s, i) => {
      const k = serialKey(s);
      if (!c.serialIndex!.has(k)) c.serialIndex!.set(k, i);
    });
  }
  if (m.manufacturer !== undefined) c.manufacturer = globRegExp(m.manufacturer);
  if (m.model !== undefined) c.model = globRegExp(m.model);
  if (m.bmcSubnet !== undefined) {
    const cidr = parseCidr(m.bmcSubnet);
    if (typeof cidr !== 'string') c.bmcSubnet = cidr;
  }
  if (m.lldp?.switch !== undefined) c.lldpSwitch = globRegExp(m.lldp.switch);
  if (m.lldp?.port !== undefined) c.lldpPort = globRegExp(m.lldp.port);
  compiled.set(rule, c);
  return c;
}

const countText = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/** "a rule's serials_file po-4711.txt" or "the rule's serial list". */
function serialSource(rule: DiscoveryRule): string {
  return rule.match.serialsFile !== undefined ? `serials_file ${rule.match.serialsFile}` : 'serial list';
}

export function matchRule(rule: DiscoveryRule, facts: MachineFacts): MatchResult {
  const m = rule.match;
  const c = compile(rule);
  const missing: string[] = [];
  let serialIndex: number | undefined;

  const check = (known: boolean, what: string, ok: () => boolean, why: () => string): string | undefined => {
    if (!known) {
      missing.push(what);
      return undefined;
    }
    return ok() ? undefined : why();
  };
  const count = (got: number | undefined, rule: ExpectRule | undefined, what: string): string | undefined =>
    rule === undefined ? undefined : check(got !== undefined, `${what} count`, () => meets(got!, rule), () => `${countText(got!, what)}, not ${ruleText(rule)}`);
  const glob = (got: string | undefined, re: RegExp | undefined, pattern: string | undefined, what: string): string | undefined =>
    re === undefined ? undefined : check(got !== undefined, what, () => re.test(got!.trim()), () => `${what} ${JSON.stringify(got)} does not match ${JSON.stringify(pattern)}`);

  const reasons = [
    c.serialIndex === undefined
      ? undefined
      : check(
          facts.serial !== undefined,
          'serial',
          () => (serialIndex = c.serialIndex!.get(serialKey(facts.serial!))) !== undefined,
          () => `serial ${facts.serial} is not in the rule's ${serialSource(rule)}`,
        ),
    m.macPrefixes === undefined
      ? undefined
      : (() => {
          const macs = [facts.mac, ...(facts.macs ?? [])].map((x) => x.toLowerCase());
          return macs.some((mac) => m.macPrefixes!.some((p) => mac.startsWith(p)))
            ? undefined
            : `MAC ${facts.mac}${macs.length > 1 ? ` (and its ${macs.length - 1} other NICs)` : ''} does not start with ${m.macPrefixes.join(' or ')}`;
        })(),
    glob(facts.manufacturer, c.manufacturer, m.manufacturer, 'manufacturer'),
    glob(facts.model, c.model, m.model, 'model'),
    count(facts.nicCount, m.nics, 'NIC'),
    count(facts.diskCount, m.disks, 'disk'),
    m.bmcSubnet === undefined
      ? undefined
      : check(
          facts.bmc?.ip !== undefined && isIPv4(facts.bmc.ip),
          'BMC address',
          () => c.bmcSubnet !== undefined && cidrContains(c.bmcSubnet, facts.bmc!.ip!),
          () => `BMC address ${facts.bmc!.ip} is outside ${m.bmcSubnet}`,
        ),
    glob(facts.lldp?.switch, c.lldpSwitch, m.lldp?.switch, 'LLDP switch'),
    glob(facts.lldp?.port, c.lldpPort, m.lldp?.port, 'LLDP port'),
  ];
  const no = reasons.find((r) => r !== undefined);
  if (no !== undefined) return { kind: 'no', reason: no };
  if (missing.length > 0) {
    const why = facts.inspectedAt === undefined ? 'no inspection report yet' : 'the inspection report does not say';
    return { kind: 'unknown', missing, reason: `${missing.join(', ')} unknown: ${why}` };
  }
  return serialIndex === undefined ? { kind: 'match' } : { kind: 'match', serialIndex };
}
