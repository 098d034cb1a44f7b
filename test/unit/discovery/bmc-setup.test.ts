import { describe, expect, it } from 'vitest';
import { parseBmcSetupReport, planBmcSetup } from '../../../server/discovery/bmc-setup.js';
import type { Inspection } from '../../../server/discovery/inspection.js';
import type { PlannedBmc } from '../../../server/discovery/types.js';

const bmc: PlannedBmc = { address: '10.10.103.3', port: 623, protocol: 'ipmi', credentials: 'factory', setup: { passwordLength: 20 } };

function inspection(users: { id: number; name: string }[], bmcPart?: Inspection['bmc']): Inspection {
  return {
    firmware: 'bios',
    system: { serial: 'S1' },
    cpu: { count: 1 },
    memoryMiB: 1024,
    disks: [],
    nics: [],
    bmc: bmcPart ?? { channel: 1, users: users.map((u) => ({ ...u, privilege: 'ADMINISTRATOR', ipmiMessaging: true })) },
    notes: [],
  } as unknown as Inspection;
}

describe('planBmcSetup', () => {
  const net = { subnet: '10.10.96.0/20', gateway: '10.10.96.1' };

  it('plans fleet-a in the lowest free slot, retiring the factory account, with the netmask of the BMC network', () => {
    expect(planBmcSetup({ inspection: inspection([{ id: 2, name: 'ADMIN' }]), bmc, factoryUser: 'ADMIN', bmcNetwork: net, install: true })).toEqual({
      channel: 1,
      slot: 3,
      account: 'fleet-a',
      passwordLength: 20,
      address: '10.10.103.3',
      netmask: '255.255.240.0',
      gateway: '10.10.96.1',
      retire: { id: 2, name: 'ADMIN' },
      install: true,
    });
  });

  it('reuses a fleet-a slot left by an earlier set-up; no gateway when fleet.yaml gives none', () => {
    const job = planBmcSetup({ inspection: inspection([{ id: 2, name: 'root' }, { id: 3, name: 'ops' }, { id: 5, name: 'fleet-a' }]), bmc, factoryUser: 'root', bmcNetwork: { subnet: '10.10.0.0/16' }, install: false });
    expect(job).toMatchObject({ slot: 5, account: 'fleet-a', gateway: null, netmask: '255.255.0.0', install: false, retire: { id: 2, name: 'root' } });
  });

  it('a factory user the inspection did not see: nothing to retire (said by the plan, not guessed)', () => {
    expect(planBmcSetup({ inspection: inspection([{ id: 2, name: 'admin' }]), bmc, factoryUser: 'ADMIN', bmcNetwork: net, install: false }).retire).toBeNull();
  });

  it('past 16 named slots, the next id after the highest', () => {
    const users = Array.from({ length: 16 }, (_, i) => ({ id: i + 1, name: `u${i + 1}` }));
    expect(planBmcSetup({ inspection: inspection(users), bmc, factoryUser: 'u2', bmcNetwork: net, install: false }).slot).toBe(17);
  });

  it('refuses clearly: no inspection, no BMC seen in band, no BMC network', () => {
    expect(() => planBmcSetup({ inspection: null, bmc, factoryUser: 'ADMIN', bmcNetwork: net, install: false })).toThrow(/needs an inspection report/);
    expect(() => planBmcSetup({ inspection: inspection([], { absent: 'no /dev/ipmi0' }), bmc, factoryUser: 'ADMIN', bmcNetwork: net, install: false })).toThrow(
      /found no BMC in band \(no \/dev\/ipmi0\)/,
    );
    expect(() => planBmcSetup({ inspection: inspection([]), bmc, factoryUser: 'ADMIN', bmcNetwork: undefined, install: false })).toThrow(/needs networks\.bmc/);
  });
});

describe('parseBmcSetupReport', () => {
  it('takes {ok, log}, keeps the end of a long log', () => {
    expect(parseBmcSetupReport({ ok: true, log: 'ok: a' })).toEqual({ ok: true, log: 'ok: a' });
    expect(parseBmcSetupReport({ ok: false })).toEqual({ ok: false, log: '' });
    expect(parseBmcSetupReport({ ok: true, log: 'x'.repeat(10_000) + 'END' }).log).toHaveLength(4000);
  });

  it('refuses anything else with a clear request.invalid', () => {
    for (const bad of [null, [], 'ok', { ok: 'yes' }, { ok: true, log: 5 }]) {
      expect(() => parseBmcSetupReport(bad)).toThrow(expect.objectContaining({ code: 'request.invalid' }));
    }
  });
});
