/**
 * Unknown sections of an inventory: the pure rules shared by the agent (which
 * knows which probes failed) and the server (which reads reports, some from
 * agents that did not say). A section is unknown when the probes behind it
 * failed, or when what it holds cannot describe a real machine (no CPU, no
 * memory): such a report is `partial` and its zeros are never shown as data.
 */
import { INVENTORY_SECTIONS, type Inventory, type InventorySection, type UnknownSection } from './types.js';

export function isInventorySection(s: string): s is InventorySection {
  return (INVENTORY_SECTIONS as readonly string[]).includes(s);
}

/** One entry per section (reasons of the same section joined with "; "), in INVENTORY_SECTIONS order. */
export function mergeUnknown(...lists: UnknownSection[][]): UnknownSection[] {
  const by = new Map<InventorySection, string[]>();
  for (const u of lists.flat()) {
    const rs = by.get(u.section) ?? [];
    if (!rs.includes(u.reason)) rs.push(u.reason);
    by.set(u.section, rs);
  }
  return INVENTORY_SECTIONS.filter((s) => by.has(s)).map((s) => ({ section: s, reason: by.get(s)!.join('; ') }));
}

/** Sections whose values no machine can have: no CPU at all, no memory. */
export function implausibleSections(inv: Pick<Inventory, 'cpus' | 'memory'>): UnknownSection[] {
  const out: UnknownSection[] = [];
  if (inv.cpus.threads <= 0 && inv.cpus.cores <= 0 && inv.cpus.model === '') out.push({ section: 'cpus', reason: 'no CPU reported' });
  if (inv.memory.totalBytes <= 0) out.push({ section: 'memory', reason: 'no memory size reported' });
  return out;
}

/** `known` plus the implausible sections it does not already hold (their probe's reason says more than "none reported"). */
export function addImplausible(known: UnknownSection[], inv: Pick<Inventory, 'cpus' | 'memory'>): UnknownSection[] {
  const have = new Set(known.map((u) => u.section));
  return mergeUnknown(known, implausibleSections(inv).filter((u) => !have.has(u.section)));
}

export function isUnknown(inv: Pick<Inventory, 'unknown'>, section: InventorySection): boolean {
  return inv.unknown.some((u) => u.section === section);
}

/** "memory, disks" — the unknown sections' names. */
export function unknownNames(list: UnknownSection[]): string {
  return list.map((u) => u.section).join(', ');
}
