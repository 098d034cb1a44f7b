/** Where `fleet server` and the local commands find fleet.yaml and the data dir: by hand, and as the systemd service. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { serverPaths } from '../../../server/cli/commands/server.js';
import { localDataDir } from '../../../server/cli/settings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'fleet-paths-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('serverPaths (fleet server)', () => {
  it('by hand: --config is needed, the data dir is left to fleet.yaml or ./fleet-data', () => {
    expect(serverPaths({ config: 'x.yaml' }, {})).toEqual({ configPath: 'x.yaml' });
    expect(() => serverPaths({}, {})).toThrow(FleetError);
    expect(() => serverPaths({}, {})).toThrow(/needs --config FILE .*\/etc\/fleet\/fleet\.yaml/);
  });

  it('as the service: fleet.yaml in $CONFIGURATION_DIRECTORY, data in $STATE_DIRECTORY below fleet.yaml and FLEET_DATA', () => {
    const env = { CONFIGURATION_DIRECTORY: '/etc/fleet', STATE_DIRECTORY: '/var/lib/fleet' };
    expect(serverPaths({}, env)).toEqual({ configPath: '/etc/fleet/fleet.yaml', defaultDataDir: '/var/lib/fleet' });
    expect(serverPaths({ config: '/srv/f.yaml', data: '/srv/d' }, env)).toEqual({ configPath: '/srv/f.yaml', dataDir: '/srv/d', defaultDataDir: '/var/lib/fleet' });
    expect(serverPaths({}, { ...env, FLEET_DATA: '/srv/d' }).dataDir).toBe('/srv/d');
    // systemd lists several directories with colons when the unit names several: the first is fleet's.
    expect(serverPaths({}, { CONFIGURATION_DIRECTORY: '/etc/fleet:/etc/other', STATE_DIRECTORY: '/var/lib/fleet:/var/lib/other' })).toEqual({
      configPath: '/etc/fleet/fleet.yaml',
      defaultDataDir: '/var/lib/fleet',
    });
  });
});

describe('localDataDir (the CLI on the server host)', () => {
  const service = path.join(dir, 'var-lib-fleet');
  const io = (cwd: string, env: NodeJS.ProcessEnv = {}) => ({ cwd, env });

  it('--data, then FLEET_DATA, then fleet.yaml server.data_dir, relative to the working directory', () => {
    expect(localDataDir('d', io(dir, { FLEET_DATA: '/e' }), '/c', service)).toBe(path.join(dir, 'd'));
    expect(localDataDir(undefined, io(dir, { FLEET_DATA: '/e' }), '/c', service)).toBe('/e');
    expect(localDataDir(undefined, io(dir), 'c', service)).toBe(path.join(dir, 'c'));
  });

  it('else ./fleet-data when it exists, else the service data dir when it exists, else ./fleet-data', () => {
    const cwd = path.join(dir, 'work');
    mkdirSync(cwd);
    expect(localDataDir(undefined, io(cwd), undefined, service)).toBe(path.join(cwd, 'fleet-data'));
    mkdirSync(service);
    expect(localDataDir(undefined, io(cwd), undefined, service)).toBe(service);
    mkdirSync(path.join(cwd, 'fleet-data'));
    expect(localDataDir(undefined, io(cwd), undefined, service)).toBe(path.join(cwd, 'fleet-data'));
  });
});
