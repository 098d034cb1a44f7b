/**
 * Command-level IPMI client: typed helpers over one RMCP+ session
 * (chassis status/control, boot flags, device ID, GUID, FRU).
 * The transport (one UDP socket, many sessions) lives in transport.ts and the
 * RAKP handshake in session.ts; both are re-exported here.
 */
import { FleetError } from '../../../common/errors.js';
import {
  BootParam,
  type BootFlags,
  type ChassisControlCode,
  ChassisControl,
  type ChassisStatus,
  type CommandSpec,
  type DeviceId,
  chassisControl,
  decodeBootFlags,
  getChassisStatus,
  getDeviceId,
  getFruInventoryAreaInfo,
  getSystemBootOption,
  getSystemGuid,
  parseChassisStatus,
  parseDeviceId,
  parseFruInventoryAreaInfo,
  parseGetSystemBootOption,
  parseReadFruData,
  parseSystemGuid,
  readFruData,
  setSystemBootOption,
} from './commands.js';
import { type Fru, type FruBoard, type FruProduct, decodeFruBoard, decodeFruHeader, decodeFruProduct, fruAreaLength } from './fru.js';
import { type IpmiResponse, completionCodeText } from './message.js';
import { type CommandOptions, type IpmiSession, commandName } from './session.js';

export { IpmiTransport, type IpmiTransportOptions, type Endpoint } from './transport.js';
export { IpmiSession, type SessionOpenOptions, type PrivilegeName } from './session.js';

/** Throws bmc.command_failed (bmc.unsupported for "invalid command") unless the completion code is 0. */
export function expectOk(res: IpmiResponse, spec: CommandSpec, label: string): Buffer {
  if (res.completionCode === 0) return res.data;
  const code = res.completionCode === 0xc1 ? 'bmc.unsupported' : 'bmc.command_failed';
  const cc = `0x${res.completionCode.toString(16).padStart(2, '0')}`;
  throw new FleetError(code, `IPMI ${commandName(spec)} on ${label} failed: ${completionCodeText(res.completionCode)} (${cc})`, {
    completionCode: res.completionCode,
  });
}

export interface ClientOptions extends CommandOptions {
  /**
   * Deadline for the first command only. The driver sets it when it reuses a
   * session that sat idle: a BMC that rebooted has forgotten the session and
   * stays silent, and the driver would rather reopen early than wait out the
   * whole operation.
   */
  firstDeadline?: number;
}

export class IpmiClient {
  private sent = 0;
  /** True when the first command got no valid answer before `firstDeadline`. */
  firstCommandFailed = false;

  constructor(
    readonly session: IpmiSession,
    private readonly opts: ClientOptions,
  ) {}

  private get label(): string {
    return this.session.remoteKey;
  }

  async raw(spec: CommandSpec, retransmitMs?: number[], extra: { deadline?: number; once?: boolean } = {}): Promise<IpmiResponse> {
    const first = this.sent++ === 0 && this.opts.firstDeadline !== undefined;
    let deadline = first ? Math.min(this.opts.deadline, this.opts.firstDeadline!) : this.opts.deadline;
    if (extra.deadline !== undefined) deadline = Math.min(deadline, extra.deadline);
    const schedule = retransmitMs ?? this.opts.retransmitMs;
    const o: CommandOptions = { deadline, ...(schedule ? { retransmitMs: schedule } : {}), ...(extra.once ? { once: true } : {}) };
    try {
      return await this.session.command(spec, o);
    } catch (e) {
      if (first && e instanceof FleetError && (e.code === 'bmc.timeout' || e.code === 'bmc.protocol')) this.firstCommandFailed = true;
      throw e;
    }
  }

  async ok(spec: CommandSpec, retransmitMs?: number[], extra: { deadline?: number; once?: boolean } = {}): Promise<Buffer> {
    return expectOk(await this.raw(spec, retransmitMs, extra), spec, this.label);
  }

  /** Get Chassis Status; `deadline` may extend past the client's (the read-back after an unanswered action). */
  async chassisStatus(deadline?: number): Promise<ChassisStatus> {
    if (deadline === undefined) return parseChassisStatus(await this.ok(getChassisStatus()));
    const schedule = this.opts.retransmitMs;
    return parseChassisStatus(expectOk(await this.session.command(getChassisStatus(), { deadline, ...(schedule ? { retransmitMs: schedule } : {}) }), getChassisStatus(), this.label));
  }

  /**
   * Chassis Control, power up only (idempotent: a duplicate changes nothing).
   * Retransmits start at 1 s: BMCs (ipmi_sim with a hook included) may take a
   * while to answer.
   */
  async chassisControl(code: ChassisControlCode): Promise<void> {
    if (code !== ChassisControl.POWER_UP) throw new FleetError('internal', 'IPMI: only power up may be retransmitted; use chassisControlOnce');
    await this.ok(chassisControl(code), [1000, 2000]);
  }

  /**
   * Chassis Control sent exactly once, never retransmitted: a BMC that does
   * not recognise a retransmit (ipmi_sim runs every copy) would cycle, reset
   * or power off twice. Waits for the answer until `deadline`, then fails
   * with bmc.timeout; whether it landed is for the caller to read back.
   */
  async chassisControlOnce(code: ChassisControlCode, deadline: number): Promise<void> {
    await this.ok(chassisControl(code), undefined, { deadline, once: true });
  }

  /** Sets boot flags (parameter 5) the way ipmitool does: set-in-progress, ack, flags, set-complete. */
  async setBootFlags(flags: Buffer): Promise<void> {
    // Set-in-progress and boot-info-ack are optional: BMCs that lack them still take parameter 5.
    const inProgress = await this.raw(setSystemBootOption(BootParam.SET_IN_PROGRESS, Buffer.from([0x01])));
    await this.raw(setSystemBootOption(BootParam.BOOT_INFO_ACK, Buffer.from([0x01, 0x01])));
    try {
      await this.ok(setSystemBootOption(BootParam.BOOT_FLAGS, flags));
    } finally {
      if (inProgress.completionCode === 0) await this.raw(setSystemBootOption(BootParam.SET_IN_PROGRESS, Buffer.from([0x00])));
    }
  }

  async getBootFlags(): Promise<BootFlags> {
    const res = parseGetSystemBootOption(await this.ok(getSystemBootOption(BootParam.BOOT_FLAGS)));
    return decodeBootFlags(res.data);
  }

  async deviceId(): Promise<DeviceId> {
    return parseDeviceId(await this.ok(getDeviceId()));
  }

  /** The system GUID as a UUID string, or undefined where the BMC has none. */
  async systemGuid(): Promise<string | undefined> {
    const res = await this.raw(getSystemGuid());
    if (res.completionCode !== 0) return undefined;
    return parseSystemGuid(res.data);
  }

  /**
   * Reads the board and product areas of FRU device `fruId`. Returns undefined
   * when the BMC has no such FRU (ipmi_sim without FRU data answers 0xCC) or
   * when its contents do not parse (common on real hardware); transport and
   * completion-code errors still throw.
   */
  async readFru(fruId = 0): Promise<Fru | undefined> {
    return (await this.readFruReport(fruId)).fru;
  }

  /**
   * Like readFru, and says why nothing came back: `problem` is the decoder's
   * reason for a FRU that does not parse (bad checksum, an area past the
   * end...), undefined when the FRU is absent or read fine. An area that does
   * not parse leaves the other one usable.
   */
  async readFruReport(fruId = 0): Promise<{ fru: Fru | undefined; problem?: string }> {
    const infoRes = await this.raw(getFruInventoryAreaInfo(fruId));
    if (infoRes.completionCode !== 0) return { fru: undefined };
    const info = parseFruInventoryAreaInfo(infoRes.data);
    if (info.size < 8) return { fru: undefined, problem: `FRU ${fruId}: ${info.size} bytes, shorter than its header` };
    const unit = info.byWords ? 2 : 1;
    const read = (offset: number, length: number) => this.readFruBytes(fruId, offset, length, info.size, unit);
    const problems: string[] = [];
    const headerBytes = await read(0, 8);
    const h = lenient(() => decodeFruHeader(headerBytes), problems);
    if (!h) return { fru: undefined, problem: `FRU ${fruId}: ${problems.join('; ')}` };
    const area = async <T>(offset: number, what: string, decode: (b: Buffer) => T): Promise<T | undefined> => {
      if (!offset) return undefined;
      if (offset + 2 > info.size) {
        problems.push(`${what} offset ${offset} past the end (${info.size} bytes)`);
        return undefined;
      }
      const lengthBytes = await read(offset, 2);
      const n = lenient(() => fruAreaLength(lengthBytes), problems);
      if (!n) return undefined;
      const bytes = await read(offset, Math.min(n, info.size - offset));
      return lenient(() => decode(bytes), problems);
    };
    const out: Fru = {};
    const board: FruBoard | undefined = await area(h.boardOffset, 'FRU board area', decodeFruBoard);
    const product: FruProduct | undefined = await area(h.productOffset, 'FRU product area', decodeFruProduct);
    if (board) out.board = board;
    if (product) out.product = product;
    return { fru: out, ...(problems.length ? { problem: `FRU ${fruId}: ${problems.join('; ')}` } : {}) };
  }

  private async readFruBytes(fruId: number, offset: number, length: number, size: number, unit: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let chunk = 32;
    let pos = offset;
    const end = Math.min(offset + length, size);
    while (pos < end) {
      const want = Math.min(chunk, end - pos);
      const spec = readFruData(fruId, pos / unit, Math.ceil(want / unit));
      const res = await this.raw(spec);
      // "Cannot return requested number of bytes" and friends: retry smaller.
      if ((res.completionCode === 0xca || res.completionCode === 0xc8 || res.completionCode === 0xc7) && chunk > 8) {
        chunk = Math.floor(chunk / 2);
        continue;
      }
      const data = parseReadFruData(expectOk(res, spec, this.label));
      if (data.length === 0) throw new FleetError('bmc.protocol', `IPMI Read FRU Data on ${this.label}: BMC returned no data`);
      parts.push(data.subarray(0, end - pos));
      pos += Math.min(data.length, end - pos);
    }
    return Buffer.concat(parts);
  }
}

/** Runs a FRU decoder; a malformed FRU gives undefined instead of bmc.protocol, its reason pushed to `problems`. */
function lenient<T>(decode: () => T, problems: string[]): T | undefined {
  try {
    return decode();
  } catch (e) {
    if (e instanceof FleetError && e.code === 'bmc.protocol') {
      problems.push(e.message.replace(/^IPMI: /, ''));
      return undefined;
    }
    throw e;
  }
}
