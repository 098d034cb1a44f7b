/**
 * Test doubles for the lifecycle (used by the unit tests; handy for
 * integration tests too): a scripted BMC double implementing Steps, a
 * pinned clock, and a harness with a real in-memory store and conductors.
 * Kept under test/, out of the production tree.
 */
import { randomBytes } from 'node:crypto';
import type { PowerState } from '../../server/bmc/types.js';
import type { FleetError } from '../../common/errors.js';
import { Conductor, type ConductorOptions } from '../../server/lifecycle/conductor.js';
import type { Steps } from '../../server/lifecycle/steps.js';
import type { ProfileSpec } from '../../server/model.js';
import { openStore, type Store } from '../../server/store/index.js';

export type Op = 'armPxe' | 'powerCycle' | 'powerOn' | 'powerStatus' | 'flipToDisk';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * A BMC double: power per node (default on), every call recorded, errors to
 * throw queued per (op, node), and gates that hold a call (a crash in the
 * middle of a step when the conductor is halted meanwhile).
 */
export class FakeBmc implements Steps {
  readonly power = new Map<string, PowerState>();
  readonly calls: string[] = [];
  private readonly errors = new Map<string, FleetError[]>();
  private readonly gates = new Map<string, { gate: Deferred; entered: Deferred; mode: 'before' | 'after-off' | 'after' }>();

  count(op: Op, node?: string): number {
    return this.calls.filter((c) => c === (node ? `${op} ${node}` : c) && c.startsWith(`${op} `)).length;
  }

  failNext(op: Op, node: string, ...errs: FleetError[]): void {
    this.errors.set(`${op} ${node}`, [...(this.errors.get(`${op} ${node}`) ?? []), ...errs]);
  }

  /** Holds the next call of op on node: 'before' acting, 'after-off' (power cycle: off, not on yet), 'after' acting. */
  hold(op: Op, node: string, mode: 'before' | 'after-off' | 'after' = 'before'): { entered: Promise<void>; release: () => void } {
    const g = { gate: deferred(), entered: deferred(), mode };
    this.gates.set(`${op} ${node}`, g);
    return { entered: g.entered.promise, release: g.gate.resolve };
  }

  private async call(op: Op, node: string, act: () => void): Promise<void> {
    this.calls.push(`${op} ${node}`);
    const key = `${op} ${node}`;
    const g = this.gates.get(key);
    if (g) this.gates.delete(key);
    if (g?.mode === 'before') {
      g.entered.resolve();
      await g.gate.promise;
    }
    const err = this.errors.get(key)?.shift();
    if (err) throw err;
    if (g?.mode === 'after-off') {
      this.power.set(node, 'off');
      g.entered.resolve();
      await g.gate.promise;
    }
    act();
    if (g?.mode === 'after') {
      g.entered.resolve();
      await g.gate.promise;
    }
  }

  async armPxe(node: string): Promise<void> {
    await this.call('armPxe', node, () => undefined);
  }
  async powerCycle(node: string): Promise<'cycle' | 'on'> {
    const wasOff = this.power.get(node) === 'off';
    await this.call('powerCycle', node, () => this.power.set(node, 'on'));
    return wasOff ? 'on' : 'cycle';
  }
  async powerOn(node: string): Promise<void> {
    await this.call('powerOn', node, () => this.power.set(node, 'on'));
  }
  async powerStatus(node: string): Promise<PowerState> {
    let p: PowerState = 'on';
    await this.call('powerStatus', node, () => {
      p = this.power.get(node) ?? 'on';
    });
    return p;
  }
  async flipToDisk(node: string): Promise<void> {
    await this.call('flipToDisk', node, () => undefined);
  }
}

export const PROFILE: ProfileSpec = { name: 'compute', os: { install: 'kickstart', tree: 'http://10.10.0.1/repo/os' }, kernelArgs: [], packages: [], sshKeys: [], roles: {} };
export const OTHER_PROFILE: ProfileSpec = { ...PROFILE, name: 'gpu' };
export const T0 = Date.parse('2030-01-01T00:00:00.000Z');

export class Clock {
  ms = T0;
  readonly now = (): Date => new Date(this.ms);
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export interface Harness {
  store: Store;
  clock: Clock;
  bmc: FakeBmc;
  c: Conductor;
  conductor(opts?: Partial<ConductorOptions> & { bmc?: FakeBmc }): Conductor;
  /** What the boot endpoints / agent services do: write the fact, then signal. */
  fact(node: string, kind: string, details?: Record<string, unknown>, via?: Conductor): ReturnType<Conductor['signal']>;
  /** Writes the fact only (the server died before the signal). */
  factOnly(node: string, kind: string, details?: Record<string, unknown>): Promise<void>;
  enrol(node: string): Promise<void>;
  transitions(node: string): Promise<string[]>;
  eventKinds(node: string): Promise<string[]>;
  /** Puts a node in a state directly (test setup, as if a conductor had). */
  put(node: string, state: string, opts?: { armed?: boolean; deadlineSeconds?: number }): Promise<void>;
  close(): Promise<void>;
}

export async function harness(opts: { nodes?: string[]; pets?: string[]; conductor?: Partial<ConductorOptions>; store?: Store; clock?: Clock } = {}): Promise<Harness> {
  const clock = opts.clock ?? new Clock();
  const store = opts.store ?? (await openStore({ memory: true }, { secretKey: randomBytes(32), clock: clock.now }));
  if (!opts.store) {
    await store.profiles.upsert(PROFILE, { actor: 't' });
    await store.profiles.upsert(OTHER_PROFILE, { actor: 't' });
    const names = opts.nodes ?? ['n1'];
    await store.nodes.upsertMany(
      [...names, ...(opts.pets ?? [])].map((name, i) => ({
        name,
        profile: PROFILE.name,
        macs: [`52:54:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`],
        pet: (opts.pets ?? []).includes(name),
      })),
      { actor: 't' },
    );
  }
  const bmc = new FakeBmc();
  const conductors: Conductor[] = [];
  const make = (o: Partial<ConductorOptions> & { bmc?: FakeBmc } = {}): Conductor => {
    const { bmc: b, ...rest } = o;
    const c = new Conductor({
      store,
      steps: b ?? bmc,
      clock: clock.now,
      sleep: async () => undefined,
      lockWaitMs: 300,
      tickMs: 60_000,
      sweepIntervalMs: 0,
      ...opts.conductor,
      ...rest,
    });
    conductors.push(c);
    return c;
  };
  const c = make();
  const h: Harness = {
    store,
    clock,
    bmc,
    c,
    conductor: make,
    async fact(node, kind, details = {}, via = c) {
      await store.events.append({ node, kind, actor: 'test', details });
      return via.signal(node, kind, details);
    },
    async factOnly(node, kind, details = {}) {
      await store.events.append({ node, kind, actor: 'test', details });
    },
    async enrol(node) {
      await store.agents.recordEnrolment(
        node,
        {
          certSerial: randomBytes(4).toString('hex'),
          certFingerprint: randomBytes(8).toString('hex'),
          certPem: 'pem',
          certNotAfter: '2099-01-01T00:00:00.000Z',
          keySha256: 'k',
          identity: { serial: 's', uuid: 'u', macs: [], hostname: node },
        },
        { actor: `node:${node}` },
      );
    },
    async transitions(node) {
      const page = await store.events.list({ node, kinds: ['state.changed'], limit: 1000 });
      return page.events.map((e) => `${e.fromState}>${e.toState}`);
    },
    async eventKinds(node) {
      return (await store.events.list({ node, limit: 1000 })).events.map((e) => e.kind);
    },
    async put(node, state, o = {}) {
      const deadline = o.deadlineSeconds !== undefined ? new Date(clock.ms + o.deadlineSeconds * 1000).toISOString() : null;
      await store.nodes.setState(node, state, { actor: 'setup', deadline, details: { event: 'setup' } });
      if (o.armed !== undefined) await store.nodes.setArmed(node, o.armed, { actor: 'setup' });
    },
    async close() {
      for (const x of conductors) {
        x.halt();
      }
      if (!opts.store) await store.close();
    },
  };
  return h;
}

/** Agent boot details as the agent services tell them (server/agents/reports.ts). */
export function diskBoot(bootId = 'boot-1', via: 'disk' | 'network' = 'disk'): Record<string, unknown> {
  return { bootId, isNewBoot: true, assessment: { rootOnLocalDisk: true, firmwareVia: via, firmwareEntry: via === 'network' ? { id: '0003', label: 'PXE IPv4' } : null, notes: [] } };
}
