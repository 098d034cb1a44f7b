/**
 * Whether a node boots stateless: its profile says `install: stateless`
 * (docs/stateless.md). One store read; a profile that is not in the store is
 * not stateless. The lifecycle (arm-pxe, the cancel's disk boot), the boot
 * endpoints' callbacks and the agents' enrolment ask it.
 */
import type { ProfileSpec } from '../../common/model.js';

export async function bootsStateless(store: { profiles: { get(name: string): Promise<ProfileSpec | null> } }, profile: string): Promise<boolean> {
  return (await store.profiles.get(profile))?.os.install === 'stateless';
}
