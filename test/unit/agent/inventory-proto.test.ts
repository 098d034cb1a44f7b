/**
 * common/inventory/proto.ts: the agent's Inventory ↔ the wire message, on the
 * recorded fixtures (NVIDIA GPUs, InfiniBand, a plain VM): field by field,
 * through real protobuf bytes and through the JSON form the server stores.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { toInventory, type Inventory, type RawInventory } from '../../../agent/inventory/index.js';
import { MAX_UNKNOWN_REASON, inventoryFromProto, inventoryFromStored, inventoryToProto, inventoryToStored } from '../../../common/inventory/proto.js';
import { Inventory as PbInventory } from '../../../proto/gen/fleet/v1/agent.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/inventory');
const load = (name: string): Inventory => toInventory(JSON.parse(fs.readFileSync(path.join(FIX, name), 'utf8')) as RawInventory);
const MiB = 1024 * 1024;

/** What survives the wire: everything but system.virtual. */
const wireView = (inv: Inventory): Inventory => ({ ...inv, system: { ...inv.system, virtual: false } });

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

describe('Inventory → proto → Inventory on the fixtures', () => {
  for (const name of ['gpu-dgx.json', 'ib-node.json', 'debian-vm.json']) {
    it(`${name}: lossless through protobuf bytes and through the stored JSON form (but system.virtual)`, () => {
      const inv = deepFreeze(load(name));
      const pb = inventoryToProto(inv); // must not mutate a frozen input
      const bytes = PbInventory.encode(pb).finish();
      expect(bytes.length).toBeGreaterThan(100);
      const back = inventoryFromProto(PbInventory.decode(bytes));
      expect(back).toEqual(wireView(inv));
      expect(inventoryFromStored(JSON.parse(JSON.stringify(inventoryToStored(inv))))).toEqual(wireView(inv));
      // and the other way: a decoded message maps back to the same message
      expect(PbInventory.toJSON(inventoryToProto(back))).toEqual(PbInventory.toJSON(pb));
    });
  }

  it('gpu-dgx.json: GPUs as bytes, driver, bus, serial, UUID; CPUs; DIMMs; BIOS', () => {
    const inv = load('gpu-dgx.json');
    const pb = inventoryToProto(inv);
    expect(pb.gpus).toHaveLength(8);
    expect(pb.gpus[0]).toEqual({
      vendor: 'NVIDIA',
      model: 'NVIDIA H100 80GB HBM3',
      memoryBytes: 81559 * MiB,
      driverVersion: '535.129.03',
      pciBus: '0000:1b:00.0',
      serial: '1654922011231',
      uuid: 'GPU-3b8d2f4e-8c1a-6f0e-2b7d-91c4a5e6f701',
    });
    expect(pb.cpu).toEqual({ manufacturer: 'Intel', model: 'Xeon® Platinum 8480C', sockets: 2, cores: 112, threads: 224, speedMhz: 2000 });
    expect(pb.memory?.dimms).toHaveLength(16);
    expect(pb.memory?.dimms[0]).toEqual({ slot: 'CPU0_DIMM_A1', sizeBytes: 64 * 1024 * MiB, type: 'DDR5', speedMts: 4800, serial: 'S0018A1C00', manufacturer: 'Samsung', partNumber: 'M321R8GA0BB0-CQKZJ' });
    expect(pb.memory?.totalBytes).toBe(inv.memory.totalBytes);
    expect(pb.bios).toEqual({ vendor: inv.bios.vendor, version: inv.bios.version, releaseDate: inv.bios.date, uefi: inv.bios.uefi });
    expect(pb.bios?.releaseDate).not.toBe('');
    expect(pb.collectedAtMs).toBe(Date.parse(inv.collectedAt));
    expect(pb.os).toEqual({ name: inv.os.distro, version: inv.os.release, kernel: inv.os.kernel, arch: inv.os.arch, hostname: inv.os.hostname });
  });

  it('ib-node.json: HCAs with firmware, GUID, PCI bus and ports (state, rate, link layer, physical state, LID)', () => {
    const inv = load('ib-node.json');
    expect(inv.infiniband.length).toBe(2);
    const pb = inventoryToProto(inv);
    const h = inv.infiniband[0]!;
    expect(pb.infiniband[0]).toMatchObject({ name: h.name, model: h.model, firmware: h.fwVersion, nodeGuid: h.nodeGuid, pciBus: h.pciBus });
    expect(h.fwVersion).not.toBe('');
    const p = h.ports[0]!;
    expect(pb.infiniband[0]!.ports[0]).toEqual({ number: p.port, state: p.state, rate: p.rate, linkLayer: p.linkLayer, portGuid: '', lid: p.lid, physState: p.physState });
    expect(p.state).toBe('ACTIVE');
    expect(p.physState).not.toBe('');
    // NICs: the link flag has another name on the wire
    const nic = inv.nics[0]!;
    expect(pb.nics[0]).toEqual({ name: nic.name, mac: nic.mac, speedMbps: nic.speedMbps, driver: nic.driver, linkUp: nic.link, addresses: nic.addresses });
    const disk = inv.disks[0]!;
    expect(pb.disks[0]).toEqual(disk);
  });
});

describe('edge cases', () => {
  const base = load('debian-vm.json');

  it('a GPU without serial or UUID stays without them; an absent value on the wire is ""', () => {
    const inv: Inventory = { ...base, gpus: [{ vendor: 'NVIDIA', model: 'NVIDIA [10de:2330]', memoryMiB: 0, driver: '', pciBus: '0000:3b:00.0' }] };
    const pb = inventoryToProto(inv);
    expect(pb.gpus[0]).toMatchObject({ serial: '', uuid: '', memoryBytes: 0 });
    const back = inventoryFromProto(pb);
    expect(back.gpus[0]).toEqual(inv.gpus[0]);
    expect('serial' in back.gpus[0]!).toBe(false);
  });

  it('negative, fractional or non-finite numbers go on the wire as unsigned integers; an unparsable time as 0', () => {
    const inv: Inventory = {
      ...base,
      collectedAt: 'yesterday',
      cpus: { ...base.cpus, sockets: -1, cores: 2.6, threads: Number.NaN, speedMhz: Number.POSITIVE_INFINITY },
    };
    const pb = inventoryToProto(inv);
    expect(pb.collectedAtMs).toBe(0);
    expect(pb.cpu).toMatchObject({ sockets: 0, cores: 3, threads: 0, speedMhz: 0 });
    expect(inventoryFromProto(pb).collectedAt).toBe('');
    // encodes without throwing
    expect(PbInventory.decode(PbInventory.encode(pb).finish()).cpu?.cores).toBe(3);
  });

  it('an empty or foreign stored report reads as an empty inventory, never throws', () => {
    const empty = inventoryFromStored({});
    expect(empty.system).toEqual({ manufacturer: '', model: '', serial: '', uuid: '', sku: '', virtual: false });
    expect(empty.memory).toEqual({ totalBytes: 0, dimms: [] });
    expect(empty.cpus.sockets).toBe(0);
    expect(empty.collectedAt).toBe('');
    expect(inventoryFromStored(null).disks).toEqual([]);
    const old = inventoryFromStored({ collectedAtMs: '1714557600000', system: { model: 'X' }, gpus: [{ model: 'G', memoryBytes: String(2 * MiB) }] });
    expect(old.collectedAt).toBe('2024-05-01T10:00:00.000Z');
    expect(old.system.model).toBe('X');
    expect(old.gpus[0]).toMatchObject({ model: 'G', memoryMiB: 2 });
  });
});

describe('unknown sections on the wire', () => {
  const base = load('debian-vm.json');
  const partial: Inventory = {
    ...base,
    memory: { totalBytes: 0, dimms: [] },
    disks: [],
    unknown: [
      { section: 'memory', reason: 'mem: timed out after 10000 ms' },
      { section: 'disks', reason: 'sys block: EIO; diskLayout: timed out after 15000 ms' },
    ],
    partial: true,
  };

  it('a partial report keeps its unknown sections and reasons through protobuf bytes and the stored JSON', () => {
    const pb = inventoryToProto(deepFreeze(structuredClone(partial)));
    expect(pb.completeness).toEqual({ partial: true, unknown: partial.unknown });
    const back = inventoryFromProto(PbInventory.decode(PbInventory.encode(pb).finish()));
    expect(back).toEqual(wireView(partial));
    expect(inventoryFromStored(JSON.parse(JSON.stringify(inventoryToStored(partial))))).toEqual(wireView(partial));
  });

  it('a complete report carries no completeness message (its stored form is what it was before the field)', () => {
    expect(base.partial).toBe(false);
    const pb = inventoryToProto(base);
    expect(pb.completeness).toBeUndefined();
    expect(inventoryToStored(base)).not.toHaveProperty('completeness');
  });

  it('an older agent that sent no CPU and no memory reads as partial, those sections unknown', () => {
    const old = inventoryFromStored({ collectedAtMs: '1714557600000', system: { serial: 'S1' }, warnings: ['cpu: timed out after 1500 ms', 'mem: timed out after 1500 ms'] });
    expect(old.unknown).toEqual([
      { section: 'cpus', reason: 'no CPU reported' },
      { section: 'memory', reason: 'no memory size reported' },
    ]);
    expect(old.partial).toBe(true);
  });

  it('a section name this side does not know is dropped, the report stays partial; a long reason is cut', () => {
    const pb = inventoryToProto(base);
    pb.completeness = { partial: true, unknown: [{ section: 'tpm', reason: 'tpm: no device' }, { section: 'os', reason: 'x'.repeat(5000) }] };
    const back = inventoryFromProto(pb);
    expect(back.partial).toBe(true);
    expect(back.unknown.map((u) => u.section)).toEqual(['os']);
    expect(back.unknown[0]!.reason).toHaveLength(MAX_UNKNOWN_REASON);
  });
});
