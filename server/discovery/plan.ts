/**
 * The naming plan for discovered machines. Pure:
 * `planDiscovery(rules, machines, taken) → DiscoveryPlan`.
 *
 * 1. Machines are taken in a stable order: first seen, then MAC. Rejected
 *    machines are set aside (listed as rejected, planned never).
 * 2. Each machine gets the first rule whose result is not `no`. A `match`
 *    plans it (later rules that match too are named in `alsoMatched`); an
 *    `unknown` makes it wait (a rule that comes first needs a fact the
 *    machine lacks: no later rule may take it before that is known).
 * 3. A rule's names, IPs and BMC addresses are slots in lockstep: the k-th
 *    slot is (names[k], ips[k], bmc[k]). A slot is free when no existing
 *    node holds its name, address or BMC endpoint and this plan has not
 *    given it yet. Taken slots are skipped whole (a name never gets another
 *    slot's address).
 *    - rules with serials: the machine's serial at position k gets slot k
 *      (rack order); when that slot is taken, the machine is refused (its
 *      name is not moved to another serial's slot). Done first.
 *    - other rules: the next free slot, machine by machine in order. None
 *      left: refused, "names exhausted".
 *    Stable when re-run: machines accepted since (now nodes, holding their
 *    slots) leave the others the same slots, because the order of machines
 *    and of slots is the same.
 * 4. A serial seen on two machines refuses both when they match a rule by
 *    serial: which one is the machine in that rack position is not known.
 *    (Boards with a placeholder serial, "To be filled by O.E.M.", are not
 *    refused by rules that do not match on serials.)
 */
import { serialKey, matchRule } from './rules.js';
import type { Candidate, DiscoveryPlan, DiscoveryRule, MatchResult, PlannedMachine, Taken, UnplannedMachine } from './types.js';

/** The plan's order of machines: first seen, then MAC. */
export function byFirstSeen(a: Candidate, b: Candidate): number {
  if (a.firstSeen !== b.firstSeen) return a.firstSeen < b.firstSeen ? -1 : 1;
  return a.facts.mac < b.facts.mac ? -1 : a.facts.mac > b.facts.mac ? 1 : 0;
}

/** 1st, 2nd, 3rd, 4th, … 11th, 12th, 13th, 21st. */
function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  const suffix = teen ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

interface Matched {
  c: Candidate;
  rule: DiscoveryRule;
  result: Extract<MatchResult, { kind: 'match' }>;
  alsoMatched: string[];
}

/**
 * Why slot k of a rule cannot be given, or undefined when it is free. `byName`:
 * its name is held (by a node: accepted before; or planned here), the normal
 * way a slot is used; otherwise an address of the slot is someone else's.
 */
type SlotCheck = (rule: DiscoveryRule, k: number) => { why: string; byName: boolean } | undefined;

export function planDiscovery(rules: readonly DiscoveryRule[], machines: readonly Candidate[], taken: Taken): DiscoveryPlan {
  const ordered = [...machines].sort(byFirstSeen);
  const plan: DiscoveryPlan = { planned: [], unplanned: [], rejected: [] };
  const live = ordered.filter((c) => {
    if (!c.rejected) return true;
    plan.rejected.push({ mac: c.facts.mac, rejectedAt: c.rejected.at, rejectedBy: c.rejected.by });
    return false;
  });

  // Serials seen on more than one (unrejected) machine.
  const serialMacs = new Map<string, string[]>();
  for (const c of live) {
    if (c.facts.serial === undefined) continue;
    const k = serialKey(c.facts.serial);
    const list = serialMacs.get(k);
    if (list) list.push(c.facts.mac);
    else serialMacs.set(k, [c.facts.mac]);
  }

  const outcome = new Map<string, PlannedMachine | UnplannedMachine>();
  const matched: Matched[] = [];
  for (const c of live) {
    const results = rules.map((r) => matchRule(r, c.facts));
    const first = results.findIndex((r) => r.kind !== 'no');
    const mac = c.facts.mac;
    if (first < 0) {
      const why = rules.length === 0 ? 'fleet.yaml has no discovery rules' : rules.map((r, i) => `${r.name}: ${(results[i] as { reason: string }).reason}`).join('; ');
      outcome.set(mac, { mac, status: 'unmatched', reason: `no rule matches (${why})`, rule: null });
      continue;
    }
    const rule = rules[first]!;
    const result = results[first]!;
    const later = rules.filter((_, i) => i > first && results[i]!.kind === 'match').map((r) => r.name);
    if (result.kind === 'unknown') {
      const then = later.length ? `; rule ${later[0]} matches, but ${rule.name} comes first` : '';
      outcome.set(mac, { mac, status: 'waiting', reason: `rule ${rule.name}: ${result.reason}${then}`, rule: rule.name });
      continue;
    }
    if (result.kind !== 'match') continue; // not reached: first is the first result that is not `no`
    if (result.serialIndex !== undefined && c.facts.serial !== undefined) {
      const same = serialMacs.get(serialKey(c.facts.serial))!;
      if (same.length > 1) {
        const others = same.filter((m) => m !== mac);
        outcome.set(mac, {
          mac,
          status: 'refused',
          reason: `rule ${rule.name}: serial ${c.facts.serial} is seen on ${same.length} machines (also ${others.join(', ')}): none is named until the others are rejected`,
          rule: rule.name,
        });
        continue;
      }
    }
    matched.push({ c, rule, result, alsoMatched: later });
  }

  // Slots given by this plan, and the checks of one slot.
  const usedNames = new Map<string, string>();
  const usedIps = new Map<string, string>();
  const usedBmcs = new Map<string, string>();
  const endpoint = (rule: DiscoveryRule, k: number): string | undefined => (rule.bmc ? `${rule.bmc.addresses[k]}:${rule.bmc.port}` : undefined);
  const slotTaken: SlotCheck = (rule, k) => {
    const name = rule.names[k]!;
    if (taken.names.has(name)) return { why: `${name} is an existing node`, byName: true };
    if (usedNames.has(name)) return { why: `${name} is planned for ${usedNames.get(name)}`, byName: true };
    const ip = rule.ips?.[k];
    if (ip !== undefined) {
      const holder = taken.ips.get(ip);
      if (holder !== undefined) return { why: `its address ${ip} belongs to ${holder}`, byName: false };
      if (usedIps.has(ip)) return { why: `its address ${ip} is planned for ${usedIps.get(ip)}`, byName: false };
    }
    const ep = endpoint(rule, k);
    if (ep !== undefined) {
      const holder = taken.bmcs.get(ep);
      if (holder !== undefined) return { why: `its BMC ${ep} belongs to ${holder}`, byName: false };
      if (usedBmcs.has(ep)) return { why: `its BMC ${ep} is planned for ${usedBmcs.get(ep)}`, byName: false };
    }
    return undefined;
  };
  const give = (m: Matched, k: number, notes: string[]): PlannedMachine => {
    const { rule, c } = m;
    const mac = c.facts.mac;
    const name = rule.names[k]!;
    const ip = rule.ips?.[k] ?? null;
    usedNames.set(name, mac);
    if (ip !== null) usedIps.set(ip, mac);
    const ep = endpoint(rule, k);
    if (ep !== undefined) usedBmcs.set(ep, mac);
    return {
      mac,
      rule: rule.name,
      alsoMatched: m.alsoMatched,
      name,
      ip,
      bmc: rule.bmc ? { address: rule.bmc.addresses[k]!, port: rule.bmc.port, protocol: rule.bmc.protocol, credentials: rule.bmc.credentials, ...(rule.bmc.setup ? { setup: rule.bmc.setup } : {}) } : null,
      profile: rule.profile,
      onAccept: rule.onAccept,
      serial: c.facts.serial ?? null,
      notes,
    };
  };

  // Rack order first: a serial's slot is its position in the rule's list.
  const positional = matched.filter((m) => m.result.serialIndex !== undefined);
  positional.sort((a, b) => rules.indexOf(a.rule) - rules.indexOf(b.rule) || a.result.serialIndex! - b.result.serialIndex!);
  for (const m of positional) {
    const k = m.result.serialIndex!;
    const mac = m.c.facts.mac;
    const where = `the ${ordinal(k + 1)} serial of ${m.rule.match.serialsFile ?? 'its serial list'}`;
    if (k >= m.rule.names.length) {
      outcome.set(mac, { mac, status: 'refused', reason: `rule ${m.rule.name}: serial ${m.c.facts.serial} is ${where}, but ${m.rule.namesText} has only ${m.rule.names.length} names`, rule: m.rule.name });
      continue;
    }
    const held = slotTaken(m.rule, k);
    if (held !== undefined) {
      outcome.set(mac, { mac, status: 'refused', reason: `rule ${m.rule.name}: ${m.rule.names[k]}, the name for serial ${m.c.facts.serial} (${where}), cannot be given: ${held.why}`, rule: m.rule.name });
      continue;
    }
    outcome.set(mac, give(m, k, []));
  }

  // Then the next free slot, machine by machine. Slots before a rule's cursor are all given or taken.
  const cursor = new Map<DiscoveryRule, number>();
  for (const m of matched) {
    if (m.result.serialIndex !== undefined) continue;
    const { rule } = m;
    const mac = m.c.facts.mac;
    const notes: string[] = [];
    let k = cursor.get(rule) ?? 0;
    for (; k < rule.names.length; k++) {
      const held = slotTaken(rule, k);
      if (held === undefined) break;
      // A held name is the normal case (accepted before, or planned here); an address held by another is worth saying.
      if (!held.byName) notes.push(`skipped ${rule.names[k]}: ${held.why}`);
    }
    cursor.set(rule, k + 1);
    if (k >= rule.names.length) {
      outcome.set(mac, { mac, status: 'refused', reason: `rule ${rule.name}: names exhausted (${rule.namesText} all taken)`, rule: rule.name });
      continue;
    }
    outcome.set(mac, give(m, k, notes));
  }

  for (const c of live) {
    const o = outcome.get(c.facts.mac);
    if (!o) continue;
    if ('name' in o) plan.planned.push(o);
    else plan.unplanned.push(o);
  }
  return plan;
}

/** The machines of `macs` that the plan gives a name (policy auto accepts these when they are seen). */
export function autoAcceptable(plan: DiscoveryPlan, macs: ReadonlySet<string>): PlannedMachine[] {
  return plan.planned.filter((p) => macs.has(p.mac));
}
