import { describe, expect, it } from 'vitest';
import { disklessExports, exportIds, imagePseudo, imageTreeDir, nodeDir, nodeVarPseudo, renderGaneshaConf } from '../../../server/diskless/spec.js';

const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;

describe('diskless exports', () => {
  it('one read-only export per image for its nodes, one read-write /var per node for that node alone', () => {
    const r = disklessExports('/srv/fleet', [
      { name: 'valkyrie02', ip: '10.10.0.12', digest: D1 },
      { name: 'valkyrie01', ip: '10.10.0.11', digest: D1 },
      { name: 'heimdall', ip: '10.10.0.3', digest: D2 },
    ]);
    expect(r.unserved).toEqual([]);
    expect(r.exports.map(({ id: _id, ...e }) => e)).toEqual([
      { path: `/srv/fleet/diskless/images/${'a'.repeat(64)}/root`, pseudo: `/fleet/images/${'a'.repeat(64)}`, access: 'RO', clients: ['10.10.0.11', '10.10.0.12'] },
      { path: `/srv/fleet/diskless/images/${'b'.repeat(64)}/root`, pseudo: `/fleet/images/${'b'.repeat(64)}`, access: 'RO', clients: ['10.10.0.3'] },
      { path: '/srv/fleet/diskless/nodes/heimdall/var', pseudo: '/fleet/nodes/heimdall/var', access: 'RW', clients: ['10.10.0.3'] },
      { path: '/srv/fleet/diskless/nodes/valkyrie01/var', pseudo: '/fleet/nodes/valkyrie01/var', access: 'RW', clients: ['10.10.0.11'] },
      { path: '/srv/fleet/diskless/nodes/valkyrie02/var', pseudo: '/fleet/nodes/valkyrie02/var', access: 'RW', clients: ['10.10.0.12'] },
    ]);
    expect(new Set(r.exports.map((e) => e.id)).size).toBe(5);
  });

  it('a node without a fixed IPv4 address is unserved, with the reason, and named in no export', () => {
    const r = disklessExports('/d', [
      { name: 'n1', ip: undefined, digest: D1 },
      { name: 'n2', ip: 'fe80::1', digest: D1 },
      { name: 'n3', ip: '10.0.0.3', digest: D1 },
    ]);
    expect(r.unserved.map((u) => u.node)).toEqual(['n1', 'n2']);
    expect(r.unserved[0]!.reason).toMatch(/no fixed IPv4 address/);
    expect(r.exports.flatMap((e) => e.clients)).toEqual(['10.0.0.3', '10.0.0.3']);
  });

  it('refuses hostile names and digests before they become paths', () => {
    expect(() => nodeDir('/d', '../etc')).toThrow(/not a node name/);
    expect(() => nodeDir('/d', 'a/b')).toThrow(/not a node name/);
    expect(() => nodeVarPseudo('x y')).toThrow(/not a node name/);
    expect(() => imageTreeDir('/d', 'sha256:../../x')).toThrow(/not a sha256 digest/);
    expect(() => imagePseudo('latest')).toThrow(/not a sha256 digest/);
    expect(() => disklessExports('/d', [{ name: '../../root', ip: '10.0.0.1', digest: D1 }])).toThrow(/not a node name/);
  });
});

describe('export ids', () => {
  it('are the same for a path whatever else is exported, and distinct', () => {
    const a = exportIds(['/fleet/nodes/n1/var', '/fleet/images/x']);
    const b = exportIds(['/fleet/images/x', '/fleet/nodes/n2/var', '/fleet/nodes/n1/var']);
    expect(a.get('/fleet/nodes/n1/var')).toBe(b.get('/fleet/nodes/n1/var'));
    expect(a.get('/fleet/images/x')).toBe(b.get('/fleet/images/x'));
    const many = exportIds(Array.from({ length: 3000 }, (_, i) => `/fleet/nodes/n${i}/var`));
    const ids = [...many.values()];
    expect(new Set(ids).size).toBe(3000);
    for (const id of ids) expect(id >= 2 && id <= 65534).toBe(true);
  });
});

describe('ganesha.conf', () => {
  it('NFSv4 over TCP on the management address only, nothing exported to anyone not named', () => {
    const { exports } = disklessExports('/srv/fleet', [{ name: 'valkyrie01', ip: '10.10.0.11', digest: D1 }]);
    const conf = renderGaneshaConf({ bind: '10.10.0.1', recoveryDir: '/srv/fleet/diskless/ganesha/recovery', exports });
    expect(conf).toContain('  Protocols = 4;\n');
    expect(conf).toContain('  Bind_addr = 10.10.0.1;\n');
    expect(conf).toContain('  Enable_UDP = false;\n');
    expect(conf, 'numeric owners: no idmapper upcall on a client whose root is on NFS').toContain('  Only_Numeric_Owners = true;\n');
    expect(conf).toContain('EXPORT_DEFAULTS { Access_Type = None;');
    expect(conf).toContain(`  Path = "/srv/fleet/diskless/images/${'a'.repeat(64)}/root";\n  Pseudo = "/fleet/images/${'a'.repeat(64)}";\n  Access_Type = None;\n  FSAL { Name = VFS; }\n  CLIENT { Clients = 10.10.0.11; Access_Type = RO; }`);
    expect(conf).toContain('  Pseudo = "/fleet/nodes/valkyrie01/var";\n  Access_Type = None;\n  FSAL { Name = VFS; }\n  CLIENT { Clients = 10.10.0.11; Access_Type = RW; }');
    expect(conf.match(/^EXPORT \{/gm)).toHaveLength(2);
  });

  it('refuses what it cannot write safely: a quote in a path, a bind or client that is not IPv4', () => {
    const e = { id: 5, path: '/srv/a"b', pseudo: '/fleet/x', access: 'RO' as const, clients: ['10.0.0.1'] };
    expect(() => renderGaneshaConf({ bind: '10.0.0.254', recoveryDir: '/r', exports: [e] })).toThrow(/cannot quote/);
    expect(() => renderGaneshaConf({ bind: 'odin', recoveryDir: '/r', exports: [] })).toThrow(/not an IPv4 address/);
    expect(() => renderGaneshaConf({ bind: '10.0.0.254', recoveryDir: '/r', exports: [{ ...e, path: '/srv/a', clients: ['10.0.0.0/8; Access_Type = RW'] }] })).toThrow(/not an IPv4 address/);
  });
});
