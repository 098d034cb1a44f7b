/**
 * Lifecycle simulator and benchmark (issue 6).
 *
 * Simulated nodes drive reinstalls through the real Conductor and a real
 * SQLite store (a file in a temp dir), with compressed timings:
 *   - a BMC double (the conductor's Steps): power and boot-device state per
 *     node, a one-time override that the next boot consumes, and the audit
 *     events runBmcOperation writes;
 *   - a PXE client double: on a network boot it asks the real boot decision
 *     (netboot/decide.ts) and writes the events the boot endpoints write
 *     (boot.script_fetched, boot.kickstart_fetched, install.*), then signals
 *     the conductor as the boot service's recorder does;
 *   - an agent double: enrols during the install (%post), reports its boot
 *     and its apply through the agents repository, and signals the
 *     conductor as the agent services do (server/agents, through the recorder).
 * Then it checks the events table: every node's transitions are exactly the
 * reinstall path (nothing lost, nothing twice) and no node was power-cycled
 * twice. Every wait is bounded: the run stops by itself (maxWallMs).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/lifecycle.js 10000
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { PowerState } from '../server/bmc/types.js';
import { FleetError } from '../common/errors.js';
import { Conductor, type ConductorOptions } from '../server/lifecycle/conductor.js';
import { FACT as SIGNAL } from '../server/lifecycle/facts.js';
import { LIFECYCLE_EVENT_KINDS, REINSTALL_PATH, S, STEP, TRANSIENT_STATES } from '../server/lifecycle/states.js';
import type { Steps } from '../server/lifecycle/steps.js';
import type { ProfileSpec } from '../server/model.js';
import { decideBoot } from '../server/netboot/decide.js';
import { openStore, type NodeRecord, type Store } from '../server/store/index.js';

export type Range = readonly [number, number];

export interface SimTimings {
  /** Each BMC call. */
  bmcMs: Range;
  /** Power-on self test until the network boot or the disk boot. */
  postMs: Range;
  /** iPXE script → kickstart fetch. */
  netbootMs: Range;
  /** The install itself. */
  installMs: Range;
  /** install-finished → the installer's reboot reaches the firmware. */
  rebootMs: Range;
  /** Agent start → roles applied. */
  applyMs: Range;
}

export const COMPRESSED_TIMINGS: SimTimings = {
  bmcMs: [0, 2],
  postMs: [2, 20],
  netbootMs: [1, 10],
  installMs: [10, 60],
  rebootMs: [2, 20],
  applyMs: [2, 20],
};

const SIM_ACTOR = 'sim';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface SimNodeState {
  name: string;
  mac: string;
  power: PowerState;
  /** One-time boot override pending (consumed by the next boot). */
  override: 'pxe' | null;
  /** Persistent boot device. */
  persistent: 'pxe' | 'disk';
  /** What the disk holds. */
  disk: 'old' | 'new';
  bootSeq: number;
  powerActions: number;
  bootdevActions: number;
  netboots: number;
  installs: number;
}

export interface SimOptions {
  timings?: Partial<SimTimings>;
  /** Persistent boot device of every node at the start (network-first machines: 'pxe'). Default 'disk'. */
  persistent?: 'pxe' | 'disk';
  /** Random source (tests pin it). */
  random?: () => number;
}

/**
 * The simulated machines and their BMCs. `steps` is the conductor's Steps
 * double; `attach(conductor)` connects the PXE and agent doubles to it.
 */
export class SimWorld {
  readonly nodes = new Map<string, SimNodeState>();
  readonly steps: Steps;
  private conductor: Conductor | undefined;
  private readonly timings: SimTimings;
  private readonly random: () => number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  /** Errors the doubles met (a correct run has none). */
  readonly errors: string[] = [];

  constructor(
    private readonly store: Store,
    private readonly profile: ProfileSpec,
    opts: SimOptions = {},
  ) {
    this.timings = { ...COMPRESSED_TIMINGS, ...opts.timings };
    this.random = opts.random ?? Math.random;
    const world = this;
    const persistent = opts.persistent ?? 'disk';
    this.defaultPersistent = persistent;
    this.steps = {
      async armPxe(node) {
        const n = world.node(node);
        await world.delay(world.timings.bmcMs);
        n.override = 'pxe';
        n.bootdevActions++;
        await world.audit(node, 'bmc.bootdev', 'bootdev pxe once');
      },
      async powerCycle(node) {
        const n = world.node(node);
        await world.delay(world.timings.bmcMs);
        const wasOff = n.power === 'off';
        n.power = 'on';
        n.powerActions++;
        await world.audit(node, 'bmc.power', wasOff ? 'power on' : 'power cycle');
        world.later(world.timings.postMs, () => world.boot(node));
        return wasOff ? 'on' : 'cycle';
      },
      async powerOn(node) {
        const n = world.node(node);
        await world.delay(world.timings.bmcMs);
        n.power = 'on';
        n.powerActions++;
        await world.audit(node, 'bmc.power', 'power on');
        world.later(world.timings.postMs, () => world.boot(node));
      },
      async powerStatus(node) {
        await world.delay(world.timings.bmcMs);
        return world.node(node).power;
      },
      async flipToDisk(node) {
        const n = world.node(node);
        await world.delay(world.timings.bmcMs);
        n.persistent = 'disk';
        n.override = null;
        n.bootdevActions++;
        await world.audit(node, 'bmc.bootdev', 'bootdev disk persistent');
      },
    };
  }

  private readonly defaultPersistent: 'pxe' | 'disk';

  add(name: string, mac: string): void {
    this.nodes.set(name, {
      name,
      mac,
      power: 'on',
      override: null,
      persistent: this.defaultPersistent,
      disk: 'old',
      bootSeq: 0,
      powerActions: 0,
      bootdevActions: 0,
      netboots: 0,
      installs: 0,
    });
  }

  attach(conductor: Conductor): void {
    this.conductor = conductor;
  }

  /** Cancels every pending simulated action. */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  node(name: string): SimNodeState {
    const n = this.nodes.get(name);
    if (!n) throw new FleetError('node.not_found', `no simulated node ${name}`);
    return n;
  }

  private pick(r: Range): number {
    return r[0] + Math.floor(this.random() * (r[1] - r[0] + 1));
  }

  private async delay(r: Range): Promise<void> {
    const ms = this.pick(r);
    if (ms > 0) await sleep(ms);
  }

  private later(r: Range, fn: () => Promise<void>): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.stopped) return;
      fn().catch((e: unknown) => this.errors.push(`${(e as Error).message}`));
    }, this.pick(r));
    this.timers.add(t);
  }

  private async audit(node: string, kind: string, operation: string): Promise<void> {
    await this.store.events.append({ node, kind, actor: 'lifecycle', details: { operation, outcome: 'ok', provider: 'sim', attempts: 1, durationMs: 1 } });
  }

  /** What the boot endpoints and the agent services do: write the event, then signal. */
  private async report(node: string, kind: string, details: Record<string, unknown>): Promise<void> {
    await this.store.events.append({ node, kind, actor: 'netboot', details });
    await this.conductor?.signal(node, kind, details);
  }

  /** The firmware boots: the one-time override first, else the persistent device. */
  async boot(name: string): Promise<void> {
    const n = this.node(name);
    n.bootSeq++;
    const dev = n.override ?? n.persistent;
    n.override = null;
    if (dev === 'pxe') await this.netboot(name);
    else await this.diskBoot(name, 'disk');
  }

  private async netboot(name: string): Promise<void> {
    const n = this.node(name);
    n.netboots++;
    const rec = await this.store.nodes.get(name);
    if (!rec) return;
    const decision = decideBoot({ node: bootNode(rec), mac: n.mac, profile: this.profile, server: 'http://10.10.0.1:8080' });
    const details: Record<string, unknown> = { decision: decision.kind, mac: n.mac, ip: '10.10.0.2' };
    if (decision.kind === 'localboot') {
      details.reason = decision.reason;
      details.method = decision.method;
      if (decision.flag) details.flag = decision.flag;
    }
    if (decision.kind === 'install') details.profile = decision.profile;
    await this.report(name, SIGNAL.scriptFetched, details);
    if (decision.kind === 'localboot' && decision.flag) {
      await this.store.events.append({ node: name, kind: SIGNAL.loopSuspect, actor: 'netboot', details: { reason: decision.reason, state: rec.state } });
    }
    if (decision.kind !== 'install') {
      await this.diskBoot(name, 'network');
      return;
    }
    this.later(this.timings.netbootMs, () => this.install(name));
  }

  private async install(name: string): Promise<void> {
    const n = this.node(name);
    const rec = await this.store.nodes.get(name);
    if (!rec?.armed) {
      await this.store.events.append({ node: name, kind: 'boot.kickstart_refused', actor: 'netboot', details: { reason: `${name} is not armed for install` } });
      return;
    }
    n.installs++;
    await this.report(name, SIGNAL.kickstartFetched, { ip: '10.10.0.2' });
    await this.report(name, SIGNAL.installStarted, { ip: '10.10.0.2' });
    const bootSeq = n.bootSeq;
    this.later(this.timings.installMs, async () => {
      if (n.bootSeq !== bootSeq) return; // power-cycled meanwhile: this install is gone
      // %post: the agent enrols.
      await this.store.agents.recordEnrolment(
        name,
        {
          certSerial: randomBytes(8).toString('hex'),
          certFingerprint: randomBytes(16).toString('hex'),
          certPem: '-----BEGIN CERTIFICATE-----\nsim\n-----END CERTIFICATE-----\n',
          certNotAfter: '2099-01-01T00:00:00.000Z',
          keySha256: 'sim',
          identity: { serial: `SIM-${name}`, uuid: '00000000-0000-0000-0000-000000000000', macs: [n.mac], hostname: name },
        },
        { actor: `node:${name}`, cause: 'enroll' },
      );
      await this.conductor?.signal(name, SIGNAL.agentEnrolled, {});
      n.disk = 'new';
      await this.report(name, SIGNAL.installFinished, { ip: '10.10.0.2' });
      // The kickstart's `reboot`.
      this.later(this.timings.rebootMs, () => this.boot(name));
    });
  }

  private async diskBoot(name: string, via: 'disk' | 'network'): Promise<void> {
    const n = this.node(name);
    if (n.disk !== 'new') return; // the old system: its agent's reports do not move the lifecycle (not simulated)
    const bootId = `${name}-${n.bootSeq}`;
    const assessment = { rootOnLocalDisk: true, firmwareEntry: null, firmwareVia: via === 'network' ? 'network' : 'disk', bootNextPending: null, networkFirst: null, notes: [] };
    const fresh = await this.store.agents.recordBoot(name, bootId, { assessment }, { actor: `node:${name}` });
    await this.conductor?.signal(name, SIGNAL.agentBoot, { bootId, assessment, isNewBoot: fresh });
    this.later(this.timings.applyMs, async () => {
      const details = { results: [{ role: 'repos', outcome: 'ok', message: '', durationMs: 1 }], failed: [] };
      await this.store.agents.recordApply(name, 'sha256:sim', false, details, { actor: `node:${name}` });
      await this.conductor?.signal(name, SIGNAL.agentApplied, { version: 'sha256:sim', ...details });
    });
  }
}

function bootNode(rec: NodeRecord): { name: string; state: string; armed: boolean; profile: string } {
  return { name: rec.name, state: rec.state, armed: rec.armed, profile: rec.profile };
}

export const SIM_PROFILE: ProfileSpec = {
  name: 'compute',
  os: { install: 'kickstart', tree: 'http://10.10.0.1/repo/alma9/os' },
  kernelArgs: [],
  packages: [],
  sshKeys: [],
  roles: {},
};

export function simNodeName(i: number, width: number): string {
  return `sim${String(i + 1).padStart(width, '0')}`;
}

export function simMac(i: number): string {
  const b = [0x52, 0x54, 0x00, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export interface LifecycleBenchOptions {
  /** Simulated nodes. Default 10,000. */
  nodes?: number;
  /** Where the SQLite file goes (a fresh temp dir when absent; removed afterwards unless keep). */
  dir?: string;
  keep?: boolean;
  /** At most `count` power cycles per `intervalMs`. Default 500 per 25 ms. */
  stagger?: { count: number; intervalMs: number };
  timings?: Partial<SimTimings>;
  /** Conductor options over the bench's (tick 10 ms, long timeouts). */
  conductor?: Partial<Omit<ConductorOptions, 'store' | 'steps'>>;
  /** The run stops after this long even when nodes are still in flight. Default 10 min. */
  maxWallMs?: number;
  /** Where the table goes. Default stdout; null: nowhere. */
  print?: ((text: string) => void) | null;
  random?: () => number;
}

export interface LifecycleBenchResult {
  nodes: number;
  wallMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  /** (user + system CPU of this process) / nodes. */
  cpuPerLifecycleMs: number;
  events: number;
  eventsPerSecond: number;
  transitions: number;
  expectedTransitions: number;
  ready: number;
  failed: number;
  /** Nodes that did not reach ready. */
  lost: number;
  /** Transitions seen more than once (a node that went through a state twice). */
  duplicated: number;
  /** Nodes whose transitions are not exactly the reinstall path. */
  wrongPath: number;
  /** Nodes with more than one power action (events table or BMC double). */
  powerTwice: number;
  /** Nodes power-cycled more than once by the conductor (lifecycle.step_started power-cycle). */
  powerStepTwice: number;
  simErrors: string[];
  timedOut: boolean;
  table: string;
}

/** Runs `nodes` reinstalls through the real conductor and store; prints and returns the figures. */
export async function runLifecycleBench(opts: LifecycleBenchOptions = {}): Promise<LifecycleBenchResult> {
  const count = opts.nodes ?? 10_000;
  const maxWallMs = opts.maxWallMs ?? 10 * 60_000;
  const dir = opts.dir ?? mkdtempSync(path.join(tmpdir(), 'fleet-bench-'));
  const file = path.join(dir, 'fleet.db');
  const store = await openStore({ file }, { secretKey: randomBytes(32) });
  const world = new SimWorld(store, SIM_PROFILE, { ...(opts.timings ? { timings: opts.timings } : {}), ...(opts.random ? { random: opts.random } : {}) });
  let conductor: Conductor | undefined;
  try {
    await store.profiles.upsert(SIM_PROFILE, { actor: SIM_ACTOR });
    const width = String(count).length;
    const names: string[] = [];
    for (let i = 0; i < count; i++) {
      const name = simNodeName(i, width);
      names.push(name);
      world.add(name, simMac(i));
    }
    for (let i = 0; i < names.length; i += 1000) {
      await store.nodes.upsertMany(
        names.slice(i, i + 1000).map((name, j) => ({ name, profile: SIM_PROFILE.name, macs: [simMac(i + j)], pet: false })),
        { actor: SIM_ACTOR },
      );
    }
    const longTimeouts = Object.fromEntries(TRANSIENT_STATES.map((s) => [s, 3600]));
    conductor = new Conductor({
      store,
      steps: world.steps,
      owner: 'bench',
      tickMs: 10,
      dueBatch: 2000,
      maxConcurrent: 512,
      lockWaitMs: 120_000,
      sweepIntervalMs: 0,
      settings: { timeouts: longTimeouts, retryDelayMs: 10 },
      ...opts.conductor,
    });
    world.attach(conductor);
    await conductor.start();

    const firstEvent = await store.events.lastId();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const stagger = opts.stagger ?? { count: 500, intervalMs: 25 };
    const results = await conductor.reinstall(names, { actor: SIM_ACTOR, stagger });
    const refused = results.filter((r) => !r.ok);
    if (refused.length) throw new Error(`reinstall refused ${refused.length} nodes: ${refused[0]?.error?.message}`);

    // Wait until every node rests again (bounded), following the events table by cursor (cheap).
    let timedOut = false;
    const rested = new Set<string>();
    let cursor = firstEvent;
    for (;;) {
      for (let pages = 0; pages < 1000; pages++) {
        const page = await store.events.list({ kinds: ['state.changed'], afterId: cursor, limit: 1000 });
        for (const e of page.events) {
          cursor = e.id;
          if (e.node && (e.toState === S.ready || e.toState === S.failed || e.toState === S.enrolled)) rested.add(e.node);
          else if (e.node) rested.delete(e.node);
        }
        if (page.nextCursor === null) break;
      }
      if (rested.size >= count) break;
      if (performance.now() - t0 > maxWallMs) {
        timedOut = true;
        break;
      }
      await sleep(count > 1000 ? 100 : 10);
    }
    await conductor.idle();
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const lastEvent = await store.events.lastId();
    await conductor.stop();
    world.stop();

    // --- verification from the events table
    const transitions = new Map<string, string[]>();
    const power = new Map<string, number>();
    const powerSteps = new Map<string, number>();
    let after = firstEvent;
    for (let pages = 0; pages < 1_000_000; pages++) {
      const page = await store.events.list({ afterId: after, kinds: ['state.changed', 'bmc.power', LIFECYCLE_EVENT_KINDS.stepStarted], limit: 1000 });
      for (const e of page.events) {
        const node = e.node ?? '';
        if (e.kind === 'state.changed') {
          const list = transitions.get(node) ?? [];
          list.push(`${e.fromState}>${e.toState}`);
          transitions.set(node, list);
        } else if (e.kind === 'bmc.power') power.set(node, (power.get(node) ?? 0) + 1);
        else if ((e.details as { step?: string } | null)?.step === STEP.powerCycle) powerSteps.set(node, (powerSteps.get(node) ?? 0) + 1);
      }
      if (page.nextCursor === null) break;
      after = page.nextCursor;
    }
    const expected: string[] = [];
    let prev: string = S.enrolled;
    for (const s of REINSTALL_PATH) {
      expected.push(`${prev}>${s}`);
      prev = s;
    }
    let wrongPath = 0;
    let duplicated = 0;
    let total = 0;
    let powerTwice = 0;
    let powerStepTwice = 0;
    for (const name of names) {
      const seq = transitions.get(name) ?? [];
      total += seq.length;
      if (seq.length !== expected.length || seq.some((x, i) => x !== expected[i])) wrongPath++;
      duplicated += seq.length - new Set(seq).size;
      if ((power.get(name) ?? 0) > 1 || world.node(name).powerActions > 1) powerTwice++;
      if ((powerSteps.get(name) ?? 0) > 1) powerStepTwice++;
    }
    const finals = await store.nodes.list({ names });
    const ready = finals.filter((n) => n.state === S.ready).length;
    const failed = finals.filter((n) => n.state === S.failed).length;
    const events = lastEvent - firstEvent;
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const result: LifecycleBenchResult = {
      nodes: count,
      wallMs,
      cpuUserMs: cpu.user / 1000,
      cpuSystemMs: cpu.system / 1000,
      cpuPerLifecycleMs: cpuMs / count,
      events,
      eventsPerSecond: events / (wallMs / 1000),
      transitions: total,
      expectedTransitions: count * expected.length,
      ready,
      failed,
      lost: count - ready,
      duplicated,
      wrongPath,
      powerTwice,
      powerStepTwice,
      simErrors: world.errors.slice(0, 20),
      timedOut,
      table: '',
    };
    result.table = formatBenchTable(result, { file, stagger });
    if (opts.print !== null) (opts.print ?? ((t: string) => process.stdout.write(t + '\n')))(result.table);
    return result;
  } finally {
    world.stop();
    conductor?.halt();
    await store.close();
    if (!opts.keep && !opts.dir) rmSync(dir, { recursive: true, force: true });
  }
}

export function formatBenchTable(r: LifecycleBenchResult, ctx: { file: string; stagger: { count: number; intervalMs: number } }): string {
  const n = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const rows: [string, string][] = [
    ['nodes (reinstalls)', n(r.nodes)],
    ['store', `SQLite file (WAL) ${ctx.file}`],
    ['stagger', `${ctx.stagger.count} per ${ctx.stagger.intervalMs} ms`],
    ['wall time', `${n(r.wallMs / 1000, 2)} s${r.timedOut ? ' (stopped at the time limit)' : ''}`],
    ['CPU (user + system)', `${n((r.cpuUserMs + r.cpuSystemMs) / 1000, 2)} s (${n(r.cpuUserMs / 1000, 2)} + ${n(r.cpuSystemMs / 1000, 2)})`],
    ['CPU per lifecycle', `${n(r.cpuPerLifecycleMs, 2)} ms`],
    ['events written', `${n(r.events)} (${n(r.eventsPerSecond)} /s)`],
    ['transitions', `${n(r.transitions)} (expected ${n(r.expectedTransitions)})`],
    ['ready / failed', `${n(r.ready)} / ${n(r.failed)}`],
    ['lost / duplicated', `${n(r.lost)} / ${n(r.duplicated)}`],
    ['wrong path', n(r.wrongPath)],
    ['power action twice', `${n(r.powerTwice)} (power-cycle step twice: ${n(r.powerStepTwice)})`],
  ];
  if (r.simErrors.length) rows.push(['simulator errors', r.simErrors.join('; ')]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return ['lifecycle benchmark (simulated BMC, PXE client and agent; real conductor and store)', ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`)].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const nodes = Number(process.argv[2] ?? 10_000);
  const r = await runLifecycleBench({ nodes });
  process.exitCode = r.lost === 0 && r.duplicated === 0 && r.wrongPath === 0 && r.powerTwice === 0 ? 0 : 1;
}
