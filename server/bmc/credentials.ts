/**
 * Which credential set a node's BMC logs in with, in one place: its own set
 * (`rotated.NODE`, recorded by `fleet bmc rotate` or an in-band BMC set-up,
 * store.bmc.commitRotation) when it has one, else the set fleet.yaml names.
 * After a rotation the declared set may be a factory account fleet disabled,
 * so every BMC caller (operations, rotation, the serial console) asks here.
 */
import type { Store } from '../store/index.js';

/** Node name → the credential set its BMC logs in with; nodes without a BMC are left out. */
export async function bmcCredentialNames(store: Store, nodes: readonly { name: string; bmc?: { credentials: string } | null | undefined }[]): Promise<Map<string, string>> {
  const withBmc = nodes.filter((n): n is { name: string; bmc: { credentials: string } } => n.bmc !== null && n.bmc !== undefined);
  const rotated = await store.bmc.rotated(withBmc.map((n) => n.name));
  return new Map(withBmc.map((n) => [n.name, rotated.get(n.name) ?? n.bmc.credentials]));
}

/** Each credential set revealed once per batch (a fan-out over 1,000 nodes shares a handful of sets). */
export class RevealedSecrets {
  private readonly seen = new Map<string, Promise<{ username: string; secret: string }>>();
  constructor(private readonly store: Store) {}
  get(name: string): Promise<{ username: string; secret: string }> {
    let p = this.seen.get(name);
    if (!p) {
      p = this.store.credentials.revealSecret(name).then((r) => ({ username: r.username, secret: r.secret }));
      this.seen.set(name, p);
    }
    return p;
  }
}
