/**
 * Whether a node takes its root from the network at every boot: its profile
 * says `install: stateless` (the image in RAM, docs/stateless.md) or
 * `install: diskless` (the image over NFS, docs/diskless.md). Both boot
 * through the same stage 1 and the same lifecycle; they differ only in where
 * stage 1 finds the root. One store read; a profile that is not in the store
 * is neither. The lifecycle (arm-pxe, the cancel's disk boot), the boot
 * endpoints' callbacks and the agents' enrolment ask it.
 */
import type { ProfileSpec } from '../../common/model.js';

export type NetRoot = 'stateless' | 'diskless';

type Profiles = { profiles: { get(name: string): Promise<ProfileSpec | null> } };

/** The profile's network-root method, or null when its nodes boot a disk. */
export async function netRootOf(store: Profiles, profile: string): Promise<NetRoot | null> {
  const install = (await store.profiles.get(profile))?.os.install;
  return install === 'stateless' || install === 'diskless' ? install : null;
}

export async function bootsFromNetwork(store: Profiles, profile: string): Promise<boolean> {
  return (await netRootOf(store, profile)) !== null;
}
