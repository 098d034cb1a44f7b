/**
 * Vendor quirks of Redfish BMCs, kept as data (ADR 0003).
 *
 * A quirk is a flag that changes what the driver sends, never a code path per
 * vendor. The built-in table matches on the ComputerSystem's Manufacturer and
 * Model; a node may override any flag (fleet.yaml / per-node options), and the
 * override always wins over the table.
 */

export interface RedfishQuirks {
  /**
   * The BMC ignores BootSourceOverrideEnabled=Once. The driver sends
   * Continuous instead and reports a follow-up: the override must be reset to
   * None/Disabled once the next boot has started (see BootFollowUp).
   */
  onceIgnored: boolean;
  /** The BMC wants BootSourceOverrideMode in every Boot PATCH: echo the current value when the caller asked for 'auto'. */
  modeRequired: boolean;
  /** The BMC rejects BootSourceOverrideMode=UEFI: never send it (the BMC boots in its configured mode). */
  uefiRejected: boolean;
  /** Power changes land after the 204 to ComputerSystem.Reset: poll PowerState until it matches or the settle timeout passes. */
  powerSettles: boolean;
}

export const NO_QUIRKS: Readonly<RedfishQuirks> = Object.freeze({
  onceIgnored: false,
  modeRequired: false,
  uefiRejected: false,
  powerSettles: false,
});

/** A string matches case-insensitively as a substring; a RegExp is tested as is. */
export type QuirkMatcher = string | RegExp;

export interface QuirkRule {
  /** Short name shown in results and logs. */
  name: string;
  match: { manufacturer?: QuirkMatcher; model?: QuirkMatcher };
  quirks: Partial<RedfishQuirks>;
  /** Where the behaviour was observed (issue, lab note). */
  source?: string;
}

/**
 * Built-in rules. Add a rule only for behaviour seen on real hardware or
 * reported by a maintainer, with its source; everything else belongs in a
 * per-node override until it is confirmed.
 */
export const DEFAULT_QUIRK_TABLE: readonly QuirkRule[] = Object.freeze([
  {
    name: 'supermicro-mode-required',
    match: { manufacturer: 'supermicro' },
    quirks: { modeRequired: true },
    source: 'DMTF/Redfishtool#106: Supermicro reverts BootSourceOverrideMode to its default unless it is sent with every override',
  },
]);

function matches(m: QuirkMatcher | undefined, value: string | undefined): boolean {
  if (m === undefined) return true;
  if (value === undefined) return false;
  if (typeof m === 'string') return value.toLowerCase().includes(m.toLowerCase());
  return m.test(value);
}

export interface ResolvedQuirks {
  quirks: RedfishQuirks;
  /** Names of the table rules that matched, in table order. */
  rules: string[];
}

/**
 * Pure: the quirks for one system. Later matching rules override earlier
 * ones flag by flag; the per-node override wins over every rule.
 */
export function resolveQuirks(
  system: { manufacturer?: string; model?: string },
  table: readonly QuirkRule[] = DEFAULT_QUIRK_TABLE,
  override?: Partial<RedfishQuirks>,
): ResolvedQuirks {
  const quirks: RedfishQuirks = { ...NO_QUIRKS };
  const rules: string[] = [];
  for (const rule of table) {
    if (rule.match.manufacturer === undefined && rule.match.model === undefined) continue;
    if (matches(rule.match.manufacturer, system.manufacturer) && matches(rule.match.model, system.model)) {
      rules.push(rule.name);
      assignDefined(quirks, rule.quirks);
    }
  }
  if (override) assignDefined(quirks, override);
  return { quirks, rules };
}

function assignDefined(target: RedfishQuirks, src: Partial<RedfishQuirks>): void {
  for (const k of Object.keys(NO_QUIRKS) as (keyof RedfishQuirks)[]) {
    const v = src[k];
    if (typeof v === 'boolean') target[k] = v;
  }
}
