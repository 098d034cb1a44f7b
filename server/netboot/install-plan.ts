/**
 * What the fleet boot environment is told and what it reports back, for an
 * image install (docs/bootenv-protocol.md). Pure: no I/O.
 *
 *   renderInstallPlan(...)   the plan JSON of GET /bootenv/:node/plan: the image and its
 *                            rootfs artefact, storage, network identity, root password,
 *                            ssh keys and the agent's enrolment material
 *   parseProgress(body)      the body of POST .../install-progress, checked (phase enum,
 *                            bounded numbers); a FleetError request.invalid otherwise
 *   acceptProgress(...)      the per-node rate rule: a phase change always, else at most
 *                            one report per PROGRESS_MIN_INTERVAL_MS
 *
 * Every value that goes into the plan is checked as the kickstart renderer
 * checks it (render/values.ts); a bad value is an error naming the node.
 */
import type { DisklessMounts } from '../diskless/spec.js';
import { FleetError } from '../../common/errors.js';
import type { ClusterInfo, ProfileSpec, ProvisioningNetwork } from '../model.js';
import type { ImageManifest } from '../images/manifest.js';
import { imageArtefactUrl } from './render/urls.js';
import {
  checkCryptHash,
  checkDomain,
  checkFingerprint,
  checkMac,
  checkNodeName,
  checkRenderUrl,
  checkServerUrl,
  checkSshKey,
  checkToken,
  normalizeMac,
  Problems,
  show,
} from './render/values.js';

export interface InstallPlan {
  node: string;
  hostname: string;
  image: {
    name: string;
    digest: string;
    rootfs: { url: string; sha256: string; size: number };
    /** The kernel inside the rootfs (boot/vmlinuz-VERSION), or null when the image does not say. */
    kernel: string | null;
  };
  storage: { disk: string; fs: 'ext4' | 'xfs'; swapMiB: number };
  network: { mac: string; ip: string; prefix: number; gateway: string | null; dns: string[]; domain: string };
  rootPasswordHash: string | null;
  sshKeys: string[];
  agent: { enrolToken: string; caFingerprint: string; server: string };
}

export interface InstallPlanInput {
  node: { name: string; ip: string | null; mac: string };
  profile: ProfileSpec;
  /** The image the profile names, as the image store holds it. */
  image: ImageManifest & { name: string };
  cluster: Pick<ClusterInfo, 'domain'>;
  network: Pick<ProvisioningNetwork, 'subnet' | 'gateway' | 'dns'>;
  /** The boot face's base URL (the image is fetched from it). */
  server: string;
  agent: { enrolToken: string; caFingerprint: string; server: string };
  /** A diskless node: what it mounts over NFS (server/diskless). */
  diskless?: DisklessMounts;
}

/** The storage every image install uses today (profiles do not declare storage for images yet). */
export const DEFAULT_IMAGE_STORAGE = { disk: 'auto', fs: 'ext4', swapMiB: 0 } as const;

const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX64 = /^[0-9a-f]{64}$/;

function checkIpv4(ip: string): string | undefined {
  return IPV4.test(ip) ? undefined : `${show(ip)} is not an IPv4 address`;
}

/** The prefix length of a CIDR (10.10.0.0/16 -> 16), or undefined. */
export function cidrPrefix(cidr: string): number | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  if (!m || !IPV4.test(m[1]!)) return undefined;
  const n = Number(m[2]);
  return n >= 0 && n <= 32 ? n : undefined;
}

/** The enrolment endpoint: host:port or a URL. */
function checkEndpoint(s: string): string | undefined {
  if (/^https?:\/\//.test(s)) return checkServerUrl(s);
  const m = /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
  if (!m || checkDomain(m[1]!) !== undefined || Number(m[2]) < 1 || Number(m[2]) > 65535) return `${show(s)} must be a URL or host:port`;
  return undefined;
}

/** The node's install plan (see the module comment); a FleetError config.invalid lists every bad value. */
export function renderInstallPlan(input: InstallPlanInput): InstallPlan {
  const { node, profile, image, cluster, network } = input;
  const p = new Problems(`install plan for ${show(node.name)}`);
  p.check('node name', node.name, checkNodeName);
  p.check('MAC', node.mac, checkMac);
  if (node.ip === null) p.add(`node ${node.name} has no IP address in fleet.yaml (the boot environment configures it statically)`);
  else p.check('node IP', node.ip, checkIpv4);
  const domainOk = p.check('cluster domain', cluster.domain, checkDomain);
  const hostname = `${node.name}.${cluster.domain}`;
  if (domainOk && hostname.length > 253) p.add(`host name ${show(hostname)} is longer than 253 characters`);
  const prefix = cidrPrefix(network.subnet);
  if (prefix === undefined) p.add(`provisioning subnet ${show(network.subnet)} is not an IPv4 CIDR`);
  if (network.gateway !== undefined) p.check('gateway', network.gateway, checkIpv4);
  network.dns.forEach((d, i) => p.check(`DNS server ${i + 1}`, d, checkIpv4));
  if (profile.rootPasswordHash !== undefined) p.check(`profile ${profile.name} root password hash`, profile.rootPasswordHash, checkCryptHash);
  profile.sshKeys.forEach((k, i) => p.check(`profile ${profile.name} ssh key ${i + 1}`, k, checkSshKey));

  const hex = image.digest.replace(/^sha256:/, '');
  if (!HEX64.test(hex)) p.add(`image ${show(image.name)}: digest ${show(image.digest)} is not sha256:<64 hex>`);
  const rootfs = image.artefacts.rootfs;
  if (!HEX64.test(rootfs.sha256)) p.add(`image ${show(image.name)}: rootfs sha256 ${show(rootfs.sha256)} is not 64 hex digits`);
  if (!Number.isSafeInteger(rootfs.size) || rootfs.size <= 0) p.add(`image ${show(image.name)}: rootfs size ${String(rootfs.size)} is not a positive integer`);
  const url = imageArtefactUrl(input.server, hex, rootfs.file);
  p.check('server URL', input.server, checkServerUrl);
  p.check('rootfs URL', url, checkRenderUrl);

  p.check('enrolment token', input.agent.enrolToken, checkToken);
  p.check('CA fingerprint', input.agent.caFingerprint.replace(/^sha256:/i, ''), checkFingerprint);
  p.check('enrolment server', input.agent.server, checkEndpoint);
  p.throwIfAny();

  const kernel = image.kernelVersion !== null ? `boot/vmlinuz-${image.kernelVersion}` : null;
  return {
    node: node.name,
    hostname,
    image: { name: image.name, digest: `sha256:${hex}`, rootfs: { url, sha256: rootfs.sha256, size: rootfs.size }, kernel },
    storage: { ...DEFAULT_IMAGE_STORAGE },
    network: {
      mac: normalizeMac(node.mac)!,
      ip: node.ip!,
      prefix: prefix!,
      gateway: network.gateway ?? null,
      dns: [...network.dns],
      domain: cluster.domain,
    },
    rootPasswordHash: profile.rootPasswordHash ?? null,
    sshKeys: [...profile.sshKeys],
    agent: {
      enrolToken: input.agent.enrolToken,
      caFingerprint: `sha256:${input.agent.caFingerprint.replace(/^sha256:/i, '').replace(/:/g, '').toLowerCase()}`,
      server: input.agent.server,
    },
  };
}

// --- install progress

export const PROGRESS_PHASES = ['partition', 'write', 'bootloader', 'identity', 'agent'] as const;
export type ProgressPhase = (typeof PROGRESS_PHASES)[number];

export interface InstallProgress {
  phase: ProgressPhase;
  bytes?: number;
  total?: number;
  percent?: number;
}

/** Largest byte count accepted (1 PiB: far above any disk image). */
export const MAX_PROGRESS_BYTES = 2 ** 50;
/** A node's reports closer together than this (same phase) are dropped. */
export const PROGRESS_MIN_INTERVAL_MS = 1000;

/** The install-progress body, checked; FleetError request.invalid naming the first problem. */
export function parseProgress(body: unknown): InstallProgress {
  const bad = (why: string): never => {
    throw new FleetError('request.invalid', `install-progress: ${why}`);
  };
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return bad('the body must be a JSON object {"phase": ..., "bytes": N, "total": N, "percent": N}');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) if (!['phase', 'bytes', 'total', 'percent'].includes(k)) bad(`unknown field ${show(k)}`);
  if (typeof b.phase !== 'string' || !(PROGRESS_PHASES as readonly string[]).includes(b.phase)) return bad(`phase must be one of ${PROGRESS_PHASES.join(', ')}`);
  const out: InstallProgress = { phase: b.phase as ProgressPhase };
  for (const k of ['bytes', 'total'] as const) {
    const v = b[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_PROGRESS_BYTES) bad(`${k} must be an integer between 0 and ${MAX_PROGRESS_BYTES}`);
    out[k] = v as number;
  }
  if (b.percent !== undefined) {
    const v = b.percent;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100) bad('percent must be a number between 0 and 100');
    out.percent = Math.round((v as number) * 10) / 10;
  }
  if (out.bytes !== undefined && out.total !== undefined && out.bytes > out.total) bad(`bytes ${out.bytes} is more than total ${out.total}`);
  return out;
}

/** Whether a node's report is kept: its first, a phase change, or PROGRESS_MIN_INTERVAL_MS after the last kept one. */
export function acceptProgress(last: { phase: string; at: number } | undefined, next: InstallProgress, nowMs: number): boolean {
  if (!last) return true;
  if (last.phase !== next.phase) return true;
  return nowMs - last.at >= PROGRESS_MIN_INTERVAL_MS || nowMs < last.at;
}

// --- stateless plan

/** What stage 1 of a stateless boot is told (docs/stateless.md, server/bootenv/assets/stateless.sh). */
export interface StatelessPlan {
  node: string;
  hostname: string;
  image: { name: string; digest: string; squashfs: { url: string; sha256: string; size: number } };
  /** stateless: the image into RAM; diskless: the image's tree over NFS (docs/diskless.md). */
  install: 'stateless' | 'diskless';
  /** overlay: the squashfs read-only under a tmpfs; tmpfs: the tree copied into RAM. Diskless: overlay (the NFS tree under a tmpfs). */
  root: 'overlay' | 'tmpfs';
  /** diskless: the NFS server, the image's tree (read-only) and the node's /var (read-write), NFSv4 paths. */
  nfs?: DisklessMounts;
  /** diskless: a local disk for /tmp, formatted ext4 (label fleet-scratch) when blank; null: /tmp in RAM. */
  scratch?: string | null;
  network: InstallPlan['network'];
  rootPasswordHash: string | null;
  sshKeys: string[];
  agent: InstallPlan['agent'];
}

/**
 * A stateless node's plan: the same identity, network and agent material as
 * an image install's, checked by the same rules (renderInstallPlan, given
 * the image's squashfs where an install writes its rootfs), with the
 * squashfs and the profile's root instead of a disk layout.
 */
export function renderStatelessPlan(input: InstallPlanInput): StatelessPlan {
  const { image } = input;
  const plan = renderInstallPlan({ ...input, image: { ...image, artefacts: { ...image.artefacts, rootfs: image.artefacts.squashfs } } });
  const diskless = input.profile.os.install === 'diskless';
  if (diskless && !input.diskless) throw new FleetError('conflict', `${input.node.name} boots diskless, but nothing says what it mounts`);
  return {
    node: plan.node,
    hostname: plan.hostname,
    image: { name: plan.image.name, digest: plan.image.digest, squashfs: plan.image.rootfs },
    install: diskless ? 'diskless' : 'stateless',
    root: diskless ? 'overlay' : (input.profile.os.root ?? 'overlay'),
    ...(diskless ? { nfs: input.diskless!, scratch: input.profile.os.scratch ?? null } : {}),
    network: plan.network,
    rootPasswordHash: plan.rootPasswordHash,
    sshKeys: plan.sshKeys,
    agent: plan.agent,
  };
}
