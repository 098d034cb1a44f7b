/**
 * IPMI user accounts (IPMI v2.0 §22.26–22.30): request builders, response
 * parsers, the password generator and the rotation plan. Pure: the I/O is
 * in the driver (IpmiDriver.accounts) and in ../rotate.ts.
 *
 *   Set User Access   App 0x43   channel, user id, privilege limit, IPMI messaging / link auth
 *   Get User Access   App 0x44   → max user ids, privilege limit, flags
 *   Set User Name     App 0x45   16 bytes, NUL padded
 *   Get User Name     App 0x46
 *   Set User Password App 0x47   disable | enable | set (16 or 20 bytes) | test
 *
 * Rotation alternates between two fleet accounts, `fleet-a` and `fleet-b`:
 * the new password goes into the account fleet does not use now, is verified
 * by a new session, and only then is the account in use (the factory one the
 * first time) disabled. A failure at any step leaves the working account as
 * it was.
 */
import { randomBytes } from 'node:crypto';
import { FleetError } from '../../../common/errors.js';
import type { CommandSpec } from './commands.js';
import { NetFn } from './message.js';
import { Reader } from './reader.js';

export const UserCmd = {
  GET_CHANNEL_INFO: 0x42,
  SET_USER_ACCESS: 0x43,
  GET_USER_ACCESS: 0x44,
  SET_USER_NAME: 0x45,
  GET_USER_NAME: 0x46,
  SET_USER_PASSWORD: 0x47,
} as const;

/** Privilege limits (Set User Access byte 3); 0x0f: no access. */
export const Priv = { CALLBACK: 1, USER: 2, OPERATOR: 3, ADMINISTRATOR: 4, OEM: 5, NO_ACCESS: 0x0f } as const;

export const PasswordOp = { DISABLE: 0, ENABLE: 1, SET: 2, TEST: 3 } as const;

/** IPMI user names are at most 16 bytes; passwords 16 (IPMI 1.5) or 20 (IPMI 2.0) bytes. */
export const USER_NAME_BYTES = 16;
export type PasswordSize = 16 | 20;

/** User ids are 6 bits; id 1 is the anonymous (null) user and is never used for a fleet account. */
const MAX_USER_ID = 63;

function checkUserId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id > MAX_USER_ID) throw new FleetError('internal', `IPMI user id ${id} is out of range 1..${MAX_USER_ID}`);
}

function checkChannel(channel: number): void {
  if (!Number.isInteger(channel) || channel < 0 || channel > 0x0f) throw new FleetError('internal', `IPMI channel ${channel} is out of range 0..15`);
}

/** Get Channel Info on "this channel" (0x0e): the answer's first byte is the channel the session runs on. */
export function getChannelInfo(channel = 0x0e): CommandSpec {
  return { netFn: NetFn.APP, cmd: UserCmd.GET_CHANNEL_INFO, data: Buffer.from([channel & 0x0f]) };
}

export interface ChannelInfo {
  channel: number;
  /** 4: 802.3 LAN. */
  medium: number;
}

export function parseChannelInfo(data: Uint8Array): ChannelInfo {
  const r = new Reader(data, 'Get Channel Info response');
  const channel = r.u8('channel') & 0x0f;
  const medium = r.u8('medium') & 0x7f;
  return { channel, medium };
}

export function getUserAccess(channel: number, userId: number): CommandSpec {
  checkChannel(channel);
  checkUserId(userId);
  return { netFn: NetFn.APP, cmd: UserCmd.GET_USER_ACCESS, data: Buffer.from([channel & 0x0f, userId & 0x3f]) };
}

export interface UserAccess {
  /** How many user ids the BMC has (byte 1 bits 5:0). */
  maxUsers: number;
  /** User ids enabled (byte 2 bits 5:0). */
  enabledCount: number;
  /** Byte 2 bits 7:6: 01 enabled, 10 disabled, 00 not specified (older BMCs, ipmi_sim). */
  enabled: boolean | null;
  callbackOnly: boolean;
  linkAuth: boolean;
  ipmiMessaging: boolean;
  /** Privilege limit on this channel (Priv); 0x0f: no access. */
  privilege: number;
}

export function parseUserAccess(data: Uint8Array): UserAccess {
  const r = new Reader(data, 'Get User Access response');
  const maxUsers = r.u8('max user ids') & 0x3f;
  const b2 = r.u8('enabled user ids');
  r.u8('fixed names');
  const b4 = r.u8('channel access');
  const status = (b2 >> 6) & 0x03;
  return {
    maxUsers,
    enabledCount: b2 & 0x3f,
    enabled: status === 1 ? true : status === 2 ? false : null,
    callbackOnly: (b4 & 0x40) !== 0,
    linkAuth: (b4 & 0x20) !== 0,
    ipmiMessaging: (b4 & 0x10) !== 0,
    privilege: b4 & 0x0f,
  };
}

/** Set User Access with the change bit set: IPMI messaging and link auth as given, privilege limit, no callback restriction. */
export function setUserAccess(channel: number, userId: number, privilege: number, on: boolean): CommandSpec {
  checkChannel(channel);
  checkUserId(userId);
  const b1 = 0x80 | (on ? 0x30 : 0) | (channel & 0x0f);
  return { netFn: NetFn.APP, cmd: UserCmd.SET_USER_ACCESS, data: Buffer.from([b1, userId & 0x3f, privilege & 0x0f]) };
}

export function getUserName(userId: number): CommandSpec {
  checkUserId(userId);
  return { netFn: NetFn.APP, cmd: UserCmd.GET_USER_NAME, data: Buffer.from([userId & 0x3f]) };
}

/** The name up to the first NUL; a BMC that pads with blanks or 0xff gets them trimmed. */
export function parseUserName(data: Uint8Array): string {
  const raw = new Reader(data, 'Get User Name response').bytes(USER_NAME_BYTES, 'user name');
  const end = raw.indexOf(0);
  return raw
    .subarray(0, end === -1 ? raw.length : end)
    .toString('latin1')
    .replace(/[\xff ]+$/, '');
}

const PRINTABLE = /^[\x21-\x7e]+$/;

export function setUserName(userId: number, name: string): CommandSpec {
  checkUserId(userId);
  if (!PRINTABLE.test(name) || Buffer.byteLength(name, 'latin1') > USER_NAME_BYTES) {
    throw new FleetError('request.invalid', `IPMI user name ${JSON.stringify(name)} must be 1–${USER_NAME_BYTES} printable ASCII characters without blanks`);
  }
  const buf = Buffer.alloc(1 + USER_NAME_BYTES);
  buf[0] = userId & 0x3f;
  buf.write(name, 1, 'latin1');
  return { netFn: NetFn.APP, cmd: UserCmd.SET_USER_NAME, data: buf };
}

/** Set User Password: `password` only for SET and TEST; `size` 20 sets the IPMI 2.0 20-byte flag. */
export function setUserPassword(userId: number, op: number, password?: string, size: PasswordSize = 20): CommandSpec {
  checkUserId(userId);
  const b1 = (size === 20 ? 0x80 : 0) | (userId & 0x3f);
  if (op === PasswordOp.DISABLE || op === PasswordOp.ENABLE) return { netFn: NetFn.APP, cmd: UserCmd.SET_USER_PASSWORD, data: Buffer.from([b1, op]) };
  if (password === undefined || Buffer.byteLength(password, 'latin1') > size || !PRINTABLE.test(password)) {
    throw new FleetError('internal', `IPMI password must be 1–${size} printable ASCII characters`);
  }
  const pw = Buffer.alloc(size);
  pw.write(password, 0, 'latin1');
  return { netFn: NetFn.APP, cmd: UserCmd.SET_USER_PASSWORD, data: Buffer.concat([Buffer.from([b1, op & 0x03]), pw]) };
}

/**
 * 64 symbols, so that a byte masked to 6 bits picks one uniformly: letters,
 * digits, '-' and '_' (no blank, quote or shell character a BMC web UI or an
 * operator's ipmitool line might mangle).
 */
/**
 * 64 symbols, none a shell or option character: no '-', which ipmitool (the
 * boot environment's `user set password SLOT PASSWORD`) takes for an option
 * when a password starts with it — one set-up in 64 failed that way.
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._';

/**
 * A BMC password of `length` characters from as many random bytes (6 bits
 * each: 120 bits for the IPMI 2.0 maximum of 20). Never logged or printed.
 */
export function generateBmcPassword(length: PasswordSize = 20, random: (n: number) => Buffer = randomBytes): string {
  const bytes = random(length);
  if (bytes.length !== length) throw new FleetError('internal', 'random source returned too few bytes');
  let out = '';
  for (const b of bytes) out += ALPHABET[b & 0x3f];
  return out;
}

/** One user slot as read from the BMC. */
export interface UserSlot {
  id: number;
  name: string;
  enabled: boolean | null;
  /** Privilege limit on the LAN channel; 0x0f no access. */
  privilege: number;
}

export const FLEET_ACCOUNTS = ['fleet-a', 'fleet-b'] as const;

export interface RotationPlan {
  /** The slot that gets the new account. */
  slot: number;
  /** Its user name (fleet-a or fleet-b). */
  name: string;
  /** The slot the current credential logs in with, disabled once the new one is verified; null: not found among the slots. */
  retire: { id: number; name: string } | null;
  /** Why this slot: "reuses fleet-b (slot 4)" or "free slot 3". */
  why: string;
}

/**
 * Chooses where the new account goes: the fleet account not in use now
 * (fleet-b after fleet-a, fleet-a after anything else) in the slot that
 * already bears its name, else the lowest free slot (empty name, id ≥ 2).
 * Never the slot in use. No free slot: a clear error, nothing changed.
 */
export function planRotation(slots: readonly UserSlot[], currentUser: string): RotationPlan {
  const current = slots.find((s) => s.name === currentUser && s.name !== '') ?? null;
  const name = currentUser === FLEET_ACCOUNTS[0] ? FLEET_ACCOUNTS[1] : FLEET_ACCOUNTS[0];
  const retire = current ? { id: current.id, name: current.name } : null;
  const named = slots.find((s) => s.name === name && s.id !== current?.id);
  if (named) return { slot: named.id, name, retire, why: `reuses ${name} (slot ${named.id})` };
  const free = slots.filter((s) => s.id >= 2 && s.name === '' && s.id !== current?.id).sort((a, b) => a.id - b.id)[0];
  if (!free) {
    throw new FleetError('bmc.command_failed', `the BMC has no free user slot for ${name} (${slots.length} slots, all named); free one by hand (ipmitool user set name ID "")`);
  }
  return { slot: free.id, name, retire, why: `free slot ${free.id}` };
}
