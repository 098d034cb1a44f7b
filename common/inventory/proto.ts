/**
 * The agent's Inventory ↔ the wire message (proto/fleet/v1/agent.proto
 * Inventory). Pure, both ways, lossless for every inventory toInventory
 * produces except `system.virtual`, which the wire does not carry (false
 * when read back). Conversions:
 *  - GPU memory: MiB on the agent, bytes on the wire (×/÷ 1 MiB);
 *  - collectedAt: ISO-8601 on the agent, Unix ms on the wire (an unparsable
 *    time is 0 on the wire, '' back);
 *  - a GPU serial or UUID that is absent on the agent is '' on the wire;
 *  - InfiniBand port GUIDs exist only on the wire (the agent does not read
 *    them yet): '' out, ignored in.
 *  - unknown sections: by name on the wire (Inventory.completeness, absent
 *    when complete); a name this side does not know
 *    is dropped (partial stays true); a report without CPU or memory reads
 *    as partial with those sections unknown even when the sender (an agent
 *    older than the field) did not say so.
 * The server keeps reports in the message's JSON form (Inventory.toJSON);
 * `inventoryFromStored` reads that back into an Inventory for reports and
 * diffs.
 */
import { Inventory as PbInventory } from '../../proto/gen/fleet/v1/agent.js';
import type { Inventory, UnknownSection } from './types.js';
import { addImplausible, isInventorySection, mergeUnknown } from './unknown.js';

/** Longest reason kept from the wire (a probe's error line). */
export const MAX_UNKNOWN_REASON = 500;

const MiB = 1024 * 1024;

const u32 = (n: number): number => (Number.isFinite(n) && n > 0 ? Math.min(Math.round(n), 0xffffffff) : 0);
const u64 = (n: number): number => (Number.isFinite(n) && n > 0 ? Math.min(Math.round(n), Number.MAX_SAFE_INTEGER) : 0);

function msOf(iso: string): number {
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t : 0;
}

/** Inventory → the wire message. */
export function inventoryToProto(inv: Inventory): PbInventory {
  return {
    collectedAtMs: msOf(inv.collectedAt),
    system: { manufacturer: inv.system.manufacturer, model: inv.system.model, serial: inv.system.serial, uuid: inv.system.uuid, sku: inv.system.sku },
    baseboard: { ...inv.baseboard },
    bios: { vendor: inv.bios.vendor, version: inv.bios.version, releaseDate: inv.bios.date, uefi: inv.bios.uefi },
    cpu: {
      manufacturer: inv.cpus.manufacturer,
      model: inv.cpus.model,
      sockets: u32(inv.cpus.sockets),
      cores: u32(inv.cpus.cores),
      threads: u32(inv.cpus.threads),
      speedMhz: u32(inv.cpus.speedMhz),
    },
    memory: {
      totalBytes: u64(inv.memory.totalBytes),
      dimms: inv.memory.dimms.map((d) => ({
        slot: d.slot,
        sizeBytes: u64(d.sizeBytes),
        type: d.type,
        speedMts: u32(d.speedMTs),
        serial: d.serial,
        manufacturer: d.manufacturer,
        partNumber: d.partNumber,
      })),
    },
    disks: inv.disks.map((d) => ({ name: d.name, model: d.model, serial: d.serial, sizeBytes: u64(d.sizeBytes), type: d.type, rotational: d.rotational, interface: d.interface })),
    nics: inv.nics.map((n) => ({ name: n.name, mac: n.mac, speedMbps: u32(n.speedMbps), driver: n.driver, linkUp: n.link, addresses: [...n.addresses] })),
    gpus: inv.gpus.map((g) => ({
      vendor: g.vendor,
      model: g.model,
      memoryBytes: u64(g.memoryMiB * MiB),
      driverVersion: g.driver,
      pciBus: g.pciBus,
      serial: g.serial ?? '',
      uuid: g.uuid ?? '',
    })),
    infiniband: inv.infiniband.map((h) => ({
      name: h.name,
      model: h.model,
      firmware: h.fwVersion,
      nodeGuid: h.nodeGuid,
      pciBus: h.pciBus,
      ports: h.ports.map((p) => ({ number: u32(p.port), state: p.state, rate: p.rate, linkLayer: p.linkLayer, portGuid: '', lid: u32(p.lid), physState: p.physState })),
    })),
    os: { name: inv.os.distro, version: inv.os.release, kernel: inv.os.kernel, arch: inv.os.arch, hostname: inv.os.hostname },
    warnings: [...inv.warnings],
    // Absent when complete, so a complete report's message is what it was before the field existed.
    completeness:
      inv.partial || inv.unknown.length > 0 ? { unknown: inv.unknown.map((u) => ({ section: u.section, reason: u.reason })), partial: true } : undefined,
  };
}

/** The wire message → Inventory. Absent sub-messages read as empty. */
export function inventoryFromProto(p: PbInventory): Inventory {
  const sys = p.system;
  const bb = p.baseboard;
  const bios = p.bios;
  const cpu = p.cpu;
  const os = p.os;
  const cpus = {
    manufacturer: cpu?.manufacturer ?? '',
    model: cpu?.model ?? '',
    sockets: cpu?.sockets ?? 0,
    cores: cpu?.cores ?? 0,
    threads: cpu?.threads ?? 0,
    speedMhz: cpu?.speedMhz ?? 0,
  };
  const memory = {
    totalBytes: p.memory?.totalBytes ?? 0,
    dimms: (p.memory?.dimms ?? []).map((d) => ({
      slot: d.slot,
      sizeBytes: d.sizeBytes,
      type: d.type,
      speedMTs: d.speedMts,
      serial: d.serial,
      manufacturer: d.manufacturer,
      partNumber: d.partNumber,
    })),
  };
  const said: UnknownSection[] = (p.completeness?.unknown ?? []).flatMap((u) =>
    isInventorySection(u.section) ? [{ section: u.section, reason: u.reason.slice(0, MAX_UNKNOWN_REASON) || 'not reported' }] : [],
  );
  const unknown = addImplausible(mergeUnknown(said), { cpus, memory });
  return {
    collectedAt: p.collectedAtMs > 0 && p.collectedAtMs < 8.64e15 ? new Date(p.collectedAtMs).toISOString() : '',
    system: { manufacturer: sys?.manufacturer ?? '', model: sys?.model ?? '', serial: sys?.serial ?? '', uuid: sys?.uuid ?? '', sku: sys?.sku ?? '', virtual: false },
    baseboard: { manufacturer: bb?.manufacturer ?? '', model: bb?.model ?? '', serial: bb?.serial ?? '', version: bb?.version ?? '' },
    bios: { vendor: bios?.vendor ?? '', version: bios?.version ?? '', date: bios?.releaseDate ?? '', uefi: bios?.uefi ?? false },
    cpus,
    memory,
    disks: p.disks.map((d) => ({ name: d.name, model: d.model, serial: d.serial, sizeBytes: d.sizeBytes, type: d.type, rotational: d.rotational, interface: d.interface })),
    nics: p.nics.map((n) => ({ name: n.name, mac: n.mac, speedMbps: n.speedMbps, driver: n.driver, link: n.linkUp, addresses: [...n.addresses] })),
    gpus: p.gpus.map((g) => ({
      vendor: g.vendor,
      model: g.model,
      memoryMiB: Math.round(g.memoryBytes / MiB),
      driver: g.driverVersion,
      pciBus: g.pciBus,
      ...(g.serial !== '' ? { serial: g.serial } : {}),
      ...(g.uuid !== '' ? { uuid: g.uuid } : {}),
    })),
    infiniband: p.infiniband.map((h) => ({
      name: h.name,
      model: h.model,
      fwVersion: h.firmware,
      nodeGuid: h.nodeGuid,
      pciBus: h.pciBus,
      ports: h.ports.map((x) => ({ port: x.number, state: x.state, rate: x.rate, linkLayer: x.linkLayer, physState: x.physState, lid: x.lid })),
    })),
    os: { distro: os?.name ?? '', release: os?.version ?? '', kernel: os?.kernel ?? '', arch: os?.arch ?? '', hostname: os?.hostname ?? '' },
    warnings: [...p.warnings],
    unknown,
    partial: p.completeness?.partial === true || unknown.length > 0,
  };
}

/** A report as the server stores it (the message's JSON form) → Inventory. Unknown or malformed fields read as empty. */
export function inventoryFromStored(json: unknown): Inventory {
  return inventoryFromProto(PbInventory.fromJSON(json ?? {}));
}

/** Inventory → the JSON form the server stores (what Inventory.toJSON gives after a trip over the wire). */
export function inventoryToStored(inv: Inventory): unknown {
  return PbInventory.toJSON(inventoryToProto(inv));
}
