/**
 * IpmitoolDriver: the BmcDriver contract by running `ipmitool -I lanplus`,
 * one process per command. The fallback provider for BMCs the native client
 * does not get along with. The password is passed ONLY through the
 * IPMI_PASSWORD environment variable (`-E`), never in argv.
 *
 * Power off, soft, cycle and reset run with `-R 1` (ipmitool sends each
 * packet once: its own retransmits would run the action twice on a slow BMC)
 * and a longer per-packet wait; a failure of the status read before them is
 * marked as "not run" for the retry rule (retry.ts).
 */
import { FleetError, isFleetError } from '../../../common/errors.js';
import { markNotRun } from '../retry.js';
import type { BmcDriver, BmcIdentity, BmcTarget, BootDevice, BootDeviceOptions, BootDeviceSetting, PowerState } from '../types.js';
import { mapFailure, parseBootParam5, parseFruPrint, parseGuid, parseMcInfo, parsePowerStatus } from './parse.js';
import { ProcessGroup, type RunResult } from './run.js';

export interface IpmitoolDriverOptions {
  /** The ipmitool executable; default 'ipmitool' (looked up in PATH). */
  ipmitoolPath?: string;
  /** -C: 3 (default) or 17. Always explicit: without it ipmitool probes suites, ~10 s against ipmi_sim. */
  cipherSuite?: 3 | 17;
  /** -L; default administrator. */
  privilege?: 'user' | 'operator' | 'administrator';
  /** Hard limit per ipmitool process; the process group is SIGKILLed after it. Default 15 000 ms. */
  timeoutMs?: number;
  /** ipmitool's own per-packet timeout (-N, seconds) and retries (-R). Defaults 1 and 3. */
  packetTimeoutS?: number;
  retries?: number;
  /** -N for once-only power actions (sent with -R 1). Default 5 s. */
  oncePacketTimeoutS?: number;
  /** Base environment for the child; default process.env. IPMI_PASSWORD is always set from the target. */
  env?: NodeJS.ProcessEnv;
}

const BOOTDEV_NAME: Readonly<Record<BootDevice, string>> = { none: 'none', pxe: 'pxe', disk: 'disk', cdrom: 'cdrom', bios: 'bios' };

export function createIpmitoolDriver(target: BmcTarget, opts: IpmitoolDriverOptions = {}): IpmitoolDriver {
  return new IpmitoolDriver(target, opts);
}

export class IpmitoolDriver implements BmcDriver {
  readonly protocol = 'ipmitool' as const;
  private readonly procs = new ProcessGroup();
  private readonly label: string;

  constructor(
    private readonly target: BmcTarget,
    private readonly opts: IpmitoolDriverOptions = {},
  ) {
    this.label = `${target.address}:${target.port}`;
  }

  /** The argv (after the program name) for a command; exported for tests. No secret is ever in it. */
  argv(command: string[], once = false): string[] {
    const o = this.opts;
    return [
      // -v: ipmitool names RAKP failures ("RAKP 2 HMAC is invalid") only when verbose.
      '-v',
      '-I', 'lanplus',
      '-C', String(o.cipherSuite ?? 3),
      '-L', (o.privilege ?? 'administrator').toUpperCase(),
      '-N', String(once ? (o.oncePacketTimeoutS ?? 5) : (o.packetTimeoutS ?? 1)),
      '-R', once ? '1' : String(o.retries ?? 3),
      '-H', this.target.address,
      '-p', String(this.target.port),
      '-U', this.target.username,
      '-E',
      ...command,
    ];
  }

  async powerStatus(): Promise<PowerState> {
    return parsePowerStatus((await this.ok(['chassis', 'power', 'status'])).stdout);
  }

  async powerOn(): Promise<void> {
    if ((await this.powerStatus()) === 'off') await this.ok(['chassis', 'power', 'on']);
  }

  async powerOff(): Promise<void> {
    if ((await this.statusBeforeAction()) === 'on') await this.ok(['chassis', 'power', 'off'], true);
  }

  async powerSoft(): Promise<void> {
    if ((await this.statusBeforeAction()) === 'on') await this.ok(['chassis', 'power', 'soft'], true);
  }

  async powerCycle(): Promise<void> {
    const on = (await this.statusBeforeAction()) === 'on';
    await this.ok(['chassis', 'power', on ? 'cycle' : 'on'], on);
  }

  async powerReset(): Promise<void> {
    const on = (await this.statusBeforeAction()) === 'on';
    await this.ok(['chassis', 'power', on ? 'reset' : 'on'], on);
  }

  /** The read before a once-only action: when it fails, nothing was sent. */
  private async statusBeforeAction(): Promise<PowerState> {
    try {
      return await this.powerStatus();
    } catch (e) {
      throw isFleetError(e) ? markNotRun(e) : e;
    }
  }

  async setBootDevice(device: BootDevice, options: BootDeviceOptions): Promise<void> {
    const flags = [...(options.persistent ? ['persistent'] : []), ...(options.mode === 'uefi' ? ['efiboot'] : [])];
    await this.ok(['chassis', 'bootdev', BOOTDEV_NAME[device], ...(flags.length ? [`options=${flags.join(',')}`] : [])]);
  }

  async getBootDevice(): Promise<BootDeviceSetting> {
    return parseBootParam5((await this.ok(['chassis', 'bootparam', 'get', '5'])).stdout);
  }

  async identity(): Promise<BmcIdentity> {
    const mc = parseMcInfo((await this.ok(['mc', 'info'])).stdout);
    const out: BmcIdentity = { macs: [] };
    if (mc.firmware) out.bmcFirmware = mc.firmware;
    // smbios: the byte order the native driver reads too (ipmi/commands.ts parseSystemGuid).
    const guid = await this.optional(['mc', 'guid', 'smbios']);
    const uuid = guid ? parseGuid(guid.stdout) : undefined;
    if (uuid) out.uuid = uuid;
    // No FRU (ipmi_sim: "Device not present") is not an error: the fields stay absent.
    const fru = await this.optional(['fru', 'print', '0']);
    if (fru) Object.assign(out, parseFruPrint(fru.stdout));
    return out;
  }

  /** Kills any ipmitool still running for this driver. Safe to call twice. */
  async close(): Promise<void> {
    this.procs.killAll();
  }

  private async exec(command: string[], once = false): Promise<RunResult> {
    const env: NodeJS.ProcessEnv = { ...(this.opts.env ?? process.env), IPMI_PASSWORD: this.target.password };
    return this.procs.run(this.opts.ipmitoolPath ?? 'ipmitool', this.argv(command, once), {
      env,
      timeoutMs: this.opts.timeoutMs ?? 15_000,
      what: `${command.join(' ')} on ${this.label}`,
    });
  }

  private async ok(command: string[], once = false): Promise<RunResult> {
    const r = await this.exec(command, once);
    if (r.signal) throw new FleetError('bmc.command_failed', `ipmitool ${command.join(' ')} on ${this.label} was killed (${r.signal})`);
    if (r.code !== 0) throw mapFailure(`${command.join(' ')} on ${this.label}`, r.stderr, r.stdout);
    return r;
  }

  /** Like ok(), but a command failure (not auth, not timeout) yields null. */
  private async optional(command: string[]): Promise<RunResult | null> {
    try {
      return await this.ok(command);
    } catch (e) {
      if (e instanceof FleetError && (e.code === 'bmc.command_failed' || e.code === 'bmc.unsupported')) return null;
      throw e;
    }
  }
}
