/**
 * fleet's NFS service for diskless nodes (server/diskless) against real
 * peers: nfs-ganesha started by the service inside a network namespace, and
 * libnfs's NFSv4 client (nfs-ls, nfs-cat, nfs-cp; user space: this
 * machine's kernel has no NFS client) in a client namespace whose one NIC
 * takes each node's address in turn. The store is the two lists the service
 * reads; the image store holds a real squashfs (mksquashfs).
 *
 * - the service unpacks the image once, makes each node's /var from the
 *   image's, and exports the tree read-only and each /var read-write, each to
 *   its node's address alone: a node reads its image and its /var, writes its
 *   /var (the file is on the server's disk), cannot write the image, cannot
 *   see another node's /var, and an address that is no node sees nothing;
 * - a node without an address is not served, with the reason;
 * - a node removed from the store loses its export at the next refresh (one
 *   SIGHUP, same ganesha) and keeps its directory until `fleet diskless
 *   purge`, which refuses a node still exported;
 * - ganesha killed with SIGKILL is restarted and serves again.
 *
 * Needs root, nfs-ganesha (+ -vfs), libnfs-utils and squashfs-tools; under
 * CI=true a missing one fails the run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProfileSpec } from '../../common/model.js';
import { cmdDisklessList, cmdDisklessPurge } from '../../server/cli/commands/diskless.js';
import { ganeshaMissing } from '../../server/diskless/ganesha.js';
import { DisklessService } from '../../server/diskless/service.js';
import { imagePseudo, nodeDir, nodeVarPseudo } from '../../server/diskless/spec.js';
import type { NodeRecord } from '../../server/store/types.js';
import { fakeImage } from '../helpers/image-store.js';
import { createNetnsLab, findExecutable, type NetnsLab } from '../helpers/netns.js';

const missing: string[] = [];
const g = ganeshaMissing();
if (g) missing.push(g);
for (const [t, pkg] of [['nfs-ls', 'libnfs-utils'], ['nfs-cp', 'libnfs-utils'], ['mksquashfs', 'squashfs-tools'], ['unsquashfs', 'squashfs-tools']] as const) if (!findExecutable(t)) missing.push(`${t} (${pkg})`);
if (process.getuid?.() !== 0) missing.push('root (network namespaces)');
const SKIP = missing.length ? `needs ${missing.join(', ')}` : '';
if (SKIP && process.env.CI === 'true') throw new Error(`CI=true: diskless-nfs.test.ts ${SKIP}`);
const suite = SKIP ? describe.skip : describe;

const HOST = '10.84.0.1';
const N1 = { name: 'valkyrie01', ip: '10.84.0.11' };
const N2 = { name: 'valkyrie02', ip: '10.84.0.12' };

function node(name: string, ip: string | null): NodeRecord {
  const now = new Date().toISOString();
  return { name, profile: 'diskfree', ip, macs: [], pet: false, state: 'enrolled', stateSince: now, stateDeadline: null, armed: false, lastSeen: null, generation: 1, origin: 'config', createdAt: now, updatedAt: now };
}

suite(SKIP ? `diskless NFS service — SKIPPED: ${SKIP}` : 'diskless NFS service: ganesha exports, libnfs clients', () => {
  let lab: NetnsLab;
  let work = '';
  let data = '';
  let digest = '';
  let svc: DisklessService;
  let nodes: NodeRecord[] = [];
  const profile: ProfileSpec = { name: 'diskfree', os: { install: 'diskless', tree: '', image: 'tiny', nfs: { server: 'management' } }, kernelArgs: [], packages: [], sshKeys: [], roles: {} };
  const logs: string[] = [];

  /** The client NIC takes `ip` (one node at a time), then runs a libnfs tool as that node. */
  async function as(ip: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    await lab.exec(lab.client, ['ip', 'addr', 'flush', 'dev', 'c0']);
    await lab.exec(lab.client, ['ip', 'addr', 'add', `${ip}/24`, 'dev', 'c0']);
    return lab.exec(lab.client, argv, { timeoutMs: 30_000 });
  }
  const url = (p: string) => `nfs://${HOST}${p}?version=4`;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fleet-diskless-nfs-'));
    data = join(work, 'data');
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    mkdirSync(join(tree, 'var', 'lib', 'dpkg'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'os-release'), 'ID=tiny\n');
    writeFileSync(join(tree, 'var', 'lib', 'dpkg', 'status'), 'Package: tiny\n');
    const sq = join(work, 'tiny.squashfs');
    execFileSync('mksquashfs', [tree, sq, '-noappend', '-quiet', '-no-progress', '-comp', 'gzip', '-all-root'], { stdio: 'ignore' });
    digest = (await fakeImage(data, 'tiny', undefined, { squashfs: readFileSync(sq) })).manifest.digest;
    lab = await createNetnsLab({ address: `${HOST}/24` });
    await lab.addClient('52:54:00:84:00:01', { address: `${N1.ip}/24` });
    const wrapper = join(work, 'ganesha-in-netns');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${lab.server} ${findExecutable('ganesha.nfsd')} "$@"\n`, { mode: 0o755 });
    nodes = [node(N1.name, N1.ip), node(N2.name, N2.ip), node('valkyrie03', null)];
    svc = new DisklessService({
      store: { profiles: { list: async () => [profile] }, nodes: { list: async () => nodes } },
      dataDir: data,
      bind: HOST,
      binary: wrapper,
      log: (l, m) => logs.push(`${l}: ${m}`),
    });
  }, 60_000);

  afterAll(async () => {
    await svc?.stop();
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('serves each node its image read-only and its own /var read-write, to its address alone', async () => {
    const st = await svc.refresh();
    expect([...st.served.keys()].sort()).toEqual([N1.name, N2.name]);
    expect(st.unserved.get('valkyrie03')).toMatch(/no fixed IPv4 address/);
    expect(svc.nfsPid).toBeGreaterThan(0);
    expect(await svc.serve(N1.name)).toEqual({ server: HOST, vers: '4.1', root: imagePseudo(digest), var: nodeVarPseudo(N1.name) });
    expect(await svc.serve('valkyrie03')).toEqual({ error: expect.stringMatching(/no fixed IPv4 address/) });

    const root = await as(N1.ip, ['nfs-cat', url(`${imagePseudo(digest)}/etc/os-release`)]);
    expect(root.stdout, root.stderr).toBe('ID=tiny\n');
    const own = await as(N1.ip, ['nfs-cat', url(`${nodeVarPseudo(N1.name)}/lib/dpkg/status`)]);
    expect(own.stdout, `its /var is a copy of the image's: ${own.stderr}`).toBe('Package: tiny\n');

    // Writes: its /var yes (the file lands in DATA/diskless/nodes/<node>/var), the image no.
    const local = join(work, 'hello.txt');
    writeFileSync(local, 'written by valkyrie01\n');
    const w = await as(N1.ip, ['nfs-cp', local, url(`${nodeVarPseudo(N1.name)}/hello.txt`)]);
    expect(w.code, w.stderr).toBe(0);
    expect(readFileSync(join(nodeDir(data, N1.name), 'var', 'hello.txt'), 'utf8')).toBe('written by valkyrie01\n');
    const wro = await as(N1.ip, ['nfs-cp', local, url(`${imagePseudo(digest)}/hello.txt`)]);
    expect(wro.code, 'writing the shared image tree').not.toBe(0);
    expect(existsSync(join(data, 'diskless', 'images', digest.slice(7), 'root', 'hello.txt'))).toBe(false);

    // Another node's /var, and an address that is no node's.
    const other = await as(N1.ip, ['nfs-ls', url(nodeVarPseudo(N2.name))]);
    expect(other.code, `valkyrie01 listing valkyrie02's /var: ${other.stdout}`).not.toBe(0);
    const stranger = await as('10.84.0.99', ['nfs-ls', url(imagePseudo(digest))]);
    expect(stranger.code, `an address that is no node: ${stranger.stdout}`).not.toBe(0);
    const two = await as(N2.ip, ['nfs-ls', url(nodeVarPseudo(N2.name))]);
    expect(two.stdout, two.stderr).toMatch(/lib/);
  }, 120_000);

  it('a node removed from the store loses its export (same ganesha, one reload) and keeps its /var until purge', async () => {
    const pid = svc.nfsPid;
    nodes = nodes.filter((n) => n.name !== N2.name);
    const st = await svc.refresh();
    expect(svc.nfsPid, 'reloaded, not restarted').toBe(pid);
    expect([...st.served.keys()]).toEqual([N1.name]);
    let gone = await as(N2.ip, ['nfs-ls', url(nodeVarPseudo(N2.name))]);
    for (let i = 0; i < 20 && gone.code === 0; i++) {
      await new Promise((r) => setTimeout(r, 250));
      gone = await as(N2.ip, ['nfs-ls', url(nodeVarPseudo(N2.name))]);
    }
    expect(gone.code, 'the removed node mounts nothing').not.toBe(0);
    expect(existsSync(join(nodeDir(data, N2.name), 'var', 'lib', 'dpkg', 'status')), 'kept on removal').toBe(true);

    const out: string[] = [];
    const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => out.push(s) } as never;
    const globals = { data } as never;
    expect(await cmdDisklessList(globals, {}, io)).toBe(0);
    expect(out.join('')).toMatch(/valkyrie01 .* yes/);
    expect(out.join('')).toMatch(/valkyrie02 .* no \(kept until purge\)/);
    await expect(cmdDisklessPurge(globals, 'valkyrie[01-02]', { yes: true }, io)).rejects.toThrow(/valkyrie01 is still exported as diskless/);
    expect(existsSync(nodeDir(data, N2.name)), 'nothing purged when one is refused').toBe(true);
    await expect(cmdDisklessPurge(globals, 'valkyrie02', {}, io)).rejects.toThrow(/give --yes/);
    expect(await cmdDisklessPurge(globals, 'valkyrie02', { yes: true }, io)).toBe(0);
    expect(existsSync(nodeDir(data, N2.name))).toBe(false);
    expect(existsSync(nodeDir(data, N1.name))).toBe(true);
  }, 60_000);

  it('ganesha killed with SIGKILL is restarted and serves again', async () => {
    const pid = svc.nfsPid!;
    process.kill(pid, 'SIGKILL');
    let r = { code: 1, stdout: '', stderr: '' };
    for (let i = 0; i < 60; i++) {
      await new Promise((res) => setTimeout(res, 500));
      if (svc.nfsPid === null || svc.nfsPid === pid) continue;
      r = await as(N1.ip, ['nfs-cat', url(`${nodeVarPseudo(N1.name)}/hello.txt`)]);
      if (r.code === 0) break;
    }
    expect(svc.nfsPid).not.toBe(pid);
    expect(r.stdout, `${r.stderr}\n${logs.join('\n')}`).toBe('written by valkyrie01\n');
    expect(logs.join('\n')).toMatch(/ganesha exited \(SIGKILL\); restarting/);
  }, 60_000);
});
