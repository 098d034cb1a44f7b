/**
 * A profile with `install: image` is accepted by fleet.yaml before the boot
 * path can serve it (issue 11 item 3): the boot decision must then refuse
 * clearly, never hand such a node the kickstart installer with an empty tree.
 */
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { INSTALL_STATES } from '../../../server/lifecycle/states.js';
import type { ProfileSpec } from '../../../server/model.js';
import { decideBoot, type BootDecision } from '../../../server/netboot/decide.js';

const profile: ProfileSpec = { name: 'compute', os: { install: 'image', tree: '', image: 'debian12' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} };

describe('boot decision for install: image', () => {
  it('an armed node with an image profile is refused or answered not-implemented, never given the kickstart installer', () => {
    let d: BootDecision | undefined;
    let err: unknown;
    try {
      d = decideBoot({
        node: { name: 'valkyrie01', state: INSTALL_STATES[0]!, armed: true, profile: 'compute' },
        mac: '52:54:00:00:00:01',
        profile,
        server: 'http://10.10.0.1:8080',
      });
    } catch (e) {
      err = e;
    }
    if (err !== undefined) {
      expect(err).toBeInstanceOf(FleetError);
      expect((err as FleetError).message).toMatch(/image/);
    } else {
      expect(d?.kind).toBe('not-implemented');
    }
  });
});
