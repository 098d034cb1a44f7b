/**
 * fleet.yaml `bmc: none` (issue 12 item 5, docs/decisions/0011): a node
 * without a BMC, power by hand. The same node as one without a bmc block
 * (no BMC endpoint); any other scalar is a clear error, never a BMC.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FleetError } from '../../../common/errors.js';
import { configIssuesOf, parseConfig, type ConfigIssue } from '../../../server/config/index.js';

type Obj = Record<string, any>;

function base(bmc: unknown): Obj {
  return {
    cluster: { name: 'lab', domain: 'cluster.local', timezone: 'Europe/Brussels', management_address: '10.10.0.1' },
    networks: { provisioning: { subnet: '10.10.0.0/16', unknown_range: '10.10.254.1-10.10.254.254' } },
    credentials: { 'bmc-admin': { username: 'ADMIN', password_env: 'FLEET_BMC_PASSWORD' } },
    profiles: { compute: { os: { tree: 'http://10.10.0.1/repositories/AlmaLinux/9/x86_64/os' } } },
    nodes: {
      'rp4n[1-2]': { profile: 'compute', ip: '10.10.4.[1-2]', ...(bmc === undefined ? {} : { bmc }) },
      valkyrie01: { profile: 'compute', ip: '10.10.3.1', bmc: { address: '10.10.103.1', credentials: 'bmc-admin' } },
    },
  };
}

function issues(o: Obj | string): ConfigIssue[] {
  try {
    parseConfig(typeof o === 'string' ? o : stringify(o));
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return configIssuesOf(e);
  }
  throw new Error('expected config.invalid, but the config was accepted');
}

describe('nodes: bmc: none', () => {
  it('is a node without a BMC, the same as a node without a bmc block', () => {
    const none = parseConfig(stringify(base('none')));
    const absent = parseConfig(stringify(base(undefined)));
    expect(none.nodes.filter((n) => n.name.startsWith('rp4n')).map((n) => n.bmc)).toEqual([undefined, undefined]);
    expect(none.nodes).toEqual(absent.nodes);
    // The other nodes keep their BMC.
    expect(none.nodes.find((n) => n.name === 'valkyrie01')?.bmc).toMatchObject({ address: '10.10.103.1', protocol: 'ipmi' });
  });

  it('refuses a typo with its path and line, and suggests none', () => {
    const text = stringify(base('nope'));
    const list = issues(text);
    expect(list, JSON.stringify(list)).toHaveLength(1);
    expect(list[0]!.path).toBe('nodes.rp4n[1-2].bmc');
    expect(list[0]!.message).toMatch(/bmc: nope is neither a BMC nor 'none' \(did you mean 'none'\?\)/);
    expect(list[0]!.message).toContain('power by hand');
    expect(list[0]!.line).toBe(text.split('\n').findIndex((l) => l.includes('bmc: nope')) + 1);
  });

  it('refuses other scalars (a number, a boolean, None in capitals) without a cascade', () => {
    for (const v of [42, false, 'None', 'no']) {
      const list = issues(base(v));
      expect(list, JSON.stringify(list)).toHaveLength(1);
      expect(list[0]!.message).toContain("neither a BMC nor 'none'");
    }
  });

  it('a mapping is still checked as a BMC', () => {
    const list = issues(base({ address: '10.10.104.1' }));
    expect(list.map((i) => i.message).join('\n')).toMatch(/credentials/);
  });
});
