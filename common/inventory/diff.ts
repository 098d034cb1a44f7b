/**
 * diffInventory: what changed in the hardware between two inventories of the
 * same node (`fleet inventory diff NODE`). Pure. Only changes that mean a
 * part was removed, added, swapped or re-flashed are reported; volatile
 * values (link state, addresses, collection time) are not.
 */
import type { Disk, Inventory, InventoryChange } from './types.js';

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

/** Changes from `a` (before) to `b` (after). */
export function diffInventory(a: Inventory, b: Inventory): InventoryChange[] {
  const out: InventoryChange[] = [];

  // --- memory
  const da = new Map(a.memory.dimms.map((d, i) => [dimmKey(d.slot, i), d]));
  const db = new Map(b.memory.dimms.map((d, i) => [dimmKey(d.slot, i), d]));
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
  if (a.memory.totalBytes !== b.memory.totalBytes) {
    out.push({
      kind: 'memory-total',
      subject: '',
      before: String(a.memory.totalBytes),
      after: String(b.memory.totalBytes),
      message: `memory total ${size(a.memory.totalBytes)} → ${size(b.memory.totalBytes)}`,
    });
  }

  // --- CPU, BIOS
  if (a.cpus.model !== b.cpus.model || a.cpus.sockets !== b.cpus.sockets) {
    out.push({
      kind: 'cpu-model',
      subject: '',
      before: `${a.cpus.sockets}x ${a.cpus.model}`,
      after: `${b.cpus.sockets}x ${b.cpus.model}`,
      message: `CPUs ${a.cpus.sockets}x ${a.cpus.model} → ${b.cpus.sockets}x ${b.cpus.model}`,
    });
  }
  if (a.bios.version !== b.bios.version) {
    out.push({ kind: 'bios-version', subject: '', before: a.bios.version, after: b.bios.version, message: `BIOS version ${a.bios.version || '?'} → ${b.bios.version || '?'}` });
  }

  // --- GPUs
  if (a.gpus.length !== b.gpus.length) {
    out.push({ kind: 'gpu-count', subject: '', before: String(a.gpus.length), after: String(b.gpus.length), message: `GPU count ${a.gpus.length} → ${b.gpus.length}` });
  }
  const ga = new Map(a.gpus.map((g) => [g.pciBus, g]));
  const gb = new Map(b.gpus.map((g) => [g.pciBus, g]));
  for (const [bus, g] of ga) {
    const h = gb.get(bus);
    if (!h) out.push({ kind: 'gpu-removed', subject: bus, before: g.model, message: `GPU ${bus} (${g.model}${g.serial ? `, serial ${g.serial}` : ''}) is gone` });
    else if (g.model !== h.model) out.push({ kind: 'gpu-model', subject: bus, before: g.model, after: h.model, message: `GPU ${bus} model ${g.model} → ${h.model}` });
  }
  for (const [bus, h] of gb) {
    if (!ga.has(bus)) out.push({ kind: 'gpu-added', subject: bus, after: h.model, message: `GPU ${bus} (${h.model}) is new` });
  }

  // --- disks: matched by serial first (names can move), then by name
  const left = a.disks.filter((d) => !(d.serial !== '' && b.disks.some((e) => e.serial === d.serial)));
  const right = b.disks.filter((e) => !(e.serial !== '' && a.disks.some((d) => d.serial === e.serial)));
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
  const na = new Map(a.nics.map((x) => [x.name, x]));
  const nb = new Map(b.nics.map((x) => [x.name, x]));
  for (const [name, x] of na) {
    const y = nb.get(name);
    if (!y) out.push({ kind: 'nic-removed', subject: name, before: x.mac, message: `NIC ${name} (${x.mac}) is gone` });
    else if (x.mac !== y.mac) out.push({ kind: 'nic-mac', subject: name, before: x.mac, after: y.mac, message: `NIC ${name} MAC ${x.mac} → ${y.mac}` });
  }
  for (const [name, y] of nb) if (!na.has(name)) out.push({ kind: 'nic-added', subject: name, after: y.mac, message: `NIC ${name} (${y.mac}) is new` });

  // --- InfiniBand
  const ia = new Map(a.infiniband.map((h) => [h.name, h]));
  const ib = new Map(b.infiniband.map((h) => [h.name, h]));
  for (const [name, h] of ia) {
    const k = ib.get(name);
    if (!k) out.push({ kind: 'infiniband-removed', subject: name, before: h.nodeGuid, message: `HCA ${name} (${h.nodeGuid}) is gone` });
    else if (h.fwVersion !== k.fwVersion) out.push({ kind: 'infiniband-firmware', subject: name, before: h.fwVersion, after: k.fwVersion, message: `HCA ${name} firmware ${h.fwVersion} → ${k.fwVersion}` });
  }
  for (const [name, k] of ib) if (!ia.has(name)) out.push({ kind: 'infiniband-added', subject: name, after: k.nodeGuid, message: `HCA ${name} (${k.nodeGuid}) is new` });

  return out;
}
