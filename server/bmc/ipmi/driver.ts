/**
 * IpmiDriver: the BmcDriver contract over the native RMCP+ client.
 *
 * One driver per BMC, many drivers per IpmiTransport (one UDP socket).
 * Operations on one driver run one at a time and share one session, opened
 * on first use, reopened after `sessionIdleMs` idle or after a failure, and
 * closed by close(). Every verb is idempotent: power verbs read the chassis
 * status first and do nothing when the node is already there.
 *
 * Power off, soft, cycle and reset go out once (retry.ts): Chassis Control is
 * never retransmitted for them. When its answer does not come in time, the
 * driver reads the power state back and fails with an "unconfirmed" bmc.timeout
 * saying what it read; it never sends the action again. Errors that prove the
 * action did not run (a refusal by completion code, a failure before it was
 * sent) are marked so, and only those may be retried by the caller.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { FleetError, isFleetError } from '../../../common/errors.js';
import { markNotRun, unconfirmedError } from '../retry.js';
import type { BmcDriver, BmcIdentity, BmcTarget, BootDevice, BootDeviceOptions, BootDeviceSetting, PowerState } from '../types.js';
import { IpmiClient } from './client.js';
import { ChassisControl, type ChassisControlCode, encodeBootFlags } from './commands.js';
import { PasswordOp, Priv, getChannelInfo, parseChannelInfo, getUserAccess, getUserName, parseUserAccess, parseUserName, setUserAccess, setUserName, setUserPassword, type PasswordSize, type UserSlot } from './users.js';
import { IpmiSession, type PrivilegeName } from './session.js';
import { type Endpoint, type IpmiTransport, remoteKeyOf } from './transport.js';

export interface IpmiDriverOptions {
  /** 3 (default) or 17. ipmi_sim only speaks 3. */
  cipherSuite?: 3 | 17;
  /** Session privilege; default administrator. */
  privilege?: PrivilegeName;
  /** Overall limit for one operation, session set-up included. Default 10 000 ms. */
  timeoutMs?: number;
  /** Reopen the session when it has been idle this long (BMCs expire idle sessions). Default 20 000 ms. */
  sessionIdleMs?: number;
  /**
   * When a session has been idle this long, the first command of the next
   * operation gets `staleProbeMs` to answer; if it does not, the session is
   * reopened and the operation retried (the first command of every verb is a
   * read or set-in-progress, safe to repeat). Defaults 5 000 and 1 500 ms.
   */
  staleAfterMs?: number;
  staleProbeMs?: number;
  /** Retransmit schedule; default the transport's (400, 800, 1600, 3200 ms). */
  retransmitMs?: number[];
  /** BMC key Kg, where the BMC has one configured. */
  kg?: Uint8Array;
  /**
   * Time kept at the end of an operation to read the power back after a
   * once-only Chassis Control got no answer. Default a third of timeoutMs,
   * at most 3 000 ms.
   */
  readBackMs?: number;
}

const ACTION_NAME: Readonly<Record<number, string>> = {
  [ChassisControl.POWER_DOWN]: 'power down',
  [ChassisControl.POWER_CYCLE]: 'power cycle',
  [ChassisControl.HARD_RESET]: 'hard reset',
  [ChassisControl.SOFT_SHUTDOWN]: 'soft shutdown',
};

export function createIpmiDriver(transport: IpmiTransport, target: BmcTarget, opts: IpmiDriverOptions = {}): IpmiDriver {
  return new IpmiDriver(transport, target, opts);
}

export class IpmiDriver implements BmcDriver {
  readonly protocol = 'ipmi' as const;
  /** RMCP+ sessions opened so far (observability; reuse keeps this at 1 for a busy driver). */
  sessionsOpened = 0;
  private session: IpmiSession | null = null;
  private lastUsed = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private endpoint: Endpoint | null = null;
  private readonly timeoutMs: number;
  private readonly idleMs: number;
  private readonly label: string;

  constructor(
    private readonly transport: IpmiTransport,
    private readonly target: BmcTarget,
    private readonly opts: IpmiDriverOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.idleMs = opts.sessionIdleMs ?? 20_000;
    this.label = remoteKeyOf(target.address, target.port);
  }

  powerStatus(): Promise<PowerState> {
    return this.run(async (c) => ((await c.chassisStatus()).powerOn ? 'on' : 'off'));
  }

  powerOn(): Promise<void> {
    return this.power((on) => (on ? null : ChassisControl.POWER_UP));
  }

  powerOff(): Promise<void> {
    return this.power((on) => (on ? ChassisControl.POWER_DOWN : null));
  }

  powerSoft(): Promise<void> {
    return this.power((on) => (on ? ChassisControl.SOFT_SHUTDOWN : null));
  }

  /** Off → on; on → cycle. */
  powerCycle(): Promise<void> {
    return this.power((on) => (on ? ChassisControl.POWER_CYCLE : ChassisControl.POWER_UP));
  }

  /** Off → on; on → hard reset. */
  powerReset(): Promise<void> {
    return this.power((on) => (on ? ChassisControl.HARD_RESET : ChassisControl.POWER_UP));
  }

  setBootDevice(device: BootDevice, options: BootDeviceOptions): Promise<void> {
    const flags = encodeBootFlags({ device, persistent: options.persistent, efi: options.mode === 'uefi' });
    return this.run((c) => c.setBootFlags(flags));
  }

  getBootDevice(): Promise<BootDeviceSetting> {
    return this.run(async (c) => {
      const f = await c.getBootFlags();
      const device = f.device ?? 'none';
      // A valid bit of 0 with a device still set: the BMC does not report the flags (ipmi_sim).
      if (!f.valid) return { device, persistent: null, mode: null };
      return { device, persistent: f.persistent, mode: f.efi ? 'uefi' : 'legacy' };
    });
  }

  identity(): Promise<BmcIdentity> {
    return this.run(async (c) => {
      const dev = await c.deviceId();
      const uuid = await c.systemGuid();
      const { fru, problem } = await c.readFruReport(0);
      const out: BmcIdentity = { bmcFirmware: dev.firmware, macs: [] };
      // A FRU that does not parse is said, not thrown: the GUID still identifies the machine.
      if (problem) out.notes = [problem];
      const manufacturer = fru?.product?.manufacturer ?? fru?.board?.manufacturer;
      const model = fru?.product?.name ?? fru?.board?.product;
      const serial = fru?.product?.serial ?? fru?.board?.serial;
      if (manufacturer) out.manufacturer = manufacturer;
      if (model) out.model = model;
      if (serial) out.serial = serial;
      if (uuid) out.uuid = uuid;
      return out;
    });
  }

  // ---- user accounts (credential rotation, ../rotate.ts); not in BmcDriver: only IPMI has them here

  /** The LAN channel this session runs on (Get Channel Info on "this channel"). */
  lanChannel(): Promise<number> {
    return this.run(async (c) => parseChannelInfo(await c.ok(getChannelInfo())).channel);
  }

  /** Every user slot on `channel`: id, name, enabled, privilege limit. A slot whose name cannot be read counts as empty. */
  listUsers(channel: number): Promise<UserSlot[]> {
    return this.run(async (c) => {
      const first = parseUserAccess(await c.ok(getUserAccess(channel, 1)));
      const slots: UserSlot[] = [];
      for (let id = 1; id <= first.maxUsers; id++) {
        const access = id === 1 ? first : parseUserAccess(await c.ok(getUserAccess(channel, id)));
        const nameRes = await c.raw(getUserName(id));
        const name = nameRes.completionCode === 0 ? parseUserName(nameRes.data) : '';
        slots.push({ id, name, enabled: access.enabled, privilege: access.privilege });
      }
      return slots;
    });
  }

  /** Writes an administrator account into `slot`: name, password, LAN access with IPMI messaging, enabled. */
  writeAccount(channel: number, slot: number, name: string, password: string, size: PasswordSize): Promise<void> {
    return this.run(async (c) => {
      await c.ok(setUserName(slot, name));
      await c.ok(setUserPassword(slot, PasswordOp.SET, password, size));
      await c.ok(setUserAccess(channel, slot, Priv.ADMINISTRATOR, true));
      await c.ok(setUserPassword(slot, PasswordOp.ENABLE));
    });
  }

  /** Takes `slot`'s LAN access away and disables it (its name and password stay: nothing a later rotation needs). */
  disableAccount(channel: number, slot: number): Promise<void> {
    return this.run(async (c) => {
      await c.ok(setUserAccess(channel, slot, Priv.NO_ACCESS, false));
      await c.ok(setUserPassword(slot, PasswordOp.DISABLE));
    });
  }

  async close(): Promise<void> {
    await this.queue;
    const s = this.session;
    this.session = null;
    if (!s || s.isClosed) return;
    try {
      await s.close({ deadline: Date.now() + Math.min(this.timeoutMs, 3000) });
    } catch {
      // The BMC will expire the session; nothing else to release.
    }
  }

  private power(decide: (on: boolean) => ChassisControlCode | null): Promise<void> {
    return this.run(async (c, deadline) => {
      let code: ChassisControlCode | null;
      try {
        code = decide((await c.chassisStatus()).powerOn);
      } catch (e) {
        // Nothing was sent yet: the caller may try again.
        throw isFleetError(e) ? markNotRun(e) : e;
      }
      if (code === null) return;
      if (code === ChassisControl.POWER_UP) return c.chassisControl(code);
      const readBackMs = this.opts.readBackMs ?? Math.min(3000, Math.floor(this.timeoutMs / 3));
      const answerBy = Math.max(Date.now() + 500, deadline - readBackMs);
      const sentAt = Date.now();
      try {
        await c.chassisControlOnce(code, answerBy);
      } catch (e) {
        if (!isFleetError(e)) throw e;
        // A completion code: the BMC answered and refused; the action did not run.
        if ((e.details as { completionCode?: unknown } | undefined)?.completionCode !== undefined) throw markNotRun(e);
        if (e.code !== 'bmc.timeout') throw e;
        throw await this.readBack(c, code, Date.now() - sentAt, Math.max(deadline, Date.now() + 1000));
      }
    });
  }

  /** After a once-only Chassis Control got no answer: what does the BMC show now? Never sends the action again. */
  private async readBack(c: IpmiClient, code: ChassisControlCode, waitedMs: number, deadline: number): Promise<FleetError> {
    const action = ACTION_NAME[code] ?? `chassis control ${code}`;
    const head = `IPMI Chassis Control (${action}) to ${this.label}: sent once, no answer within ${waitedMs} ms; not sent again, it may or may not have run`;
    try {
      const status = await c.chassisStatus(deadline);
      const power = status.powerOn ? 'on' : 'off';
      return unconfirmedError(`${head}; power read back: ${power}`, { power });
    } catch (e) {
      const why = isFleetError(e) ? e.message : String(e);
      return unconfirmedError(`${head}; power read back failed too: ${why}`, { power: null, error: why });
    }
  }

  private run<T>(fn: (c: IpmiClient, deadline: number) => Promise<T>): Promise<T> {
    const next = this.queue.then(() => this.exec(fn));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async exec<T>(fn: (c: IpmiClient, deadline: number) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    const retransmit = this.opts.retransmitMs ? { retransmitMs: this.opts.retransmitMs } : {};
    try {
      const previous = this.session;
      const idle = Date.now() - this.lastUsed;
      let session = await this.sessionBeforeCommands(deadline);
      const reused = session === previous && idle >= (this.opts.staleAfterMs ?? 5000);
      const firstDeadline = reused ? { firstDeadline: Date.now() + (this.opts.staleProbeMs ?? 1500) } : {};
      const client = new IpmiClient(session, { deadline, ...retransmit, ...firstDeadline });
      let result: T;
      try {
        result = await fn(client, deadline);
      } catch (e) {
        if (!client.firstCommandFailed || Date.now() >= deadline) throw e;
        // The BMC forgot the session (rebooted, expired it early): start over in a new one.
        this.dropSession();
        session = await this.sessionBeforeCommands(deadline);
        result = await fn(new IpmiClient(session, { deadline, ...retransmit }), deadline);
      }
      this.lastUsed = Date.now();
      return result;
    } catch (e) {
      const err = this.asFleetError(e);
      if (err.code === 'bmc.timeout' || err.code === 'bmc.protocol') this.dropSession();
      throw err;
    }
  }

  /** The session for an operation; a failure here comes before any command of it was sent (retry.ts: not run). */
  private async sessionBeforeCommands(deadline: number): Promise<IpmiSession> {
    try {
      return await this.ensureSession(deadline);
    } catch (e) {
      throw isFleetError(e) ? markNotRun(e) : e;
    }
  }

  private async ensureSession(deadline: number): Promise<IpmiSession> {
    if (this.session && !this.session.isClosed && Date.now() - this.lastUsed < this.idleMs) return this.session;
    this.dropSession();
    const endpoint = await this.resolve();
    this.session = await IpmiSession.open(this.transport, endpoint, {
      username: this.target.username,
      password: this.target.password,
      deadline,
      ...(this.opts.cipherSuite ? { cipherSuite: this.opts.cipherSuite } : {}),
      ...(this.opts.privilege ? { privilege: this.opts.privilege } : {}),
      ...(this.opts.kg ? { kg: this.opts.kg } : {}),
      ...(this.opts.retransmitMs ? { retransmitMs: this.opts.retransmitMs } : {}),
    });
    this.sessionsOpened++;
    this.lastUsed = Date.now();
    return this.session;
  }

  /** Forgets the current session; a best-effort Close Session goes out without waiting. */
  private dropSession(): void {
    const s = this.session;
    this.session = null;
    if (!s || s.isClosed) return;
    s.close({ deadline: Date.now() + 1000, retransmitMs: [1000] }).catch(() => undefined);
  }

  private async resolve(): Promise<Endpoint> {
    if (this.endpoint) return this.endpoint;
    const { address, port } = this.target;
    if (isIP(address)) {
      this.endpoint = { address, port };
    } else {
      try {
        const r = await lookup(address, { family: this.transport.family === 6 ? 0 : 4 });
        this.endpoint = { address: r.address, port };
      } catch {
        throw new FleetError('bmc.timeout', `IPMI: cannot resolve BMC address ${address}`);
      }
    }
    return this.endpoint;
  }

  /** Every error leaves as a FleetError; messages are built from addresses and user names only, never the password. */
  private asFleetError(e: unknown): FleetError {
    if (isFleetError(e)) return e;
    return new FleetError('internal', `IPMI ${this.label}: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
  }
}
