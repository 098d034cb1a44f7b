/**
 * From a root filesystem tree to the artefacts of an image (I/O): the
 * package list from its dpkg database, the kernel and initramfs from /boot,
 * rootfs.tar.zst and rootfs.squashfs of the same tree (made side by side),
 * and the agent baked in (bundle, unit, the enable link systemctl would make).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { runProcess, type SpawnResult } from '../../common/spawn.js';
import { FleetError } from '../../common/errors.js';
import { FILES, MANIFEST_SCHEMA, imageDigest, type Artefact, type ImageManifest, type NamedManifest } from './manifest.js';
import { dominantArch, parseDpkgStatus, pickKernel, type DpkgPackage } from './packages.js';
import { squashfsArgs, tarCreateArgs } from './plan.js';
import { artefact, isRegularFile, publish, type ImagePaths } from './store.js';

export interface Tools {
  tar: string;
  mksquashfs: string;
  zstd: string;
}

export interface TreeArtefacts {
  packages: DpkgPackage[];
  arch: string | null;
  kernelVersion: string | null;
  artefacts: { rootfs: Artefact; squashfs: Artefact; kernel: Artefact | null; initrd: Artefact | null };
}

/** The tail of a failed command's stderr, for its error message. */
export function failureTail(r: SpawnResult, lines = 8): string {
  if (r.error) return r.error.message;
  const why = r.timedOut ? 'timed out' : r.aborted ? 'interrupted' : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const cut = (l: string): string => (l.length > 240 ? `${l.slice(0, 240)}…` : l);
  const tail = (r.stderr || r.stdout).trim().split('\n').slice(-lines).map(cut).join('\n  ');
  return tail ? `${why}:\n  ${tail}` : why;
}

export async function mustRun(what: string, file: string, args: string[], opts: { timeoutMs: number; signal?: AbortSignal; env?: NodeJS.ProcessEnv }): Promise<SpawnResult> {
  const r = await runProcess(file, args, { timeoutMs: opts.timeoutMs, killGraceMs: 10_000, ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.env ? { env: opts.env } : {}) });
  if (r.code !== 0 || r.error) throw new FleetError('image.build_failed', `${what} failed (${failureTail(r)})`);
  return r;
}

/** The enable link of the agent's unit, relative to the tree. */
export const AGENT_WANTS_LINK = 'etc/systemd/system/multi-user.target.wants/fleet-agent.service';

/**
 * Bakes the agent into a tree: /usr/local/bin/fleet-agent (the
 * self-extracting bundle), /etc/systemd/system/fleet-agent.service, and the
 * multi-user.target.wants link that `systemctl enable` makes (its [Install]
 * section says WantedBy=multi-user.target). The unit starts once the node
 * is enrolled (ConditionPathExists=/var/lib/fleet-agent/agent.json).
 */
export async function bakeAgent(tree: string, bundle: string, unit: string): Promise<void> {
  const unitText = await fs.readFile(unit, 'utf8');
  if (!/^WantedBy=multi-user\.target$/m.test(unitText)) throw new FleetError('internal', `${unit} is not wanted by multi-user.target`);
  await fs.mkdir(path.join(tree, 'usr/local/bin'), { recursive: true, mode: 0o755 });
  await fs.copyFile(bundle, path.join(tree, 'usr/local/bin/fleet-agent'));
  await fs.chmod(path.join(tree, 'usr/local/bin/fleet-agent'), 0o755);
  await fs.mkdir(path.join(tree, 'etc/systemd/system/multi-user.target.wants'), { recursive: true, mode: 0o755 });
  await fs.writeFile(path.join(tree, 'etc/systemd/system/fleet-agent.service'), unitText, { mode: 0o644 });
  await fs.rm(path.join(tree, AGENT_WANTS_LINK), { force: true });
  await fs.symlink('/etc/systemd/system/fleet-agent.service', path.join(tree, AGENT_WANTS_LINK));
}

/**
 * Per-machine secrets a package's postinst made while the image was built:
 * every node installed from the image would share them, and the image is
 * served over HTTP. SSH host keys (the boot environment makes new ones per
 * install), munge's key (the slurm role writes the cluster's) and the
 * machine id (made per install) are removed from the tree before it is
 * packed. Answers what it removed (paths relative to the tree).
 */
export const MACHINE_SECRETS: readonly RegExp[] = [/^etc\/ssh\/ssh_host_[a-z0-9]+_key(\.pub)?$/, /^etc\/munge\/munge\.key$/];

export async function scrubMachineSecrets(tree: string): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of ['etc/ssh', 'etc/munge']) {
    let names: string[] = [];
    try {
      names = await fs.readdir(path.join(tree, dir));
    } catch {
      continue;
    }
    for (const n of names.sort()) {
      const rel = `${dir}/${n}`;
      if (!MACHINE_SECRETS.some((re) => re.test(rel))) continue;
      await fs.rm(path.join(tree, rel), { force: true });
      removed.push(rel);
    }
  }
  // systemd's convention for images: an empty machine-id, filled at first boot (or by the installer).
  try {
    if ((await fs.lstat(path.join(tree, 'etc/machine-id'))).isFile()) {
      await fs.writeFile(path.join(tree, 'etc/machine-id'), '');
      removed.push('etc/machine-id (emptied)');
    }
  } catch {
    /* none */
  }
  await fs.rm(path.join(tree, 'var/lib/dbus/machine-id'), { force: true });
  return removed;
}

async function kernelOf(tree: string, out: string): Promise<{ version: string | null; kernel: Artefact | null; initrd: Artefact | null }> {
  const boot = path.join(tree, 'boot');
  let names: string[] = [];
  try {
    if ((await fs.lstat(boot)).isDirectory()) names = await fs.readdir(boot);
  } catch {
    /* no /boot: an image without a kernel */
  }
  const regular: string[] = [];
  for (const n of names) if (await isRegularFile(path.join(boot, n))) regular.push(n);
  const k = pickKernel(regular);
  if (!k) return { version: null, kernel: null, initrd: null };
  await fs.copyFile(path.join(boot, k.kernel), path.join(out, FILES.kernel));
  await fs.copyFile(path.join(boot, k.initrd), path.join(out, FILES.initrd));
  return { version: k.version, kernel: await artefact(out, FILES.kernel), initrd: await artefact(out, FILES.initrd) };
}

/** Everything an image directory holds but its manifest and sums, made from `tree` into `out`. */
export async function artefactsFromTree(
  tree: string,
  out: string,
  tools: Tools,
  log: (s: string) => void,
  signal?: AbortSignal,
): Promise<TreeArtefacts> {
  const statusFile = path.join(tree, 'var/lib/dpkg/status');
  const packages = (await isRegularFile(statusFile)) ? parseDpkgStatus(await fs.readFile(statusFile, 'utf8')) : [];
  const k = await kernelOf(tree, out);
  log(`packing the tree: ${FILES.rootfs} and ${FILES.squashfs} (${packages.length} packages, kernel ${k.version ?? 'absent'})`);
  const timeoutMs = 60 * 60_000;
  const env = { ...process.env, PATH: `${path.dirname(tools.zstd)}:${process.env['PATH'] ?? ''}` };
  await Promise.all([
    mustRun('tar (rootfs.tar.zst)', tools.tar, tarCreateArgs(tree, path.join(out, FILES.rootfs)), { timeoutMs, env, ...(signal ? { signal } : {}) }),
    mustRun('mksquashfs', tools.mksquashfs, squashfsArgs(tree, path.join(out, FILES.squashfs)), { timeoutMs, ...(signal ? { signal } : {}) }),
  ]);
  log('hashing the artefacts');
  return {
    packages,
    arch: dominantArch(packages),
    kernelVersion: k.version,
    artefacts: { rootfs: await artefact(out, FILES.rootfs), squashfs: await artefact(out, FILES.squashfs), kernel: k.kernel, initrd: k.initrd },
  };
}

/** What build and import each say about an image; the rest of its manifest comes from its tree. */
export type ImageIdentity = Pick<ImageManifest, 'from' | 'buildKey' | 'origin' | 'agent'> & { arch: string | null };

/**
 * The tail build and import share: the artefacts of a finished tree, its
 * manifest, published under its digest and registered under `name` last
 * (store.ts publish), so an interrupt before this leaves nothing registered.
 */
export async function publishTree(o: {
  paths: ImagePaths;
  name: string;
  tree: string;
  out: string;
  tools: Tools;
  id: ImageIdentity;
  log: (s: string) => void;
  signal?: AbortSignal;
  now: () => Date;
}): Promise<{ image: NamedManifest; reused: false }> {
  const scrubbed = await scrubMachineSecrets(o.tree);
  if (scrubbed.length) o.log(`removed per-machine secrets from the tree: ${scrubbed.join(', ')}`);
  const a = await artefactsFromTree(o.tree, o.out, o.tools, o.log, o.signal);
  const manifest: ImageManifest = {
    schema: MANIFEST_SCHEMA,
    digest: imageDigest(Object.values(a.artefacts).filter((x) => x !== null)),
    from: o.id.from,
    arch: o.id.arch ?? a.arch,
    created: o.now().toISOString(),
    buildKey: o.id.buildKey,
    origin: o.id.origin,
    kernelVersion: a.kernelVersion,
    agent: o.id.agent,
    packageCount: a.packages.length,
    packages: a.packages.map((x) => ({ name: x.name, version: x.version })),
    artefacts: a.artefacts,
  };
  if (o.signal?.aborted) throw new FleetError('image.build_failed', 'interrupted');
  o.log(`publishing ${manifest.digest}`);
  await publish(o.paths, o.name, o.out, manifest, o.now);
  return { image: { name: o.name, ...manifest }, reused: false };
}
