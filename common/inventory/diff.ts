/**
 * diffInventory: what changed in the hardware between two inventories of the
 * same node (`fleet inventory diff NODE`). Pure. Only changes that mean a
 * part was removed, added, swapped or re-flashed are reported; volatile
 * values (link state, addresses, collection time) are not.
 *
 * Unknown sections (a probe failed: `Inventory.unknown`) are never compared:
 * `compareInventories` refuses a partial baseline outright (its zeros would
 * read as parts added), and a section the new report does not know is not a
 * change, only "not compared".
 */
import type { Disk, Inventory, InventoryChange, InventorySection, UnknownSection } from './types.js';
import { isUnknown, unknownNames } from './unknown.js';

const GiB = 1024 ** 3;

function size(bytes: number): string {
  if (bytes >= GiB) return `${+(bytes / GiB).toFixed(1)} GiB`;
  return `${Math.round(bytes / 1024 ** 2)} MiB`;
}

function dimmKey(slot: string, i: number): string {
  return slot !== '' ? slot : `#${i}`;
}

function diskLabel(d: Disk): string {
  return `${d.name}${d.model ? ` ${d.model}` : ''}${d.serial ? ` (serial ${d.serial})` : ''}`;
}

export interface InventoryComparison {
  /** Why the two were not compared (the baseline is partial), or null when they were. */
  refused: string | null;
  /** Sections the new report does not know: not compared (empty when refused). */
  notCompared: UnknownSection[];
  changes: InventoryChange[];
}

/** "baseline is partial (memory, disks unknown): no comparison" */
export function partialBaselineMessage(before: Pick<Inventory, 'unknown'>): string {
  const names = unknownNames(before.unknown);
  return `baseline is partial (${names !== '' ? `${names} unknown` : 'sections unknown'}): no comparison`;
}

/** `before` → `after`, unless `before` is partial: then no changes, and `refused` says why. */
export function compareInventories(before: Inventory, after: Inventory): InventoryComparison {
  if (before.partial || before.unknown.length > 0) return { refused: partialBaselineMessage(before), notCompared: [], changes: [] };
  return { refused: null, notCompared: after.unknown.map((u) => ({ ...u })), changes: diffInventory(before, after) };
}

/** Changes from `a` (before) to `b` (after); a section unknown on either side is skipped. */
export function diffInventory(a: Inventory, b: Inventory): InventoryChange[] {
  const out: InventoryChange[] = [];
  const known = (s: InventorySection): boolean => !isUnknown(a, s) && !isUnknown(b, s);
  // The total comes from the DIMMs when they are known, else from the kernel: two totals compare
  // only when they have the same source.
  const dimmsA = !isUnknown(a, 'dimms') && a.memory.dimms.length > 0;
  const dimmsB = !isUnknown(b, 'dimms') && b.memory.dimms.length > 0;
  const totalsComparable = known('memory') && (known('dimms') || dimmsA === dimmsB);

  // --- memory
  const da = new Map((known('dimms') ? a.memory.dimms : []).map((d, i) => [dimmKey(d.slot, i), d]));
  const db = new Map((known('dimms') ? b.memory.dimms : []).map((d, i) => [dimmKey(d.slot, i), d]));
  for (const [slot, d] of da) {
    const e = db.get(slot);
    if (!e) {
      out.push({ kind: 'dimm-removed', subject: slot, before: d.serial, message: `DIMM ${slot} (${size(d.sizeBytes)}${d.serial ? `, serial ${d.serial}` : ''}) is gone` });
    } else if ((d.serial !== e.serial && (d.serial !== '' || e.serial !== '')) || d.sizeBytes !== e.sizeBytes) {
      out.push({
        kind: 'dimm-replaced',
        subject: slot,
        before: `${size(d.sizeBytes)} ${d.serial}`.trim(),
        after: `${size(e.sizeBytes)} ${e.serial}`.trim(),
        message: `DIMM ${slot} changed: ${size(d.sizeBytes)}${d.serial ? ` serial ${d.serial}` : ''} → ${size(e.sizeBytes)}${e.serial ? ` serial ${e.serial}` : ''}`,
      });
    }
  }
  for (const [slot, e] of db) {
    if (!da.has(slot)) out.push({ kind: 'dimm-added', subject: slot, after: e.serial, message: `DIMM ${slot} (${size(e.sizeBytes)}${e.serial ? `, serial ${e.serial}` : ''}) is new` });
  }
  if (totalsComparable && a.memory.totalBytes !== b.memory.totalBytes) {
    out.push({
      kind: 'memory-total',
      subject: '',
      before: String(a.memory.totalBytes),
      after: String(b.memory.totalBytes),
      message: `memory total ${size(a.memory.totalBytes)} → ${size(b.memory.totalBytes)}`,
    });
  }

  // --- CPU, BIOS
  if (known('cpus') && (a.cpus.model !== b.cpus.model || a.cpus.sockets !== b.cpus.sockets)) {
    out.push({
      kind: 'cpu-model',
      subject: '',
      before: `${a.cpus.sockets}x ${a.cpus.model}`,
      after: `${b.cpus.sockets}x ${b.cpus.model}`,
      message: `CPUs ${a.cpus.sockets}x ${a.cpus.model} → ${b.cpus.sockets}x ${b.cpus.model}`,
    });
  }
  if (known('bios') && a.bios.version !== b.bios.version) {
    out.push({ kind: 'bios-version', subject: '', before: a.bios.version, after: b.bios.version, message: `BIOS version ${a.bios.version || '?'} → ${b.bios.version || '?'}` });
  }

  // --- GPUs
  const [gpusA, gpusB] = known('gpus') ? [a.gpus, b.gpus] : [[], []];
  if (gpusA.length !== gpusB.length) {
    out.push({ kind: 'gpu-count', subject: '', before: String(gpusA.length), after: String(gpusB.length), message: `GPU count ${gpusA.length} → ${gpusB.length}` });
  }
  const ga = new Map(gpusA.map((g) => [g.pciBus, g]));
  const gb = new Map(gpusB.map((g) => [g.pciBus, g]));
  for (const [bus, g] of ga) {
    const h = gb.get(bus);
    if (!h) out.push({ kind: 'gpu-removed', subject: bus, before: g.model, message: `GPU ${bus} (${g.model}${g.serial ? `, serial ${g.serial}` : ''}) is gone` });
    else if (g.model !== h.model) out.push({ kind: 'gpu-model', subject: bus, before: g.model, after: h.model, message: `GPU ${bus} model ${g.model} → ${h.model}` });
  }
  for (const [bus, h] of gb) {
    if (!ga.has(bus)) out.push({ kind: 'gpu-added', subject: bus, after: h.model, message: `GPU ${bus} (${h.model}) is new` });
  }

  // --- disks: matched by serial first (names can move), then by name
  const [disksA, disksB] = known('disks') ? [a.disks, b.disks] : [[], []];
  const left = disksA.filter((d) => !(d.serial !== '' && disksB.some((e) => e.serial === d.serial)));
  const right = disksB.filter((e) => !(e.serial !== '' && disksA.some((d) => d.serial === e.serial)));
  const rightByName = new Map(right.map((e) => [e.name, e]));
  for (const d of left) {
    const e = rightByName.get(d.name);
    if (e) {
      rightByName.delete(d.name);
      if (d.serial !== e.serial || d.model !== e.model || d.sizeBytes !== e.sizeBytes) {
        out.push({ kind: 'disk-replaced', subject: d.name, before: d.serial, after: e.serial, message: `disk ${diskLabel(d)} replaced by ${diskLabel(e)}` });
      }
    } else {
      out.push({ kind: 'disk-removed', subject: d.name, before: d.serial, message: `disk ${diskLabel(d)} is gone` });
    }
  }
  for (const e of rightByName.values()) out.push({ kind: 'disk-added', subject: e.name, after: e.serial, message: `disk ${diskLabel(e)} is new` });

  // --- NICs
  const na = new Map((known('nics') ? a.nics : []).map((x) => [x.name, x]));
  const nb = new Map((known('nics') ? b.nics : []).map((x) => [x.name, x]));
  for (const [name, x] of na) {
    const y = nb.get(name);
    if (!y) out.push({ kind: 'nic-removed', subject: name, before: x.mac, message: `NIC ${name} (${x.mac}) is gone` });
    else if (x.mac !== y.mac) out.push({ kind: 'nic-mac', subject: name, before: x.mac, after: y.mac, message: `NIC ${name} MAC ${x.mac} → ${y.mac}` });
  }
  for (const [name, y] of nb) if (!na.has(name)) out.push({ kind: 'nic-added', subject: name, after: y.mac, message: `NIC ${name} (${y.mac}) is new` });

  // --- InfiniBand
  const ia = new Map((known('infiniband') ? a.infiniband : []).map((h) => [h.name, h]));
  const ib = new Map((known('infiniband') ? b.infiniband : []).map((h) => [h.name, h]));
  for (const [name, h] of ia) {
    const k = ib.get(name);
    if (!k) out.push({ kind: 'infiniband-removed', subject: name, before: h.nodeGuid, message: `HCA ${name} (${h.nodeGuid}) is gone` });
    else if (h.fwVersion !== k.fwVersion) out.push({ kind: 'infiniband-firmware', subject: name, before: h.fwVersion, after: k.fwVersion, message: `HCA ${name} firmware ${h.fwVersion} → ${k.fwVersion}` });
  }
  for (const [name, k] of ib) if (!ia.has(name)) out.push({ kind: 'infiniband-added', subject: name, after: k.nodeGuid, message: `HCA ${name} (${k.nodeGuid}) is new` });

  return out;
}

/** What the server writes into a report's agent.inventory event about the hardware. */
export interface ReportAssessment {
  partial: boolean;
  /** The sections this report does not know. */
  unknown: InventorySection[];
  /** Whether the hardware changed since the previous report: null when there is none, or it is partial (`refused`). */
  hardwareChanged: boolean | null;
  /** The kinds of the changes found (empty when not compared). */
  changes: InventoryChange['kind'][];
  /** Why it was not compared with the previous report (that one is partial). */
  refused?: string;
}

/** Pure: the new report `after` against the node's previous one (null for its first). */
export function assessReport(before: Inventory | null, after: Inventory): ReportAssessment {
  const base = { partial: after.partial || after.unknown.length > 0, unknown: after.unknown.map((u) => u.section) };
  if (before === null) return { ...base, hardwareChanged: null, changes: [] };
  const cmp = compareInventories(before, after);
  if (cmp.refused !== null) return { ...base, hardwareChanged: null, changes: [], refused: cmp.refused };
  return { ...base, hardwareChanged: cmp.changes.length > 0, changes: cmp.changes.map((c) => c.kind) };
}
