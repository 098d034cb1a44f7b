/**
 * `fleet doctor` on the example config (examples/seed-cluster.yaml), run as
 * the real CLI inside a network namespace this test makes to look like
 * odin: the cluster NIC enp0s3 holding the management address 10.10.0.1/16
 * (issue 16 acceptance). It must report exactly the missing parts:
 *   - a bare data dir: the agent bundle, nothing else failing;
 *   - the bundle in place: nothing failing;
 *   - dnsmasq and the iPXE binaries gone (bind mounts in a private mount
 *     namespace hide /usr/sbin/dnsmasq and /usr/lib/ipxe from this run
 *     only): those two, nothing else;
 *   - the NIC down: the DHCP interface and the route to the BMC network;
 *     without the management address also the boot endpoint;
 *   - a profile switched to an image install with no image built: that
 *     image and the boot environment.
 * Only the doctor's own facts come from the namespace; it sends nothing on
 * the network (the BMC check asks the kernel for a route). The refusal of
 * `fleet reinstall` on a failed check is test/unit/http/reinstall-preflight.test.ts
 * (the example's BMCs are never driven).
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findExecutable } from '../../common/executable.js';
import { distMissing, FLEET_BIN } from '../helpers/fleet-server.js';
import { run, skipReason } from '../helpers/netns.js';

const ROOT = join(import.meta.dirname, '..', '..');
const EXAMPLE = join(ROOT, 'examples/seed-cluster.yaml');
const why = skipReason(['ip', 'unshare', 'mount', 'dnsmasq']) ?? distMissing() ?? (findExecutable('dnsmasq') === '/usr/sbin/dnsmasq' ? null : 'dnsmasq is not /usr/sbin/dnsmasq (the test hides that path)');
const suite = why ? describe.skip : describe;

type Status = 'ok' | 'warn' | 'fail';
interface DoctorJson {
  findings: { id: string; status: Status; message: string; fix: string }[];
  summary: Record<Status, number>;
}

suite(why ? `fleet doctor in a namespace — SKIPPED: ${why}` : 'fleet doctor on the example config, in a namespace', () => {
  const ns = `fleet-test-doc${process.pid % 100000}`;
  let dir = '';
  let data = '';

  /** `fleet doctor --json` in the namespace; `hide` bind-mounts an empty dir/file over those paths for this run only. */
  async function doctor(config = EXAMPLE, hide: { dirs?: string[]; files?: string[] } = {}): Promise<{ code: number; byId: Record<string, Status>; json: DoctorJson }> {
    const cmd = [process.execPath, FLEET_BIN, 'doctor', '--config', config, '--data', data, '--json'].map((a) => `'${a}'`).join(' ');
    const mounts = [...(hide.dirs ?? []).map((d) => `mount --bind '${join(dir, 'empty')}' '${d}'`), ...(hide.files ?? []).map((f) => `mount --bind '${join(dir, 'nothing')}' '${f}'`)];
    const argv = mounts.length ? ['ip', 'netns', 'exec', ns, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', `${mounts.join(' && ')} && exec ${cmd}`] : ['ip', 'netns', 'exec', ns, 'sh', '-c', `exec ${cmd}`];
    const r = await run(argv, { timeoutMs: 60_000 });
    let json: DoctorJson;
    try {
      json = JSON.parse(r.stdout) as DoctorJson;
    } catch {
      throw new Error(`fleet doctor printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
    return { code: r.code, byId: Object.fromEntries(json.findings.map((f) => [f.id, f.status])), json };
  }
  const failing = (byId: Record<string, Status>) => Object.keys(byId).filter((k) => byId[k] === 'fail').sort();
  const ip = async (...a: string[]) => {
    const r = await run(['ip', '-n', ns, ...a]);
    if (r.code !== 0) throw new Error(`ip -n ${ns} ${a.join(' ')}: ${r.stderr}`);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleet-doctor-ns-'));
    data = join(dir, 'data');
    await mkdir(data);
    await mkdir(join(dir, 'empty'));
    await writeFile(join(dir, 'nothing'), '');
    await chmod(join(dir, 'nothing'), 0o644); // not executable: for the doctor, no dnsmasq there
    const add = await run(['ip', 'netns', 'add', ns]);
    if (add.code !== 0) throw new Error(`ip netns add ${ns}: ${add.stderr}`);
    await ip('link', 'set', 'lo', 'up');
    // odin's cluster NIC (a veth pair, both ends here, so it has a carrier) with the management address.
    await ip('link', 'add', 'enp0s3', 'type', 'veth', 'peer', 'name', 'enp0s3p');
    await ip('addr', 'add', '10.10.0.1/16', 'dev', 'enp0s3');
    await ip('link', 'set', 'enp0s3p', 'up');
    await ip('link', 'set', 'enp0s3', 'up');
  });

  afterAll(async () => {
    await run(['ip', 'netns', 'del', ns]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a bare data dir: only the agent bundle fails; the boot endpoint, dnsmasq, iPXE, the DHCP NIC and the BMC route are ok', async () => {
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(failing(r.byId)).toEqual(['agent-bundle']);
    expect(r.byId).toMatchObject({ 'boot-endpoint': 'ok', dnsmasq: 'ok', ipxe: 'ok', 'dhcp-interface': 'ok', 'bmc-route:10.10.100.0/22': 'ok', disk: 'ok' });
    // The example's trees are on another web server: fleet fetches nothing, so it cannot say ok.
    expect(r.byId['os-tree:compute']).toBe('warn');
  });

  it('with the agent bundle in place nothing fails (exit 0)', async () => {
    await mkdir(join(data, 'www', 'agent'), { recursive: true });
    for (const f of ['fleet-agent', 'fleet-agent.service']) await writeFile(join(data, 'www', 'agent', f), 'a');
    const r = await doctor();
    expect(failing(r.byId)).toEqual([]);
    expect(r.code).toBe(0);
  });

  it('dnsmasq and the iPXE binaries gone: exactly those two fail, each with its fix', async () => {
    const r = await doctor(EXAMPLE, { dirs: ['/usr/lib/ipxe'], files: ['/usr/sbin/dnsmasq'] });
    expect(failing(r.byId)).toEqual(['dnsmasq', 'ipxe']);
    expect(r.json.findings.find((f) => f.id === 'dnsmasq')!.fix).toMatch(/apt-get install dnsmasq/);
    expect(r.json.findings.find((f) => f.id === 'ipxe')!.fix).toMatch(/apt-get install ipxe/);
    // Hidden for that run only.
    expect(findExecutable('dnsmasq')).toBe('/usr/sbin/dnsmasq');
  });

  it('the cluster NIC down: the DHCP interface and the route to the BMC network fail; without the management address the boot endpoint too', async () => {
    await ip('link', 'set', 'enp0s3', 'down');
    // The BMCs (10.10.100.0/22) were routed through enp0s3: with it down they are out of reach.
    expect(failing((await doctor()).byId)).toEqual(['bmc-route:10.10.100.0/22', 'dhcp-interface']);
    await ip('link', 'set', 'enp0s3', 'up');
    await ip('addr', 'del', '10.10.0.1/16', 'dev', 'enp0s3');
    const r = await doctor();
    expect(failing(r.byId)).toEqual(['bmc-route:10.10.100.0/22', 'boot-endpoint', 'dhcp-interface']);
    expect(r.json.findings.find((f) => f.id === 'boot-endpoint')!.message).toMatch(/10\.10\.0\.1/);
    await ip('addr', 'add', '10.10.0.1/16', 'dev', 'enp0s3');
    expect(failing((await doctor()).byId)).toEqual([]);
  });

  it('a profile that installs an image none was built of: that image and the boot environment fail', async () => {
    const text = await readFile(EXAMPLE, 'utf8');
    // The compute profile installs the image "compute-el9" instead of its kickstart tree.
    const changed = text.replace('\n  compute:\n    <<: *base\n', '\n  compute:\n    <<: *base\n    os: { install: image, image: compute-el9 }\n');
    expect(changed, 'the example still has a compute profile with an os block').not.toBe(text);
    await writeFile(join(dir, 'fleet.yaml'), changed);
    const r = await doctor(join(dir, 'fleet.yaml'));
    expect(failing(r.byId)).toEqual(['bootenv', 'image:compute']);
    expect(r.json.findings.find((f) => f.id === 'image:compute')!.fix).toMatch(/fleet image build compute-el9/);
  });
});
