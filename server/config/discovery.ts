/**
 * fleet.yaml `discovery:` → DiscoverySpec (server/discovery/types.ts). Pure,
 * part of parseConfig: every problem is reported with its path
 * (`discovery.rules[1].names`) and position, like the rest of the file.
 *
 *   discovery:
 *     policy: manual                       # or auto
 *     rules:
 *       - name: gpu-po4711
 *         match: {serials_file: po-4711.txt, manufacturer: "Supermicro*"}
 *         names: valkyrie[03-42]
 *         profile: compute_gpu
 *         ip: 10.10.3.[3-42]                # lockstep with names
 *         bmc: {address: 10.10.103.[3-42], credentials: bmc-admin}
 *         on_accept: install
 *
 * A serials_file's text comes in `files` (path as written → text), read by
 * the loader next to fleet.yaml; the parser reads nothing itself.
 */
import { isNode, isScalar, isSeq, parseDocument, type Node } from 'yaml';
import { parseExpectRule, type ExpectRule } from '../../common/inventory/expect.js';
import type { BmcProtocol } from '../../common/model.js';
import { SERIAL_NUMBER, checkFilePath, checkNodeName, cidrContains, intToIp, ipToInt, isIPv4, OBJECT_NAME, parseCidr, show, type Cidr } from '../../common/patterns.js';
import { AFTER_INSPECT, DISCOVERY_POLICIES, MAX_LLDP_WAIT_SECONDS, ON_ACCEPT, type AfterInspect, type DiscoveryPolicy, type DiscoveryRule, type DiscoverySpec, type OnAccept, type RuleBmcPlan, type RuleMatch } from '../discovery/types.js';
import { parseSerialsFile } from '../discovery/serials.js';
import { serialKey } from '../discovery/rules.js';
import { NodeSet, expandPattern } from '../nodeset/index.js';
import { closest, type Fields, type Reader } from './reader.js';

/** What the rest of fleet.yaml tells the discovery section's checks. */
export interface DiscoveryContext {
  declaredProfiles: ReadonlySet<string>;
  declaredCredentials: ReadonlySet<string>;
  subnet?: Cidr;
  subnetText?: string;
  unknown?: { start: string; end: string };
  bmcSubnet?: Cidr;
  bmcSubnetText?: string;
  managementAddress?: string;
  managementName?: string;
  gateway?: string;
  bmcProtocols: readonly BmcProtocol[];
  defaultBmcPort: Readonly<Record<BmcProtocol, number>>;
  /** serials_file texts by path as written; absent: none was read. */
  files?: Readonly<Record<string, string>>;
  /** Most names (and addresses) one rule may expand to. */
  limit: number;
}

const RULE_KEYS = ['name', 'match', 'names', 'profile', 'ip', 'bmc', 'on_accept'];
const MATCH_KEYS = ['serial', 'serials_file', 'mac_prefix', 'manufacturer', 'model', 'nics', 'disks', 'bmc_subnet', 'lldp'];
/** A manufacturer, model, switch or port pattern: printable, one line. */
const TEXT_PATTERN = /^[\x20-\x7e]{1,128}$/;
const MAC_PREFIX = /^[0-9a-f]{2}(?:[:-][0-9a-f]{2}){0,5}$/i;

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Addresses of one value: `10.10.3.[3-42]`, `10.10.3.3-10.10.3.42`, or one address; an error string otherwise. */
export function expandAddresses(text: string, limit: number): string[] | string {
  const s = text.trim();
  if (s.includes('[')) {
    let out: string[];
    try {
      out = expandPattern(s, { limit });
    } catch (e) {
      return `bad range ${show(s)}: ${errorMessage(e)}`;
    }
    const bad = out.find((a) => !isIPv4(a));
    return bad === undefined ? out : `${show(bad)} is not a valid IPv4 address`;
  }
  const m = /^([^\s-]+)\s*-\s*([^\s-]+)$/.exec(s);
  if (m) {
    const [a, b] = [m[1]!, m[2]!];
    for (const ip of [a, b]) if (!isIPv4(ip)) return `${show(ip)} is not a valid IPv4 address`;
    const [x, y] = [ipToInt(a), ipToInt(b)];
    if (x > y) return `range ${a}-${b} is reversed: start is after end`;
    if (y - x + 1 > limit) return `range ${a}-${b} has ${y - x + 1} addresses, more than ${limit}`;
    return Array.from({ length: y - x + 1 }, (_, i) => intToIp(x + i));
  }
  return isIPv4(s) ? [s] : `${show(s)} is not a valid IPv4 address, range (10.10.3.3-10.10.3.42) or bracket range (10.10.3.[3-42])`;
}

/** A string or a list of strings; each item with its node, for positions. */
function strings(r: Reader, node: Node | undefined, path: string): { s: string; node: Node; path: string }[] | undefined {
  if (node === undefined) return undefined;
  if (isSeq(node)) {
    const out: { s: string; node: Node; path: string }[] = [];
    for (const it of r.list(node, path) ?? []) {
      const s = r.string(it.node, it.path, node);
      if (s !== undefined) out.push({ s, node: it.node, path: it.path });
    }
    return out;
  }
  const s = r.string(node, path);
  return s === undefined ? undefined : [{ s, node, path }];
}

/** Addresses in lockstep with `k` names: one value (a range) or a list of single addresses. */
function lockstepAddresses(r: Reader, node: Node | undefined, path: string, k: number | undefined, limit: number, what: string): string[] | undefined {
  const items = strings(r, node, path);
  if (!items) return undefined;
  const out: string[] = [];
  for (const it of items) {
    const got = expandAddresses(it.s, limit);
    if (typeof got === 'string') {
      r.error(it.path, it.node, got);
      return undefined;
    }
    if (items.length > 1 && got.length > 1) {
      r.error(it.path, it.node, `a list of ${what}es takes one address per item; write the range as the whole value`);
      return undefined;
    }
    out.push(...got);
  }
  if (out.length > limit) {
    r.error(path, node, `${out.length} ${what}es, more than ${limit}`);
    return undefined;
  }
  const seen = new Set<string>();
  for (const a of out) {
    if (seen.has(a)) {
      r.error(path, node, `${a} is given twice: each name needs its own ${what}`);
      return undefined;
    }
    seen.add(a);
  }
  if (k !== undefined && out.length !== k) {
    r.error(path, node, `nodeset/range length mismatch: names give ${k} node${k === 1 ? '' : 's'}, ${what} gives ${out.length} address${out.length === 1 ? '' : 'es'} (they go in lockstep)`);
    return undefined;
  }
  return out;
}

function count(r: Reader, f: Fields, key: string): ExpectRule | undefined {
  if (!f.has(key)) return undefined;
  const v = f.get(key);
  const rule = parseExpectRule(isScalar(v) ? v.value : undefined);
  if (typeof rule === 'string') {
    r.error(f.p(key), f.where(key), `${key}: ${rule}`);
    return undefined;
  }
  return rule;
}

function textPattern(what: string) {
  return (s: string): string | undefined => (TEXT_PATTERN.test(s) && s.trim() !== '' ? undefined : `${what} ${show(s)} must be printable text on one line, at most 128 characters (globs * and ?)`);
}

function parseMatch(r: Reader, f: Fields, ctx: DiscoveryContext): RuleMatch | undefined {
  if (!f.has('match')) return {};
  const node = f.get('match');
  if (node === undefined) return {}; // `match:` with nothing: every machine, as when absent
  const m = r.fields(node, f.p('match'), MATCH_KEYS, [], f.keyNode('match'));
  if (!m) return undefined;
  const out: RuleMatch = {};
  let ok = true;

  if (m.has('serial') && m.has('serials_file')) {
    r.error(m.p('serials_file'), m.keyNode('serials_file'), "use either 'serial' (a list) or 'serials_file', not both");
    ok = false;
  } else if (m.has('serial')) {
    const items = strings(r, m.get('serial'), m.p('serial'));
    if (!items) ok = false;
    else {
      const seen = new Map<string, string>();
      const serials: string[] = [];
      for (const it of items) {
        if (!SERIAL_NUMBER.test(it.s)) {
          r.error(it.path, it.node, `${show(it.s, 40)} is not a serial number (letters, digits, space and ._:/+-, at most 64)`);
          ok = false;
          continue;
        }
        const k = serialKey(it.s);
        if (seen.has(k)) {
          r.error(it.path, it.node, `serial ${it.s} is already listed at ${seen.get(k)}`);
          ok = false;
          continue;
        }
        seen.set(k, it.path);
        serials.push(it.s.trim());
      }
      if (items.length === 0) {
        r.error(m.p('serial'), m.where('serial'), 'the serial list is empty');
        ok = false;
      }
      out.serials = serials;
    }
  } else if (m.has('serials_file')) {
    const file = m.string('serials_file', checkFilePath);
    if (file === undefined) ok = false;
    else {
      out.serialsFile = file;
      const text = ctx.files?.[file];
      if (text === undefined) {
        r.error(m.p('serials_file'), m.where('serials_file'), `serials_file ${file} was not read (fleet reads it relative to fleet.yaml)`);
        ok = false;
      } else {
        const { serials, problems } = parseSerialsFile(text);
        for (const p of problems.slice(0, 5)) r.error(m.p('serials_file'), m.where('serials_file'), `${file}${p.line ? ` line ${p.line}` : ''}: ${p.message}`);
        if (problems.length > 5) r.error(m.p('serials_file'), m.where('serials_file'), `${file}: ${problems.length - 5} more problems`);
        if (problems.length > 0) ok = false;
        out.serials = serials;
      }
    }
  }

  if (m.has('mac_prefix')) {
    const items = strings(r, m.get('mac_prefix'), m.p('mac_prefix'));
    if (!items || items.length === 0) {
      if (items) r.error(m.p('mac_prefix'), m.where('mac_prefix'), 'the MAC prefix list is empty');
      ok = false;
    } else {
      const prefixes: string[] = [];
      for (const it of items) {
        if (!MAC_PREFIX.test(it.s)) {
          r.error(it.path, it.node, `${show(it.s)} is not a MAC prefix: one to six hex octets, e.g. 0c:c4:7a`);
          ok = false;
        } else prefixes.push(it.s.toLowerCase().replace(/-/g, ':'));
      }
      out.macPrefixes = prefixes;
    }
  }
  for (const key of ['manufacturer', 'model'] as const) {
    if (!m.has(key)) continue;
    const v = m.string(key, textPattern(key));
    if (v === undefined) ok = false;
    else out[key] = v.trim();
  }
  for (const key of ['nics', 'disks'] as const) {
    if (!m.has(key)) continue;
    const rule = count(r, m, key);
    if (rule === undefined) ok = false;
    else out[key] = rule;
  }
  if (m.has('bmc_subnet')) {
    const text = m.string('bmc_subnet');
    const c = text === undefined ? undefined : parseCidr(text);
    if (typeof c === 'string') r.error(m.p('bmc_subnet'), m.where('bmc_subnet'), c);
    if (c === undefined || typeof c === 'string') ok = false;
    else out.bmcSubnet = text!;
  }
  if (m.has('lldp')) {
    const l = r.fields(m.get('lldp'), m.p('lldp'), ['switch', 'port'], [], m.keyNode('lldp'));
    if (!l) ok = false;
    else {
      const sw = l.string('switch', textPattern('LLDP switch'));
      const port = l.string('port', textPattern('LLDP port'));
      if ((l.has('switch') && sw === undefined) || (l.has('port') && port === undefined)) ok = false;
      if (sw === undefined && port === undefined && !l.has('switch') && !l.has('port')) {
        r.error(m.p('lldp'), m.where('lldp'), 'lldp needs switch, port or both');
        ok = false;
      }
      out.lldp = { ...(sw !== undefined ? { switch: sw.trim() } : {}), ...(port !== undefined ? { port: port.trim() } : {}) };
    }
  }
  return ok ? out : undefined;
}

/** Names of a rule: a nodeset of node names, in nodeset order. */
function parseNames(r: Reader, f: Fields, ctx: DiscoveryContext): string[] | undefined {
  const text = f.string('names');
  if (text === undefined) return undefined;
  let names: string[];
  try {
    names = NodeSet.parse(text, { limit: ctx.limit }).expand();
  } catch (e) {
    r.error(f.p('names'), f.get('names'), `bad nodeset ${show(text)}: ${errorMessage(e)}`);
    return undefined;
  }
  if (names.length === 0) {
    r.error(f.p('names'), f.get('names'), `nodeset ${show(text)} names no node`);
    return undefined;
  }
  const bad = names.map(checkNodeName).filter((x): x is string => x !== undefined);
  if (bad.length > 0) {
    r.error(f.p('names'), f.get('names'), bad[0]! + (bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''));
    return undefined;
  }
  if (ctx.managementName !== undefined && names.includes(ctx.managementName)) {
    r.error(f.p('names'), f.get('names'), `${ctx.managementName} is the management node's name (cluster.management_name)`);
    return undefined;
  }
  return names;
}

function parseBmcPlan(r: Reader, f: Fields, k: number | undefined, ctx: DiscoveryContext): RuleBmcPlan | undefined | false {
  if (!f.has('bmc')) return undefined;
  const b = r.fields(f.get('bmc'), f.p('bmc'), ['address', 'port', 'protocol', 'credentials', 'setup', 'password_length'], ['address', 'credentials'], f.keyNode('bmc'));
  if (!b) return false;
  let ok = true;
  const addresses = b.get('address') === undefined ? undefined : lockstepAddresses(r, b.get('address'), b.p('address'), k, ctx.limit, 'BMC address');
  if (b.get('address') !== undefined && addresses === undefined) ok = false;
  for (const a of addresses ?? []) {
    if (ctx.bmcSubnet && !cidrContains(ctx.bmcSubnet, a)) {
      r.error(b.p('address'), b.get('address'), `${a} is outside the BMC network ${ctx.bmcSubnetText}`);
      ok = false;
      break;
    }
    if (inUnknown(ctx, a)) {
      r.error(b.p('address'), b.get('address'), `${a} is inside the unknown range ${ctx.unknown!.start}-${ctx.unknown!.end}, where undiscovered machines get leases`);
      ok = false;
      break;
    }
  }
  let protocol: BmcProtocol = 'ipmi';
  const protoText = b.string('protocol');
  if (protoText !== undefined) {
    if ((ctx.bmcProtocols as readonly string[]).includes(protoText)) protocol = protoText as BmcProtocol;
    else {
      const guess = closest(protoText, ctx.bmcProtocols);
      r.error(b.p('protocol'), b.get('protocol'), `unknown BMC protocol ${show(protoText)}${guess ? ` (did you mean '${guess}'?)` : ''}; expected one of ${ctx.bmcProtocols.join(', ')}`);
      ok = false;
    }
  } else if (b.has('protocol')) ok = false;
  let port = ctx.defaultBmcPort[protocol];
  if (b.has('port')) {
    const p = b.int('port');
    if (p === undefined) ok = false;
    else if (p < 1 || p > 65535) {
      r.error(b.p('port'), b.get('port'), `port ${p} is outside 1-65535`);
      ok = false;
    } else port = p;
  }
  const credentials = b.string('credentials', (s) => (OBJECT_NAME.test(s) ? undefined : `credential set name ${show(s)} is not valid`));
  if (credentials === undefined) ok = false;
  else if (!ctx.declaredCredentials.has(credentials)) {
    const names = [...ctx.declaredCredentials];
    const guess = closest(credentials, names);
    r.error(b.p('credentials'), b.get('credentials'), `unknown credentials ${show(credentials)}${guess ? ` (did you mean '${guess}'?)` : ''}; defined credentials: ${names.join(', ') || 'none'}`);
    ok = false;
  }
  // setup: true — on accept the boot environment configures the BMC in band (address, a fleet account), verified out of band.
  let setup: RuleBmcPlan['setup'];
  if (b.has('setup')) {
    const on = b.bool('setup');
    if (on === undefined) ok = false;
    else if (on) {
      if (protocol === 'redfish') {
        r.error(b.p('setup'), b.get('setup'), 'setup configures the BMC in band over IPMI (KCS): not with protocol redfish');
        ok = false;
      }
      setup = { passwordLength: 20 };
    }
  }
  if (b.has('password_length')) {
    const n = b.int('password_length');
    if (n === undefined) ok = false;
    else if (n !== 16 && n !== 20) {
      r.error(b.p('password_length'), b.get('password_length'), `password_length ${n}: 16 or 20 (IPMI password sizes; 16 for BMCs that authenticate only 16 bytes)`);
      ok = false;
    } else if (!setup) {
      r.error(b.p('password_length'), b.get('password_length'), 'password_length goes with setup: true');
      ok = false;
    } else setup = { passwordLength: n };
  }
  if (!ok || addresses === undefined || credentials === undefined) return false;
  return { addresses, port, protocol, credentials, ...(setup ? { setup } : {}) };
}

function inUnknown(ctx: DiscoveryContext, ip: string): boolean {
  if (!ctx.unknown) return false;
  const n = ipToInt(ip);
  return n >= ipToInt(ctx.unknown.start) && n <= ipToInt(ctx.unknown.end);
}

/** A planned provisioning address: in the subnet, not its network/broadcast address, not in the unknown range, not the management node's or the gateway's. */
function checkPlannedIp(ctx: DiscoveryContext, ip: string): string | undefined {
  if (ctx.subnet) {
    if (!cidrContains(ctx.subnet, ip)) return `${ip} is outside ${ctx.subnetText}`;
    const n = ipToInt(ip);
    if (ctx.subnet.prefix <= 30 && (n === ctx.subnet.first || n === ctx.subnet.last)) return `${ip} is the ${n === ctx.subnet.first ? 'network' : 'broadcast'} address of ${ctx.subnetText}`;
  }
  if (inUnknown(ctx, ip)) return `${ip} is inside the unknown range ${ctx.unknown!.start}-${ctx.unknown!.end}, where undiscovered machines get leases`;
  if (ip === ctx.managementAddress) return `${ip} is the management address`;
  if (ip === ctx.gateway) return `${ip} is the gateway`;
  return undefined;
}

function parseRule(r: Reader, node: Node, path: string, ctx: DiscoveryContext, ruleNames: Map<string, string>): DiscoveryRule | undefined {
  const f = r.fields(node, path, RULE_KEYS, ['name', 'names', 'profile']);
  if (!f) return undefined;
  let ok = true;
  const name = f.string('name', (s) => (OBJECT_NAME.test(s) ? undefined : `rule name ${show(s)} is not valid (letters, digits, '_', '.', '-'; starting with a letter or digit)`));
  if (name !== undefined) {
    const prev = ruleNames.get(name);
    if (prev !== undefined) {
      r.error(f.p('name'), f.get('name'), `rule ${name} is already defined at ${prev}`);
      ok = false;
    } else ruleNames.set(name, path);
  }
  const match = parseMatch(r, f, ctx);
  const names = parseNames(r, f, ctx);
  const k = names?.length;

  const profile = f.string('profile');
  if (profile !== undefined && !ctx.declaredProfiles.has(profile)) {
    const list = [...ctx.declaredProfiles];
    const guess = closest(profile, list);
    r.error(f.p('profile'), f.get('profile'), `unknown profile ${show(profile)}${guess ? ` (did you mean '${guess}'?)` : ''}; defined profiles: ${list.join(', ') || 'none'}`);
    ok = false;
  }

  let ips: string[] | undefined;
  if (f.has('ip')) {
    ips = lockstepAddresses(r, f.get('ip'), f.p('ip'), k, ctx.limit, 'ip');
    if (ips === undefined) ok = false;
    else {
      const bad = ips.map((ip) => checkPlannedIp(ctx, ip)).filter((x): x is string => x !== undefined);
      if (bad.length > 0) {
        r.error(f.p('ip'), f.get('ip'), bad[0]! + (bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''));
        ok = false;
      }
    }
  }
  const bmc = parseBmcPlan(r, f, k, ctx);
  if (bmc === false) ok = false;

  let onAccept: OnAccept = 'inventory-only';
  const onAcceptText = f.string('on_accept', (s) => ((ON_ACCEPT as readonly string[]).includes(s) ? undefined : `on_accept ${show(s)} must be one of ${ON_ACCEPT.join(', ')}`));
  if (onAcceptText !== undefined) onAccept = onAcceptText as OnAccept;
  else if (f.has('on_accept')) ok = false;

  if (match?.serials && k !== undefined && match.serials.length > k) {
    const n = match.serials.length;
    r.error(f.p('names'), f.get('names'), `${n} serials and ${k} names: each serial needs its own name (the serial at position ${k + 1} would get none)`);
    ok = false;
  }
  if (!ok || name === undefined || match === undefined || names === undefined || profile === undefined) return undefined;
  return {
    name,
    match,
    names,
    namesText: f.string('names')!,
    profile,
    ...(ips !== undefined ? { ips } : {}),
    ...(bmc ? { bmc } : {}),
    onAccept,
  };
}

export function parseDiscovery(r: Reader, top: Fields, ctx: DiscoveryContext): DiscoverySpec | undefined {
  if (!top.has('discovery')) return undefined;
  const node = top.get('discovery');
  if (node === undefined) return { policy: 'manual', rules: [] };
  const f = r.fields(node, 'discovery', ['policy', 'inspect', 'after_inspect', 'lldp_wait', 'rules'], [], top.keyNode('discovery'));
  if (!f) return undefined;
  const policy = (f.string('policy', (s) =>
    (DISCOVERY_POLICIES as readonly string[]).includes(s) ? undefined : `policy ${show(s)} must be one of ${DISCOVERY_POLICIES.join(', ')}`,
  ) ?? 'manual') as DiscoveryPolicy;
  const rules: DiscoveryRule[] = [];
  const ruleNames = new Map<string, string>();
  if (f.get('rules') !== undefined) {
    for (const it of r.list(f.get('rules'), f.p('rules')) ?? []) {
      const rule = parseRule(r, it.node, it.path, ctx, ruleNames);
      if (rule) rules.push(rule);
    }
  }
  const inspect = f.bool('inspect');
  const afterInspect = f.string('after_inspect', (s) =>
    (AFTER_INSPECT as readonly string[]).includes(s) ? undefined : `after_inspect ${show(s)} must be one of ${AFTER_INSPECT.join(', ')}`,
  ) as AfterInspect | undefined;
  let lldpWait = f.int('lldp_wait');
  if (lldpWait !== undefined && (lldpWait < 0 || lldpWait > MAX_LLDP_WAIT_SECONDS)) {
    r.error(f.p('lldp_wait'), f.get('lldp_wait'), `lldp_wait ${lldpWait}: seconds in 0..${MAX_LLDP_WAIT_SECONDS} (switches send LLDP every 30 s by default)`);
    lldpWait = undefined;
  }
  return {
    policy,
    ...(inspect !== undefined ? { inspect } : {}),
    ...(afterInspect !== undefined ? { afterInspect } : {}),
    ...(lldpWait !== undefined ? { lldpWaitSeconds: lldpWait } : {}),
    rules,
  };
}

/**
 * The serials files a fleet.yaml text names (discovery.rules[*].match.serials_file),
 * for the loader to read before parseConfig. Lenient: whatever is not plainly
 * a path here is left for parseConfig to report.
 */
export function serialsFilesNamed(text: string): string[] {
  let discovery: unknown;
  try {
    const doc = parseDocument(text, { schema: 'core', merge: false, uniqueKeys: false });
    if (doc.errors.length > 0) return [];
    const node = doc.get('discovery', true);
    discovery = isNode(node) ? node.toJS(doc, { maxAliasCount: 1000 }) : undefined;
  } catch {
    return [];
  }
  const rules = (discovery as { rules?: unknown } | null | undefined)?.rules;
  if (!Array.isArray(rules)) return [];
  const out = new Set<string>();
  for (const rule of rules) {
    const file = (rule as { match?: { serials_file?: unknown } } | null)?.match?.serials_file;
    if (typeof file === 'string' && file !== '') out.add(file);
  }
  return [...out];
}
