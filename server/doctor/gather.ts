/**
 * The one I/O shell of `fleet doctor`: reads the facts the pure checks
 * (./checks.ts) judge. It reads files, `ip -j addr`, `ip -j route get`
 * (the kernel's route lookup: no packet is sent to any BMC), statfs and
 * `timedatectl`; it never opens a connection and never resolves a name.
 */
import { ganeshaMissing } from '../diskless/ganesha.js';
import { promises as fs } from 'node:fs';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { findExecutable } from '../../common/executable.js';
import { formatHostPort } from '../../common/listen.js';
import { runProcess, type SpawnResult } from '../../common/spawn.js';
import type { ClusterSpec, ProfileSpec } from '../model.js';
import { currentBootenv } from '../bootenv/build.js';
import { listImages } from '../images/store.js';
import { AGENT_SOURCE_RECORD, agentSourceDigest, bundleBuildReason, sourceRoot } from '../images/build.js';
import { DEFAULT_IPXE_SOURCE, IPXE_BINARIES } from '../netboot/dnsmasq/tftp.js';
import { planListeners } from '../listeners.js';
import { bmcGroups, runChecks, type BmcRouteFacts, type DoctorFacts, type Finding, type HostInterface, type OsTreeFacts } from './checks.js';

/** Where the boot endpoints listen and what nodes are told (serve.ts computes the same). */
export interface BootFacts {
  listenHost: string;
  listenPort: number;
  implicit: boolean;
  advertisedUrl: string;
}

/** The boot endpoints as `fleet server` would plan them from fleet.yaml and its flags (server/listeners.ts). */
export function plannedBoot(spec: ClusterSpec, flags: { listen?: string; bootListen?: string; grpcListen?: string } = {}): BootFacts {
  const plan = planListeners({
    flags,
    config: { listen: spec.server?.listen, bootListen: spec.netboot?.http?.listen, grpcListen: spec.server?.grpcListen },
    managementAddress: spec.cluster.managementAddress,
  });
  const port = plan.boot.port || 8080;
  return { listenHost: plan.boot.host, listenPort: port, implicit: plan.bootImplicit, advertisedUrl: bootUrlFor(plan.advertise.boot, port) };
}

/** The base URL nodes are told for the boot endpoints (iPXE scripts, kickstarts, plans). */
export function bootUrlFor(host: string, port: number): string {
  return `http://${formatHostPort({ host, port })}`;
}

/**
 * The directory of DATA/www a tree URL is served from, when the URL points
 * at fleet's own boot endpoints (/repo/..., /images/... but not the image
 * store's /images/sha256/); null when another server serves it. Pure.
 */
export function localTreeDir(tree: string, advertisedUrl: string, www: string): string | null {
  let t: URL;
  let a: URL;
  try {
    t = new URL(tree);
    a = new URL(advertisedUrl);
  } catch {
    return null;
  }
  if (t.origin !== a.origin) return null;
  const m = /^\/(repo|images)\/(.*)$/.exec(t.pathname);
  if (!m || (m[1] === 'images' && /^sha256(\/|$)/.test(m[2]!))) return null;
  let rest: string;
  try {
    rest = decodeURIComponent(m[2]!);
  } catch {
    return null;
  }
  const parts = rest.split('/').filter(Boolean);
  if (parts.some((p) => p === '..' || p === '.' || p.includes('\0'))) return null;
  return path.join(www, m[1]!, ...parts);
}

/** `ip -j addr` parsed; exported for tests. */
export function parseIpAddr(json: string): HostInterface[] {
  const list = JSON.parse(json) as { ifname?: string; flags?: string[]; operstate?: string; addr_info?: { local?: string }[] }[];
  return list
    .filter((i) => typeof i.ifname === 'string')
    .map((i) => ({
      name: i.ifname!,
      up: (i.flags ?? []).includes('UP'),
      carrier: !(i.flags ?? []).includes('NO-CARRIER'),
      addresses: (i.addr_info ?? []).map((a) => a.local).filter((x): x is string => typeof x === 'string'),
    }));
}

/** `ip -j route get ADDR` answer (or its refusal) as the check wants it; exported for tests. */
export function parseRouteGet(r: Pick<SpawnResult, 'code' | 'stdout' | 'stderr'>): BmcRouteFacts['route'] {
  if (r.code !== 0) return { unreachable: r.stderr.trim().replace(/^RTNETLINK answers:\s*/, '') || `ip exited ${String(r.code)}` };
  const [route] = JSON.parse(r.stdout) as { dev?: string; gateway?: string; type?: string }[];
  if (!route || (route.type && route.type !== 'unicast' && route.type !== 'local')) return { unreachable: route?.type ?? 'no route' };
  return { dev: route.dev ?? '?', ...(route.gateway ? { via: route.gateway } : {}) };
}

export interface GatherOptions {
  spec: ClusterSpec;
  /** Profiles to check (the server passes the store's); default spec.profiles. */
  profiles?: ProfileSpec[];
  dataDir: string;
  boot: BootFacts;
  /** Look up a route per BMC network (default true). */
  bmc?: boolean;
  ipxeSourceDir?: string;
  /** Programs (tests): default found on PATH and the sbin directories. */
  ip?: string | null;
  timedatectl?: string | null;
  dnsmasq?: string | null;
}

async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isFile(), () => false);
}

const run = (file: string, args: string[]): Promise<SpawnResult> => runProcess(file, args, { timeoutMs: 5000, maxOutputBytes: 4 * 1024 * 1024 });
const why = (r: SpawnResult): string => r.error?.code ?? (r.timedOut ? 'timed out' : r.stderr.trim().split('\n')[0] || `exit ${String(r.code)}`);

async function readInterfaces(ip: string | null): Promise<HostInterface[] | null> {
  if (ip) {
    const r = await run(ip, ['-j', 'addr']);
    if (r.code === 0) {
      try {
        return parseIpAddr(r.stdout);
      } catch {
        // fall through to Node's view
      }
    }
  }
  // Without `ip`: Node's view has the addresses but not the up state.
  const ifs = networkInterfaces();
  return Object.entries(ifs).map(([name, addrs]) => ({ name, up: null, carrier: null, addresses: (addrs ?? []).map((a) => a.address) }));
}

async function readClock(timedatectl: string | null): Promise<DoctorFacts['clock']> {
  if (!timedatectl) return { synchronized: null, unknown: 'timedatectl is not installed (no systemd here?)' };
  const r = await run(timedatectl, ['show', '-p', 'NTPSynchronized', '--value']);
  const v = r.stdout.trim();
  if (r.code === 0 && (v === 'yes' || v === 'no')) return { synchronized: v };
  return { synchronized: null, unknown: `timedatectl answered ${v ? `'${v}'` : why(r)}` };
}

async function readDisk(dataDir: string): Promise<DoctorFacts['disk']> {
  let measured = path.resolve(dataDir);
  for (;;) {
    try {
      const s = await fs.statfs(measured);
      return { dataDir, measured, freeBytes: Number(s.bavail) * Number(s.bsize) };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const parent = path.dirname(measured);
      if (code !== 'ENOENT' || parent === measured) return { dataDir, measured, freeBytes: null, unknown: code ?? String(e) };
      measured = parent;
    }
  }
}

/** Gathers every fact; never throws for a missing part (that is what it reports). */
export async function gatherFacts(o: GatherOptions): Promise<DoctorFacts> {
  const spec = o.spec;
  const profiles = o.profiles ?? spec.profiles;
  const dataDir = path.resolve(o.dataDir);
  const www = path.join(dataDir, 'www');
  const ip = o.ip !== undefined ? o.ip : findExecutable('ip');
  const interfaces = await readInterfaces(ip);

  const dhcpSpec = spec.netboot?.dhcp;
  const iface = dhcpSpec?.interface ?? spec.networks.provisioning.interface;
  const dhcp = {
    enabled: dhcpSpec?.enabled === true,
    mode: dhcpSpec?.mode ?? 'authoritative',
    ...(iface ? { interface: iface } : {}),
    managementAddress: spec.cluster.managementAddress,
    provisioningSubnet: spec.networks.provisioning.subnet,
  } as const;

  const sourceDir = o.ipxeSourceDir ?? DEFAULT_IPXE_SOURCE;
  const tftpDir = path.join(dataDir, 'tftp');
  const found: Record<string, boolean> = {};
  for (const name of IPXE_BINARIES) found[name] = (await isFile(path.join(sourceDir, name))) || (await isFile(path.join(tftpDir, name)));

  const osTrees: OsTreeFacts[] = [];
  for (const p of profiles.filter((x) => x.os.install === 'kickstart')) {
    const dir = p.os.tree ? localTreeDir(p.os.tree, o.boot.advertisedUrl, www) : null;
    osTrees.push({
      profile: p.name,
      tree: p.os.tree,
      local: dir ? { dir, kernel: await isFile(path.join(dir, 'images/pxeboot/vmlinuz')), initrd: await isFile(path.join(dir, 'images/pxeboot/initrd.img')) } : null,
    });
  }

  const imageProfiles = profiles.filter((p) => p.os.install !== 'kickstart');
  let store: Map<string, string> | null = null;
  let storeUnknown: string | undefined;
  if (imageProfiles.length) {
    try {
      store = new Map((await listImages(dataDir)).map((m) => [m.name, m.digest]));
    } catch (e) {
      storeUnknown = e instanceof Error ? e.message : String(e);
    }
  }
  const images = imageProfiles.map((p) => ({
    profile: p.name,
    image: p.os.image ?? '',
    digest: store?.get(p.os.image ?? '') ?? null,
    ...(storeUnknown ? { unknown: storeUnknown } : {}),
  }));

  let bootenv: DoctorFacts['bootenv'] = { imageProfiles: imageProfiles.map((p) => p.name), current: null };
  if (imageProfiles.length) {
    try {
      bootenv = { ...bootenv, current: (await currentBootenv(dataDir))?.dir ?? null };
    } catch (e) {
      bootenv = { ...bootenv, unknown: e instanceof Error ? e.message : String(e) };
    }
  }

  const agentDir = path.join(www, 'agent');
  const agent = {
    dir: agentDir,
    files: { 'fleet-agent': await isFile(path.join(agentDir, 'fleet-agent')), 'fleet-agent.service': await isFile(path.join(agentDir, 'fleet-agent.service')) },
    kickstartProfiles: profiles.filter((p) => p.os.install === 'kickstart').map((p) => p.name),
    ...((await agentBundleStale(agentDir)) ? { stale: true } : {}),
  };

  const facts: DoctorFacts = {
    boot: {
      ...o.boot,
      managementAddress: spec.cluster.managementAddress,
      provisioningSubnet: spec.networks.provisioning.subnet,
      localAddresses: interfaces ? interfaces.flatMap((i) => i.addresses) : null,
    },
    dhcp,
    dnsmasqPath: o.dnsmasq !== undefined ? o.dnsmasq : findExecutable('dnsmasq'),
    ipxe: { sourceDir, tftpDir, found },
    interfaces,
    osTrees,
    images,
    bootenv,
    nfs: { disklessProfiles: profiles.filter((p) => p.os.install === 'diskless').map((p) => p.name), missing: profiles.some((p) => p.os.install === 'diskless') ? ganeshaMissing() : null },
    agent,
    clock: await readClock(o.timedatectl !== undefined ? o.timedatectl : findExecutable('timedatectl')),
    disk: await readDisk(dataDir),
  };

  if (o.bmc !== false) {
    const addresses = spec.nodes.map((n) => n.bmc?.address).filter((a): a is string => typeof a === 'string');
    facts.bmcRoutes = [];
    for (const g of bmcGroups(addresses, spec.networks.bmc?.subnet)) {
      if (!ip) {
        facts.bmcRoutes.push({ ...g, route: null, unknown: 'ip (iproute2) is not installed' });
        continue;
      }
      // The kernel's route lookup only: nothing is sent to the BMC.
      const r = await run(ip, ['-j', 'route', 'get', g.probe]);
      if (r.error || r.timedOut) {
        facts.bmcRoutes.push({ ...g, route: null, unknown: `ip route get: ${why(r)}` });
        continue;
      }
      try {
        facts.bmcRoutes.push({ ...g, route: parseRouteGet(r) });
      } catch {
        facts.bmcRoutes.push({ ...g, route: null, unknown: 'ip route get: unreadable answer' });
      }
    }
  }
  return facts;
}

/** Gathers and checks: the findings, in a stable order. */
export async function runDoctor(o: GatherOptions): Promise<Finding[]> {
  return runChecks(await gatherFacts(o));
}

/** The bundle in DIR records a source digest other than this checkout's agent sources (unknown → false). */
async function agentBundleStale(dir: string): Promise<boolean> {
  try {
    const recorded = await fs.readFile(path.join(dir, AGENT_SOURCE_RECORD), 'utf8');
    // The image build's own rule (a missing bundle is the other check's business here).
    return recorded.trim() !== '' && bundleBuildReason({ bundle: true, unit: true, recorded }, await agentSourceDigest(sourceRoot())) === 'built from other agent sources';
  } catch {
    return false;
  }
}
