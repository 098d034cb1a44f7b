/**
 * Diskless nodes kept in step with the store (I/O; docs/diskless.md):
 * refresh() reads the diskless profiles and their nodes, unpacks each
 * profile's image once (tree.ts), makes each node's /var the first time,
 * and has fleet's NFS server (ganesha.ts) export exactly what those nodes
 * need (spec.ts). `fleet server` calls it at start and whenever the nodes
 * change (as it refreshes dnsmasq's reservations), and a diskless node's
 * stage 1 plan calls serve(node) so a node added a moment ago is served at
 * its first boot. Refreshes are coalesced: one runs at a time, and a
 * request that comes while one runs gets one more run after it.
 *
 * Nothing runs, and no NFS server is started, while no profile is diskless.
 */
import { isFleetError } from '../../common/errors.js';
import type { ProfileSpec } from '../../common/model.js';
import { imageDir, imagePaths, showImage } from '../images/store.js';
import type { NodeRecord } from '../store/types.js';

export type { DisklessMounts } from './spec.js';
import { GaneshaSupervisor } from './ganesha.js';
import { type DisklessMounts, type DisklessNode, disklessExports, imagePseudo, NFS_VERS, nodeVarPseudo, type NfsExport } from './spec.js';
import { cleanDisklessTmp, ensureImageTree, ensureNodeVar } from './tree.js';
import path from 'node:path';

export interface DisklessStore {
  profiles: { list(): Promise<ProfileSpec[]> };
  nodes: { list(): Promise<NodeRecord[]> };
}

export interface DisklessServiceOptions {
  store: DisklessStore;
  dataDir: string;
  /** The management address nodes mount from (ganesha listens there). */
  bind: string;
  binary?: string;
  port?: number;
  log?: (level: 'info' | 'warn', msg: string) => void;
}

export interface DisklessState {
  exports: NfsExport[];
  /** Node → why it is not served (no fixed address, image missing, unpack failed). */
  unserved: Map<string, string>;
  /** Node → the image digest it is served. */
  served: Map<string, string>;
}

export class DisklessService {
  private readonly ganesha: GaneshaSupervisor;
  private running: Promise<DisklessState> | null = null;
  private queued: Promise<DisklessState> | null = null;
  private last: DisklessState = { exports: [], unserved: new Map(), served: new Map() };
  private cleaned = false;

  constructor(private readonly o: DisklessServiceOptions) {
    this.ganesha = new GaneshaSupervisor({ dataDir: o.dataDir, bind: o.bind, ...(o.binary ? { binary: o.binary } : {}), ...(o.port ? { port: o.port } : {}), ...(o.log ? { log: o.log } : {}) });
  }

  get nfsPid(): number | null {
    return this.ganesha.pid;
  }

  get state(): DisklessState {
    return this.last;
  }

  /** Brings the trees, the /var directories and the exports in step with the store (coalesced). */
  refresh(): Promise<DisklessState> {
    if (!this.running) {
      this.running = this.once().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    if (!this.queued) {
      this.queued = this.running
        .catch(() => undefined)
        .then(() => {
          this.queued = null;
          return this.refresh();
        });
    }
    return this.queued;
  }

  /** What `node` mounts, after a refresh that includes it; or why it cannot be served. */
  async serve(node: string): Promise<DisklessMounts | { error: string }> {
    const st = await this.refresh();
    const why = st.unserved.get(node);
    if (why) return { error: why };
    const digest = st.served.get(node);
    if (!digest) return { error: `${node} is not a diskless node in the store` };
    return { server: this.o.bind, vers: NFS_VERS, root: imagePseudo(digest), var: nodeVarPseudo(node) };
  }

  private async once(): Promise<DisklessState> {
    const profiles = (await this.o.store.profiles.list()).filter((p) => p.os.install === 'diskless');
    const st: DisklessState = { exports: [], unserved: new Map(), served: new Map() };
    if (profiles.length === 0 && this.ganesha.pid === null) return (this.last = st);
    if (!this.cleaned) {
      await cleanDisklessTmp(this.o.dataDir);
      this.cleaned = true;
    }
    const byProfile = new Map(profiles.map((p) => [p.name, p]));
    const nodes = (await this.o.store.nodes.list()).filter((n) => byProfile.has(n.profile));
    const digestOf = new Map<string, string | { error: string }>();
    for (const p of profiles) {
      try {
        const m = await showImage(this.o.dataDir, p.os.image ?? '');
        await ensureImageTree({ dataDir: this.o.dataDir, image: m.name, digest: m.digest, squashfs: path.join(imageDir(imagePaths(this.o.dataDir), m.digest), m.artefacts.squashfs.file), log: (l) => this.o.log?.('info', l) });
        digestOf.set(p.name, m.digest);
      } catch (e) {
        if (!isFleetError(e)) throw e;
        digestOf.set(p.name, { error: `the image ${p.os.image ?? '(none)'} of profile ${p.name} cannot be served: ${e.message}` });
      }
    }
    const want: DisklessNode[] = [];
    for (const n of nodes) {
      const d = digestOf.get(n.profile)!;
      if (typeof d !== 'string') {
        st.unserved.set(n.name, d.error);
        continue;
      }
      want.push({ name: n.name, ip: n.ip ?? undefined, digest: d });
    }
    const ex = disklessExports(this.o.dataDir, want);
    for (const u of ex.unserved) st.unserved.set(u.node, u.reason);
    for (const n of want) {
      if (st.unserved.has(n.name)) continue;
      try {
        const r = await ensureNodeVar({ dataDir: this.o.dataDir, node: n.name, digest: n.digest });
        if (r.created) this.o.log?.('info', `diskless: ${n.name}'s /var made from image ${n.digest.slice(0, 19)}`);
        st.served.set(n.name, n.digest);
      } catch (e) {
        if (!isFleetError(e)) throw e;
        st.unserved.set(n.name, e.message);
      }
    }
    st.exports = ex.exports.filter((e) => e.access === 'RO' || [...st.served.keys()].some((n) => e.pseudo === nodeVarPseudo(n)));
    await this.ganesha.apply(st.exports);
    return (this.last = st);
  }

  async stop(): Promise<void> {
    await this.running?.catch(() => undefined);
    await this.ganesha.stop();
  }
}
