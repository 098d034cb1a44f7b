/**
 * A profile with `install: image` (issue 11 item 3): the boot decision hands
 * an armed node the fleet boot environment, never the kickstart installer
 * with an empty tree.
 */
import { describe, expect, it } from 'vitest';
import { INSTALL_STATES } from '../../../server/lifecycle/states.js';
import type { ProfileSpec } from '../../../server/model.js';
import { decideBoot, type BootDecision } from '../../../server/netboot/decide.js';

const profile: ProfileSpec = { name: 'compute', os: { install: 'image', tree: '', image: 'debian12' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} };

describe('boot decision for install: image', () => {
  it('an armed node with an image profile gets the boot environment, never the kickstart installer', () => {
    const d: BootDecision = decideBoot({
      node: { name: 'valkyrie01', state: INSTALL_STATES[0]!, armed: true, profile: 'compute' },
      mac: '52:54:00:00:00:01',
      profile,
      server: 'http://10.10.0.1:8080',
    });
    expect(d).toMatchObject({ kind: 'install', method: 'image', image: 'debian12', kernelUrl: 'http://10.10.0.1:8080/bootenv/vmlinuz' });
    expect(JSON.stringify(d)).not.toContain('inst.ks');
  });
});
