/**
 * Lease events → store, without dnsmasq: the real hook script (run by bash
 * exactly as dnsmasq runs it: ACTION MAC IP [HOSTNAME] + DNSMASQ_* env), the
 * FIFO listener and the consumer on a real in-memory store.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NodeSpec } from '../../../server/model.js';
import { DiscoveryConsumer, DiscoveryListener, parseHookLine, type LeaseEvent } from '../../../server/netboot/discovery/index.js';
import { HOOK_MAGIC, writeHookScript } from '../../../server/netboot/hook/script.js';
import { openStore, type Store } from '../../../server/store/index.js';

const SECRET = 'test-secret-0123456789abcdef';
const SECRET_BUF = Buffer.from(SECRET);

function line(fields: Partial<Record<string, string>> = {}): string {
  const f = {
    secret: SECRET,
    action: 'add',
    mac: '52:54:00:00:00:01',
    ip: '10.77.0.100',
    hostname: '',
    vendorClass: 'PXEClient:Arch:00007:UNDI:003016',
    userClasses: '',
    tags: 'efi64 br0',
    clientId: '01:52:54:00:00:00:01',
    interface: 'br0',
    suppliedHostname: '',
    expires: '1795242392',
    dataMissing: '',
    ...fields,
  };
  return [HOOK_MAGIC, f.secret, f.action, f.mac, f.ip, f.hostname, f.vendorClass, f.userClasses, f.tags, f.clientId, f.interface, f.suppliedHostname, f.expires, f.dataMissing].join('\t');
}

describe('parseHookLine', () => {
  it('parses a PXE client event, arch from the tags', () => {
    const r = parseHookLine(line(), SECRET_BUF);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.event).toMatchObject({ action: 'add', mac: '52:54:00:00:00:01', ip: '10.77.0.100', arch: 'efi64', pxe: true, ipxe: false, expires: 1795242392, dataMissing: false });
    expect(r.event.hostname).toBeNull();
  });

  it('iPXE by tag or user class; arch from the vendor class when no tag says it', () => {
    const r = parseHookLine(line({ tags: 'ipxe br0', userClasses: 'iPXE', vendorClass: 'PXEClient:Arch:00000:UNDI:002001' }), SECRET_BUF);
    expect(r.ok && r.event).toMatchObject({ ipxe: true, pxe: true, arch: 'bios', userClasses: ['iPXE'] });
    const dhcpcd = parseHookLine(line({ tags: 'br0', vendorClass: 'dhcpcd-9.4.1:Linux', hostname: 'n1', mac: '52-54-00-00-00-0A' }), SECRET_BUF);
    expect(dhcpcd.ok && dhcpcd.event).toMatchObject({ pxe: false, arch: null, hostname: 'n1', mac: '52:54:00:00:00:0a' });
  });

  it('refuses a wrong secret, a bad MAC or IP, a wrong field count or marker; bad names become null', () => {
    expect(parseHookLine(line({ secret: 'x'.repeat(SECRET.length) }), SECRET_BUF)).toMatchObject({ ok: false, reason: 'unauthenticated' });
    expect(parseHookLine(line({ secret: '' }), SECRET_BUF)).toMatchObject({ ok: false, reason: 'unauthenticated' });
    expect(parseHookLine(line({ mac: 'ff:ff:ff:ff:ff:ff' }), SECRET_BUF)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(parseHookLine(line({ mac: '00:03:00:01:52:54:00:00:00:01' }), SECRET_BUF)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(parseHookLine(line({ ip: 'fd00::5' }), SECRET_BUF)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(parseHookLine(line({ action: 'tftp' }), SECRET_BUF)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(parseHookLine(line().split('\t').slice(0, 8).join('\t'), SECRET_BUF)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(parseHookLine(line().replace(HOOK_MAGIC, 'FLEET0'), SECRET_BUF)).toMatchObject({ ok: false, reason: 'malformed' });
    const odd = parseHookLine(line({ hostname: 'bad_name!', suppliedHostname: 'x'.repeat(300), vendorClass: '\x01\x02' }), SECRET_BUF);
    expect(odd.ok && odd.event).toMatchObject({ hostname: null, suppliedHostname: null, vendorClass: null });
  });
});

// ---------------------------------------------------------------- hook + listener + consumer + store

function runBash(script: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { env: { PATH: process.env['PATH'], ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, _o, stderr) =>
      resolve({ code: err ? 1 : 0, stderr: String(stderr) }),
    );
  });
}

async function until(cond: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

const node = (name: string, mac: string, ip: string): NodeSpec => ({ name, profile: 'compute', ip, macs: [mac], pet: false });

describe('hook → FIFO → listener → consumer → store', () => {
  let dir: string;
  let store: Store;
  let consumer: DiscoveryConsumer;
  let listener: DiscoveryListener;
  let hook: string;
  let env: Record<string, string>;
  const warnings: object[] = [];

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleet-discovery-'));
    store = await openStore({ memory: true }, { secretKey: randomBytes(32) });
    await store.profiles.upsert({ name: 'compute', os: { install: 'kickstart', tree: 'http://10.77.0.1/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} }, { actor: 'test' });
    await store.nodes.upsert(node('known1', '52:54:00:aa:00:01', '10.77.0.11'), { actor: 'test' });
    warnings.length = 0;
    const logger = { info() {}, error() {}, warn: (o: object) => warnings.push(o) };
    consumer = new DiscoveryConsumer({ store, logger });
    listener = new DiscoveryListener({ fifo: path.join(dir, 'events.fifo'), sink: consumer, logger, secret: SECRET });
    await listener.start();
    hook = path.join(dir, 'dhcp-hook');
    await writeHookScript(hook);
    env = listener.hookEnv();
  });

  afterEach(async () => {
    await listener.stop();
    await consumer.stop();
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('the FIFO is private and the hook is executable by its owner only', async () => {
    expect((await fs.stat(path.join(dir, 'events.fifo'))).mode & 0o777).toBe(0o600);
    expect((await fs.stat(hook)).mode & 0o777).toBe(0o700);
  });

  it('an unknown MAC is recorded as discovered with what dnsmasq told', async () => {
    const r = await runBash(`'${hook}' add 52:54:00:bb:00:01 10.77.0.120`, {
      ...env,
      DNSMASQ_VENDOR_CLASS: 'PXEClient:Arch:00007:UNDI:003016',
      DNSMASQ_TAGS: 'efi64 br0',
      DNSMASQ_SUPPLIED_HOSTNAME: 'newbox',
      DNSMASQ_LEASE_EXPIRES: '1795242392',
    });
    expect(r.code).toBe(0);
    expect(await until(async () => (await store.discovered.get('52:54:00:bb:00:01')) !== null, 2000)).toBe(true);
    const m = await store.discovered.get('52:54:00:bb:00:01');
    expect(m).toMatchObject({ ip: '10.77.0.120', hostname: 'newbox', vendorClass: 'PXEClient:Arch:00007:UNDI:003016', arch: 'efi64', pxe: true, node: null });
    const page = await store.events.list({ kinds: ['machine.discovered'] });
    expect(page.events).toHaveLength(1);
    expect(JSON.stringify(page.events[0])).toContain('52:54:00:bb:00:01');
  });

  it('a known MAC marks its node seen and is not listed as discovered', async () => {
    expect((await store.nodes.get('known1'))!.lastSeen).toBeNull();
    await runBash(`'${hook}' add 52:54:00:aa:00:01 10.77.0.11 known1`, { ...env, DNSMASQ_TAGS: 'known bios br0', DNSMASQ_LEASE_EXPIRES: '100' });
    expect(await until(async () => (await store.nodes.get('known1'))!.lastSeen !== null, 2000)).toBe(true);
    expect(await store.discovered.list()).toHaveLength(0);
    expect(consumer.stats()).toMatchObject({ known: 1, discovered: 0 });
  });

  it('replays are not sightings; del is not stored; other actions are ignored by the hook', async () => {
    const h = (args: string, extra: Record<string, string> = {}) => runBash(`'${hook}' ${args}`, { ...env, ...extra });
    await h('old 52:54:00:aa:00:01 10.77.0.11', { DNSMASQ_DATA_MISSING: '1' }); // dnsmasq start-up replay
    await h('add 52:54:00:bb:00:02 10.77.0.121', { DNSMASQ_LEASE_EXPIRES: '500' });
    await h('old 52:54:00:bb:00:02 10.77.0.121', { DNSMASQ_LEASE_EXPIRES: '500' }); // SIGHUP replay: same expiry
    await h('old 52:54:00:bb:00:02 10.77.0.121', { DNSMASQ_LEASE_EXPIRES: '800' }); // renewal
    await h('del 52:54:00:bb:00:02 10.77.0.121');
    await h('tftp 74213 10.77.0.121 /srv/tftp/undionly.kpxe');
    await h('init');
    await h('old 52:54:00:bb:00:03 10.77.0.122', { DNSMASQ_DATA_MISSING: '1' }); // missed while the server was down
    expect(await until(() => consumer.stats().applied >= 6, 3000)).toBe(true);
    await consumer.idle();
    expect(consumer.stats()).toMatchObject({ applied: 6, known: 1, released: 1, replays: 1, discovered: 3, firstSeen: 2 });
    expect((await store.nodes.get('known1'))!.lastSeen).toBeNull();
    expect((await store.discovered.list()).map((m) => m.mac).sort()).toEqual(['52:54:00:bb:00:02', '52:54:00:bb:00:03']);
    expect(listener.stats()).toMatchObject({ accepted: 6, malformed: 0 });
  });

  it('hostile values (tabs, newlines, control and 8-bit bytes, huge fields) stay inside one bounded line', async () => {
    await runBash(`'${hook}' add 52:54:00:bb:00:04 10.77.0.123 "$H"`, {
      ...env,
      H: 'evil\tname\nFLEET1\tinjected',
      DNSMASQ_VENDOR_CLASS: `PXE\tClient\n${HOOK_MAGIC}\t${SECRET}\tadd\t52:54:00:66:66:66\t10.0.0.1\x01\u00e9`,
      DNSMASQ_SUPPLIED_HOSTNAME: 'x'.repeat(5000),
      DNSMASQ_TAGS: 'a '.repeat(3000),
    });
    expect(await until(() => consumer.stats().applied >= 1, 2000)).toBe(true);
    await consumer.idle();
    expect(await store.discovered.get('52:54:00:66:66:66')).toBeNull();
    const m = await store.discovered.get('52:54:00:bb:00:04');
    expect(m).not.toBeNull();
    expect(m!.hostname).toBeNull();
    expect(m!.vendorClass).not.toMatch(/[\t\n\x00-\x1f\x7f-\xff]/);
    expect(listener.stats()).toMatchObject({ lines: 1, accepted: 1, malformed: 0, tooLong: 0 });
  });

  it('malformed, unauthenticated and over-long lines are counted and logged; the listener goes on', async () => {
    const fifo = path.join(dir, 'events.fifo');
    const junk = [
      'garbage',
      line({ secret: 'wrong-secret-wrong-secret-x' }),
      'A'.repeat(10_000),
      line({ mac: 'not-a-mac' }),
      '\x00\x01\x02\xff',
      line({ mac: '52:54:00:bb:00:05' }).replace(SECRET, SECRET),
    ].join('\n');
    await fs.writeFile(path.join(dir, 'junk'), `${junk}\n`);
    await runBash(`cat '${path.join(dir, 'junk')}' > '${fifo}'`);
    expect(await until(() => listener.stats().lines >= 6, 2000)).toBe(true);
    await consumer.idle();
    expect(listener.stats()).toMatchObject({ lines: 6, accepted: 1, malformed: 3, unauthenticated: 1, tooLong: 1 });
    expect(warnings.length).toBe(5);
    expect(await store.discovered.get('52:54:00:bb:00:05')).not.toBeNull();
  });

  it('1000 events written at once all land (no loss), fast', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const mac = `52:54:01:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
      lines.push(line({ mac, ip: `10.77.${(i >> 8) + 4}.${i & 255}` }));
    }
    await fs.writeFile(path.join(dir, 'burst'), `${lines.join('\n')}\n`); // ~140 KB: more than a pipe holds
    const t0 = performance.now();
    const w = runBash(`cat '${path.join(dir, 'burst')}' > '${path.join(dir, 'events.fifo')}'`);
    expect(await until(() => consumer.stats().applied >= 1000, 15_000)).toBe(true);
    const secs = (performance.now() - t0) / 1000;
    await w;
    expect((await store.discovered.list()).length).toBe(1000);
    expect(consumer.stats()).toMatchObject({ firstSeen: 1000, failed: 0 });
    console.log(`discovery unit burst: 1000 events applied in ${secs.toFixed(2)} s (${Math.round(1000 / secs)} events/s)`);
  });

  // Correctness only: every run lands. How fast hook runs go is the discovery benchmark's business
  // (bench/discovery.ts, against real dnsmasq), not a unit test's: a timed test failed under load.
  it('300 hook runs in a row (as dnsmasq would run them) all land', async () => {
    const t0 = performance.now();
    const r = await runBash(
      `for i in $(seq 0 299); do '${hook}' add "$(printf '52:54:02:00:%02x:%02x' $((i/256)) $((i%256)))" "10.77.$((i/256+8)).$((i%256))"; done`,
      { ...env, DNSMASQ_TAGS: 'bios br0', DNSMASQ_VENDOR_CLASS: 'PXEClient:Arch:00000:UNDI:002001' },
    );
    expect(r.code).toBe(0);
    expect(await until(() => consumer.stats().applied >= 300, 60_000)).toBe(true);
    expect((await store.discovered.list()).filter((m) => m.arch === 'bios').length).toBe(300);
    console.log(`discovery unit hook: 300 hook runs, all applied after ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  }, 180_000);
});

describe('backpressure: a slow store never loses events', () => {
  it('pauses the FIFO when the queue is full and resumes on drain', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleet-discovery-bp-'));
    const seen = new Set<string>();
    const slowStore = {
      nodes: { findByMac: async () => null, markSeen: async () => {} },
      discovered: {
        get: async () => null,
        record: async (obs: { mac: string }) => {
          await new Promise((r) => setTimeout(r, 1));
          seen.add(obs.mac);
          return { firstSeen: true, machine: {} as never };
        },
      },
    };
    const consumer = new DiscoveryConsumer({ store: slowStore as never, highWater: 50 });
    const listener = new DiscoveryListener({ fifo: path.join(dir, 'events.fifo'), sink: consumer, secret: SECRET });
    await listener.start();
    try {
      const lines: string[] = [];
      for (let i = 0; i < 600; i++) lines.push(line({ mac: `52:54:03:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` }));
      await fs.writeFile(path.join(dir, 'burst'), `${lines.join('\n')}\n`);
      await runBash(`cat '${path.join(dir, 'burst')}' > '${path.join(dir, 'events.fifo')}'`);
      expect(await until(() => seen.size >= 600, 20_000)).toBe(true);
      const s = consumer.stats();
      expect(s.applied).toBe(600);
      expect(listener.stats().pauses).toBeGreaterThan(0);
      // bounded: at most the high-water mark plus what one read of the pipe holds
      expect(s.maxQueued).toBeLessThan(50 + 65536 / 100);
    } finally {
      await listener.stop();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('a failing store is retried, then counted, and the consumer goes on', async () => {
    let calls = 0;
    const store = {
      nodes: { findByMac: async () => null, markSeen: async () => {} },
      discovered: {
        get: async () => null,
        record: async (obs: { mac: string }) => {
          calls++;
          if (obs.mac.endsWith(':01')) throw new Error('database is locked');
          return { firstSeen: true, machine: {} as never };
        },
      },
    };
    const consumer = new DiscoveryConsumer({ store: store as never, retryDelayMs: 1, logger: { info() {}, warn() {}, error() {} } });
    const ev = (mac: string): LeaseEvent => {
      const r = parseHookLine(line({ mac }), SECRET_BUF);
      if (!r.ok) throw new Error('bad line');
      return r.event;
    };
    consumer.push(ev('52:54:00:00:00:01'));
    consumer.push(ev('52:54:00:00:00:02'));
    await consumer.idle();
    expect(consumer.stats()).toMatchObject({ failed: 1, applied: 1 });
    expect(calls).toBe(4);
  });
});
