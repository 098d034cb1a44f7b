/**
 * Reading a boot report (DESIGN §3, loop breaker layer 4). Pure: turns what
 * the agent saw into facts the lifecycle can act on; it decides nothing.
 */
import type { ReportBootRequest } from '../../proto/gen/fleet/v1/agent.js';
import type { BootAssessment, FirmwareVia } from '../lifecycle/facts.js';

export type { BootAssessment, FirmwareVia } from '../lifecycle/facts.js';

const NETWORK_LABEL = /pxe|ipv[46]|network|\bhttp|iscsi|\bnic\b|\blan\b|ethernet/i;
const DISK_LABEL = /\b(disk|hdd|ssd|nvme|sata|sas|raid|hard ?drive|boot manager|grub|shim|almalinux|rocky|red ?hat|centos|fedora|debian|ubuntu|linux)\b/i;

function classify(label: string): 'network' | 'disk' | 'other' {
  if (NETWORK_LABEL.test(label)) return 'network';
  if (DISK_LABEL.test(label)) return 'disk';
  return 'other';
}

export function assessBoot(r: ReportBootRequest): BootAssessment {
  const notes: string[] = [];
  if (!r.rootOnLocalDisk) notes.push(`root is not on a local disk (${r.rootSource || 'unknown source'}${r.rootFstype ? `, ${r.rootFstype}` : ''})`);
  const efi = r.efi;
  if (!efi || efi.bootCurrent === '') {
    return { rootOnLocalDisk: r.rootOnLocalDisk, firmwareEntry: null, firmwareVia: efi ? 'unknown' : 'legacy', bootNextPending: null, networkFirst: null, notes };
  }
  const labels = new Map(efi.entries.map((e) => [e.id.toUpperCase(), e.label]));
  const current = efi.bootCurrent.toUpperCase();
  const label = labels.get(current);
  const firmwareVia: FirmwareVia = label === undefined ? 'unknown' : classify(label);
  if (firmwareVia === 'network') notes.push(`the firmware booted the network entry ${current} (${label})`);
  const bootNextPending = efi.bootNext !== '' ? efi.bootNext.toUpperCase() : null;
  if (bootNextPending !== null) notes.push(`BootNext ${bootNextPending} is pending: the next boot will use it`);
  let networkFirst: boolean | null = null;
  const kinds = efi.bootOrder.map((id) => {
    const l = labels.get(id.toUpperCase());
    return l === undefined ? 'unknown' : classify(l);
  });
  const firstNet = kinds.indexOf('network');
  const firstDisk = kinds.indexOf('disk');
  if (firstNet !== -1 || firstDisk !== -1) networkFirst = firstNet !== -1 && (firstDisk === -1 || firstNet < firstDisk);
  return {
    rootOnLocalDisk: r.rootOnLocalDisk,
    firmwareEntry: { id: current, label: label ?? '' },
    firmwareVia,
    bootNextPending,
    networkFirst,
    notes,
  };
}
