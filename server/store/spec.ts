/**
 * Pure helpers over NodeSpec shared by the store and `fleet apply`: one
 * normal form and one field-level diff, so that the plan and the events
 * written by the store agree.
 */
import type { NodeBmcSpec, NodeSpec } from '../model.js';
import type { NodeChanges, NodeRecord } from './types.js';

/** The normal form compared and stored: MACs lower-case, no undefined ip, BMC defaults (auth auto) left out. */
export function normalizeNodeSpec(spec: NodeSpec): NodeSpec {
  const out: NodeSpec = {
    name: spec.name,
    profile: spec.profile,
    macs: spec.macs.map((m) => m.toLowerCase()),
    pet: spec.pet === true,
  };
  if (spec.ip !== undefined && spec.ip !== null && spec.ip !== '') out.ip = spec.ip;
  if (spec.bmc) {
    out.bmc = {
      address: spec.bmc.address,
      port: spec.bmc.port,
      protocol: spec.bmc.protocol,
      credentials: spec.bmc.credentials,
    };
    if (spec.bmc.system !== undefined && spec.bmc.system !== null) out.bmc.system = spec.bmc.system;
    // auto is the default: stored and compared as absent.
    if (spec.bmc.auth !== undefined && spec.bmc.auth !== null && spec.bmc.auth !== 'auto') out.bmc.auth = spec.bmc.auth;
    if (spec.bmc.powerWait !== undefined && spec.bmc.powerWait !== null) out.bmc.powerWait = spec.bmc.powerWait;
  }
  return out;
}

export function nodeSpecOf(record: NodeRecord): NodeSpec {
  const spec: NodeSpec = { name: record.name, profile: record.profile, macs: [...record.macs], pet: record.pet };
  if (record.ip !== null) spec.ip = record.ip;
  if (record.bmc) spec.bmc = { ...record.bmc };
  return spec;
}

export function sameBmc(a: NodeBmcSpec | null | undefined, b: NodeBmcSpec | null | undefined): boolean {
  if (!a || !b) return !a && !b;
  return (
    a.address === b.address &&
    a.port === b.port &&
    a.protocol === b.protocol &&
    a.credentials === b.credentials &&
    (a.system ?? null) === (b.system ?? null) &&
    (a.auth ?? 'auto') === (b.auth ?? 'auto') &&
    (a.powerWait ?? null) === (b.powerWait ?? null)
  );
}

/** Field-level changes from `from` to `to` (both normalized here); empty object: identical. */
export function diffNodeSpec(fromSpec: NodeSpec, toSpec: NodeSpec): NodeChanges {
  const a = normalizeNodeSpec(fromSpec);
  const b = normalizeNodeSpec(toSpec);
  const changes: NodeChanges = {};
  if (a.profile !== b.profile) changes.profile = { from: a.profile, to: b.profile };
  if ((a.ip ?? null) !== (b.ip ?? null)) changes.ip = { from: a.ip ?? null, to: b.ip ?? null };
  if (a.macs.length !== b.macs.length || a.macs.some((m, i) => m !== b.macs[i])) changes.macs = { from: a.macs, to: b.macs };
  if (!sameBmc(a.bmc, b.bmc)) changes.bmc = { from: a.bmc ?? null, to: b.bmc ?? null };
  if (a.pet !== b.pet) changes.pet = { from: a.pet, to: b.pet };
  return changes;
}

export function hasChanges(changes: NodeChanges): boolean {
  return Object.keys(changes).length > 0;
}

/** The bmc_endpoints columns of a node's BMC spec (normalised: defaults as NULL). */
export function bmcColumns(bmc: NodeBmcSpec): {
  address: string;
  port: number;
  protocol: string;
  credentials: string;
  system: string | null;
  auth: string | null;
  power_wait: number | null;
} {
  return {
    address: bmc.address,
    port: bmc.port,
    protocol: bmc.protocol,
    credentials: bmc.credentials,
    system: bmc.system ?? null,
    auth: bmc.auth === undefined || bmc.auth === 'auto' ? null : bmc.auth,
    power_wait: bmc.powerWait ?? null,
  };
}
