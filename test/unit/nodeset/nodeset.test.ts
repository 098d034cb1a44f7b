/**
 * Unit tests of server/nodeset: parsing, folding, set operations,
 * expandPattern, limits, errors on hostile input, the nodeset command, and
 * seeded property tests (round trip, set algebra against plain JS Sets).
 */
import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import {
  DEFAULT_EXPAND_LIMIT,
  NodeSet,
  expandNodeSet,
  expandPattern,
  foldNames,
  runNodesetCommand,
} from '../../../server/nodeset/index.js';

/** Runs fn and returns the FleetError it throws (fails the test otherwise). */
function fleetError(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (e) {
    if (e instanceof FleetError) return e;
    throw new Error(`expected a FleetError, got ${String(e)}`);
  }
  throw new Error('expected a FleetError, nothing was thrown');
}

/** Runs fn, asserts it took less than `ms` milliseconds, returns its result. */
function fast<T>(ms: number, fn: () => T): T {
  const t0 = performance.now();
  const r = fn();
  expect(performance.now() - t0).toBeLessThan(ms);
  return r;
}

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): { int: (lo: number, hi: number) => number; pick: <T>(a: readonly T[]) => T; chance: (p: number) => boolean } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return { int, pick: (a) => a[int(0, a.length - 1)]!, chance: (p) => next() < p };
}

/**
 * Cases recorded from the real clustershell 1.9 `nodeset` (Debian 12
 * package), partly generated at random: multi-dimensional folding,
 * operators, padding, autostep and command options.
 */
const CLUSTERSHELL_CASES: [string[], string][] = [
  [["--autostep=3", "-f", "r[1-7,29]u[00-06]!r[0-2,23]u[02-08,11],r[5-5,95]u[9-14]"], "r[3-4,6-7,29]u[00-06],r5u[9,00-06,10-14],r95u[9-14],r[1-2]u[00-01]"],
  [["--autostep=2", "-f", "r[4-4]u[7-9]p[3-4,21]^r[8-10]u[9-15]p[12-18]"], "r[8-10]u[9-15]p[12-18],r4u[7-9]p[3-4,21]"],
  [["--autostep=1", "-f", "x-[016-037,19-43],n[28-40]-ib^rack[767]n[24-26/1]"], "n[28-40]-ib,rack767n[24-26],x-[19-43,016-037]"],
  [["--autostep=3", "-f", "r[9-10]u[0-1,10],r[6-9,08]u[2-7]!r[2-6,5]u[4-8,6],r[6-7]u[06-11]"], "r[8,08]u[2-7],r7u[2-7,06-11],r9u[0-7,10],r6u[2-3,06-11],r10u[0-1,10]"],
  [["--autostep=2", "-f", "r[10-10,95]u[5-10]p[5-8]!r[5-6,10]u[8-9]p[8-8,95]"], "r95u[5-10]p[5-8],r10u[5-7,10]p[5-8],r10u[8-9]p[5-7]"],
  [["--autostep=3", "-f", "login,n[95,027-047/2,29-48],node0003!n[23-35].x"], "login,n[29-48,95,027-047/2],node0003"],
  [["--autostep=3", "-f", "r[5-9]u[5-8]!r[4-8]u[5-7]!r[0-5]u[6-10]!r[3-5]u[0-4]"], "r9u[5-8],r[6-8]u8"],
  [["--autostep=3", "-f", "r[3-3]u[12-18],r[12-13]u[5-11]^r[3-6,012]u[11-13,5]"], "r[4-6,012]u[5,11-13],r[12-13]u[5-11],r3u[5,11,14-18]"],
  [["--autostep=3", "-f", "r[10-14]u[11-15]p[7-12]!r[10-13]u[05-05]p[3-4]^r[05-06]u[11-16]p[10-14]"], "r[10-14]u[11-15]p[7-12],r[05-06]u[11-16]p[10-14]"],
  [["--autostep=3", "-f", "rack[1040,22-45,191]u[88,7-27,24-47]p[012-016,21-37,25-38]!node[004-024/4,29-42,24-41]-ib"], "rack[22-45,191,1040]u[7-47,88]p[21-38,012-016]"],
  [["--autostep=3", "-f", "r[00-01,4]u[9-15],r[4-4,1]u[8-11]&r[4-5,10]u[9-11]^r[3-5]u[3-5,105],r[7-9]u[10-16]"], "r[7-9]u[10-16],r[3,5]u[3-5,105],r4u[3-5,9-11,105]"],
  [["--autostep=3", "-f", "rack[24-28,28-28/3,25-48/2]u[842,29-38,07-19],r[357,029-033]n[30-45,38]!r[4-26/1,015-015/3],n[004-023].x"], "n[004-023].x,r[029-033,357]n[30-45],rack[24-29,31-47/2]u[07-19,29-38,842]"],
  [["--autostep=3", "-f", "r[07-10]u[0-6,97]&r[12-17]u[8-14]!r[0-6]u[1-5],r[6-7]u[09-10]^r[10-11]u[6-7,15]"], "r[10-11]u[6-7,15],r[6-7]u[09-10]"],
  [["--autostep=3", "-f", "r[3-6]u[8-10]p[05-08]^r[11-14,96]u[04-06]p[6-7],r[12-13]u[12-16,11]p[8-8]"], "r[3-6]u[8-10]p[05-08],r[11-14,96]u[04-06]p[6-7],r[12-13]u[11-16]p8"],
  [["--autostep=2", "-f", "node[15-37,3-10,9-33]^r866u[6-11,15-33,019-020]"], "node[3-37],r866u[6-11,15-33,019-020]"],
  [["--autostep=2", "-f", "r[03-05]u[0-4,104]!r[0-2]u[3-7]^r[04-08,10]u[3-3,10],r[9-9]u[7-12]"], "r[04-05]u[0-2,4-10/6,104],r[06-08,10]u[3-10/7],r03u[0-4,104],r9u[7-12]"],
  [["--autostep=3", "-f", "r[01-06]u[10-10]p[9-14,005]&r[00-05]u[7-7,12]p[11-14]^r[9-9]u[0-1]p[04-05,17]"], "r9u[0-1]p[04-05,17]"],
  [["--autostep=2", "-f", "x-02^a.b[029-036]!x-1057^gw"], "a.b[029-036],gw,x-02"],
  [["--autostep=3", "-f", "r[10-13,103]u[10-11]p[9-12],r[9-15]u[8-12]p[8-8]&r[8-10,013]u[01-01,102]p[1-2],r[05-05]u[3-7]p[4-6]"], "r05u[3-7]p[4-6]"],
  [["--autostep=2", "-f", "r[3-6]u[11-11]^r[00-03]u[3-6]!r[4-7]u[8-8],r[01-05,11]u[1-1]"], "r[01-03]u[1-3/2,4-6],r[3-6]u11,r00u[3-6],r[04-05,11]u1"],
  [["--autostep=3", "-f", "x-[26-45].x,gw!a.b[118,00-09/2]-ib,n[023-026/2,1]-ib,n[003,25-38]"], "gw,n[25-38,003],n[1,023,025]-ib,x-[26-45].x"],
  [["--autostep=3", "-f", "x-[020-027,0007].x!cn126,r[20-23/4]n[010-035,16-17,184]p[0809,992]"], "r20n[16-17,010-035,184]p[992,0809],x-[020-027,0007].x"],
  [["--autostep=3", "-f", "r[07-10]u[1-5]^r[2-5]u[3-8]"], "r[2-5]u[3-8],r[07-10]u[1-5]"],
  [["--autostep=2", "-f", "rack[9-9/1,1031]u[4],r[4-19,025-045]!cn[11-20,25-34]"], "r[4-19,025-045],rack[9-1031/1022]u4"],
  [["--autostep=3", "-f", "r[02-08]u[04-06,104]!r[12-16]u[05-07],r[02-05]u[6-8]"], "r[02-05]u[6-8,04-06,104],r[06-08]u[04-06,104]"],
  [["--autostep=2", "-f", "rack[9-9/1,009-028]u5&x-[13-33,528,0006],rack[23-38/1,30-41,05-16/3]n[72,07-17/4],r[14-39,446]"], "r[14-39,446],rack[05-14/3,23-41]n[07-15/4,72]"],
  [["--autostep=2", "-f", "r[1-1,08]u[5-11]p[7-8]&r[1-5]u[8-8,3]p[0-2,10]^r[0-5,014]u[3-6]p[2-5]^r[8-14]u[02-07,08]p[11-15]"], "r[8-14]u[02-08]p[11-15],r[0-5,014]u[3-6]p[2-5]"],
  [["--autostep=2", "-f", "r[4-8]u[2-4,27]^r[7-7]u[00-02,011]"], "r[4-6,8]u[2-4,27],r7u[2-4,00-02,27,011]"],
  [["--autostep=3", "-f", "r[4-6]u[3-9],r[12-16]u[8-14]!r[10-12,7]u[03-08],r[2-8]u[7-12,105],r[00-06]u[07-13]"], "r[00-06]u[07-13],r[12-16]u[8-14],r[4-6]u[3-12,105],r[2-3,7-8]u[7-12,105]"],
  [["--autostep=3", "-f", "r[12-16]u[0-1]!r[7-13,97]u[12-13,6],r[9-13,17]u[6-10]!r[11-13,0]u[2-3],r[11-12]u[01-04,15]"], "r[9-10,17]u[6-10],r12u[0-1,6-9,01-04,10,15],r11u[6-9,01-04,10,15],r13u[0-1,6-10],r[14-16]u[0-1]"],
  [["--autostep=3", "-f", "r[1-4,23]u[5-11]!r[8-12,5]u[9-14]^r[0-4]u[6-7]!r[8-14]u[8-13]"], "r[1-4]u[5,8-11],r23u[5-11],r0u[6-7]"],
  [["--autostep=4", "-f", "node[29-40/1]-ib^cn[14-25/3]"], "cn[14-23/3],node[29-40]-ib"],
  [["--autostep=3", "-f", "r[2-4]u[4-7]!r[09-12]u[2-5,8],r[0-6]u[00-01,12]!r[5-7,4]u[7-10]"], "r[2-3]u[4-7,00-01,12],r[0-1,5-6]u[00-01,12],r4u[4-6,00-01,12]"],
  [["--autostep=2", "-f", "r[11-15]u[9-14]p[9-15,102]&r[06-11,5]u[7-13]p[4-4,4],r[2-2]u[3-7,09]p[5-11],r[00-02]u[11-17]p[0-1]"], "r[00-02]u[11-17]p[0-1],r2u[3-7,09]p[5-11]"],
  [["--autostep=3", "-f", "login,x-[000,06-21]-ib,rack[09-17/2]n[013-032,1]p[009-031,001-020/2,11-36]!node112"], "login,rack[09-17/2]n[1,013-032]p[11-36,001-009/2,010-031],x-[06-21,000]-ib"],
  [["--autostep=2", "-f", "r[10-14,0]u[6-9]p[03-05]!r[11-13]u[3-7,11]p[12-13,014]"], "r[0-10/10,11-14]u[6-9]p[03-05]"],
  [["--autostep=3", "-f", "r[10-10,009]u[7-8]p[07-12]^r[8-8]u[09-15]p[04-06,13],r[4-7]u[12-12,06]p[12-12]"], "r8u[09-15]p[04-06,13],r[10,009]u[7-8]p[07-12],r[4-7]u[06,12]p12"],
  [["--autostep=3", "-f", "r[8-8]u[04-07,9]p[1-6]!r[10-10,10]u[6-12]p[03-08,4]^r[3-6]u[2-4,11]p[4-5]^r[1-6]u[1-5]p[11-16,15]"], "r[3-6]u[2-4]p[4-5,11-16],r[1-2]u[1-5]p[11-16],r[3-6]u[1,5]p[11-16],r8u[9,04-07]p[1-6],r[3-6]u11p[4-5]"],
  [["--autostep=3", "-f", "r[00-05]u[05-11]!r[08-14,3]u[12-13],r[01-06,97]u[6-7]!r[09-13]u[0-4]"], "r[01-05]u[6-7,05-11],r00u[05-11],r[06,97]u[6-7]"],
  [["--autostep=2", "-f", "rack74u[666]^r[96]u[20-42,20-33]^admin"], "admin,r96u[20-42],rack74u666"],
  [["--autostep=4", "-f", "x-68!r50n614,node025,rack[1021]u[13-17,019-037]^r[11-20].x"], "node025,r[11-20].x,rack1021u[13-17,019-037],x-68"],
  [["--autostep=2", "-f", "r[1-4]u[6-10,5]p[1-4],r[04-09]u[9-14]p[11-14]&r[05-06]u[3-7,28]p[6-7,25],r[2-8]u[11-12]p[9-15,5]"], "r[2-8]u[11-12]p[5-9/4,10-15]"],
  [["--autostep=2", "-f", "r[7-8]u[5-10]^r[11-11]u[6-8]!r[7-9]u[10-11],r[02-02]u[5-11]"], "r[7-8]u[5-9],r02u[5-11],r11u[6-8]"],
  [["--autostep=3", "-f", "r[01-06]u[10-16,008]!r[10-13]u[6-6],r[9-10]u[1-7]"], "r[01-06]u[10-16,008],r[9-10]u[1-7]"],
  [["--autostep=2", "-f", "r[9-11,4]u[5-5],r[5-7]u[5-7],r[6-8,12]u[11-14],r[8-9]u[6-8]!r[1-5]u[9-11,9]"], "r[6-7]u[5-7,11-14],r8u[6-8,11-14],r[4-5,10-11]u5,r12u[11-14],r9u[5-8],r5u[6-7]"],
  [["--autostep=2", "-f", "r[04-06]u[04-04,12],r[6-6,8]u[1-3]!r[6-7,10]u[2-3,95]"], "r[04-06]u[04-12/8],r[6-8/2]u1,r8u[2-3]"],
  [["--autostep=2", "-f", "r[12-18]u[12-18]!r[07-07]u[3-9]^r[10-12,25]u[7-10],r[5-11,97]u[01-06,004]!r[7-10]u[5-6]"], "r[13-18]u[12-18],r[5-9,97]u[01-06,004],r[10-11]u[7-9,01-06,10,004],r12u[7-10,12-18],r25u[7-10]"],
  [["--autostep=2", "-f", "r[12-14]u[0-1]p[9-15]!r[4-7]u[0-3,10]p[1-2,20]&r[7-13]u[12-17]p[9-15,07]^r[1-3,12]u[04-06,008]p[08-09]"], "r[1-3,12]u[04-06,008]p[08-09]"],
  [["--autostep=2", "-f", "r[2-2]u[1-6]!r[10-10]u[07-08],r[1-7]u[4-9,6]!r[3-5,103]u[0-2]"], "r[1-3/2,4-7]u[4-9],r2u[1-9]"],
  [["--autostep=2", "-f", "r[02-05,14]u[3-6]p[10-16,104]^r[08-08]u[02-04,003]p[03-06]"], "r[02-05,14]u[3-6]p[10-16,104],r08u[02-04,003]p[03-06]"],
  [["--autostep=3", "-f", "r[6-10]u[11-14,15]p[11-15]^r[9-15,27]u[12-13]p[6-9],r[05-07]u[2-2,2]p[3-8,105]!r[1-7]u[4-8]p[6-7]"], "r[6-8]u[11-15]p[11-15],r[11-15,27]u[12-13]p[6-9],r[9-10]u[12-13]p[6-9,11-15],r[9-10]u[11,14-15]p[11-15],r[05-07]u2p[3-8,105]"],
  [["--autostep=3", "-f", "r[5-9]u[11-11,025]&r[03-08]u[2-2,27]!r[12-16]u[5-8,9],r[11-14,001]u[5-8],r[8-11,006]u[12-14,4]"], "r[12-14,001]u[5-8],r[8-10,006]u[4,12-14],r11u[4-8,12-14]"],
  [["--autostep=3", "-f", "r[00-01]u[4-6]p[3-7]^r[05-05,15]u[9-10]p[9-13,102]!r[0-3]u[12-16]p[8-11],r[02-02]u[04-10,09]p[04-05]"], "r[00-01]u[4-6]p[3-7],r[05,15]u[9-10]p[9-13,102],r02u[04-10]p[04-05]"],
  [["--autostep=3", "-f", "r[09-10,1]u[0-3]^r[4-7,007]u[9-15]!r[01-01]u[00-00]!r[6-7]u[5-10,5]"], "r[4-5,007]u[9-15],r[1,09-10]u[0-3],r[6-7]u[11-15]"],
  [["--autostep=2", "-f", "r[0-0]u[6-12]^r[06-08]u[7-11]!r[1-6,2]u[04-06,100]!r[02-07]u[11-13]"], "r[06-07]u[7-10],r0u[6-12],r08u[7-11]"],
  [["--autostep=3", "-f", "r[9-9,2]u[0-6,14],r[9-12]u[8-13]^r[1-3]u[9-12,007]"], "r[10-12]u[8-13],r9u[0-6,8-14],r2u[0-6,9-12,14,007],r[1,3]u[9-12,007]"],
  [["--autostep=2", "-f", "r[0-0]u[01-06]^r[07-07]u[1-3],r[12-13]u[8-12],r[12-15]u[09-15]!r[11-13]u[7-7]"], "r[12-13]u[8-9,09-15],r[14-15]u[09-15],r0u[01-06],r07u[1-3]"],
  [["--autostep=3", "-f", "r[0-3,104]u[2-8]p[10-14]^r[3-3]u[3-8]p[2-4,10]!r[12-14]u[07-07]p[08-13,4]^r[02-05]u[12-13]p[4-7,105]"], "r[0-2,104]u[2-8]p[10-14],r3u[3-8]p[2-4,11-14],r[02-05]u[12-13]p[4-7,105],r3u2p[10-14]"],
  [["--autostep=2", "-f", "r[07-13,10]u[01-03]&r[6-12,15]u[07-09,1],r[9-10]u[5-7],r[11-11,14]u[7-7]"], "r[9-10]u[5-7],r[11-14/3]u7"],
  [["--autostep=2", "-f", "r[4-10]u[4-9]^r[10-15]u[6-10,027],r[01-03,9]u[02-06]!r[1-3]u[9-13]"], "r[11-15]u[6-10,027],r[4-8]u[4-9],r[01-03]u[02-06],r9u[4-9,02-06],r10u[4-5,10,027]"],
  [["--autostep=3", "-f", "r[03-03]u[2-4]!r[1-7,1]u[11-11,105]^r[05-09]u[10-16,8]!r[2-7]u[12-17,103]!r[8-12,019]u[11-17]"], "r[05-09]u[8,10-16],r03u[2-4]"],
  [["--autostep=1", "-f", "cn[17-21,629,77],login!x-[026-031],r[0801]n12p[029-031,0-19]"], "cn[17-21,77,629],login,r0801n12p[0-19,029-031]"],
  [["--autostep=3", "-f", "r[4-9]u[00-02]p[12-15]!r[8-14]u[05-05]p[09-13]!r[04-08]u[8-12]p[12-17]"], "r[4-9]u[00-02]p[12-15]"],
  [["--autostep=2", "-f", "r[8-9]u[9-12]p[08-10],r[06-08]u[2-7,102]p[5-8,19]!r[6-6,25]u[0-2,11]p[8-13,010]"], "r[06-08]u[2-7,102]p[5-8,19],r[8-9]u[9-12]p[08-10]"],
  [["--autostep=3", "-f", "r[0-1,4]u[9-9]p[8-14]!r[2-2]u[6-9]p[12-13]^r[7-13]u[10-13]p[11-12,6]^r[9-12]u[11-11,002]p[2-8]"], "r[9-12]u[10,12-13]p[6,11-12],r[7-8,13]u[10-13]p[6,11-12],r[9-12]u11p[2-5,7-8,11-12],r[9-12]u002p[2-8],r[0-1,4]u9p[8-14]"],
  [["--autostep=3", "-f", "r[3-9,013]u[8-12],r[2-6,103]u[00-05]^r[12-14]u[5-6]!r[9-10]u[8-8]"], "r[3-6]u[8-9,00-05,10-12],r[7-8,013]u[8-12],r[2,103]u[00-05],r[12-14]u[5-6],r9u[9-12]"],
  [["--autostep=3", "-f", "r[2-2]u[7-13,1]^r[6-8]u[12-16,8],r[1-3]u[5-7,104]!r[2-4,15]u[3-3]"], "r[6-8]u[8,12-16],r2u[1,5-13,104],r[1,3]u[5-7,104]"],
  [["--autostep=2", "-f", "a.b[12-16,437,30-50],rack[780]u[026-045,15-34/2,87]p[8-18,11-31,22-23]^r66"], "a.b[12-16,30-50,437],r66,rack780u[15-33/2,87,026-045]p[8-31]"],
  [["--autostep=1", "-f", "r[001-023/4,07]n[32,21-46/1,26-51]p[8]!x-3,r[005-008/3,004-006],r[21-41,13-25,02-03].x"], "r[004-006,008],r[02-03,13,14-41].x,r[07,001-021/4]n[21-51]p8"],
  [["--autostep=4", "-f", "rack[9-33,29-46]n[4-11,012-031]^cn[24-25]-ib,n[0245,016-016]-ib,r9n[0-1],rack[4-28,30-50]n[419,0083]"], "cn[24-25]-ib,n[016,0245]-ib,r9n[0-1],rack[9-28,30-46]n[4-11,012-031,419,0083],rack29n[4-11,012-031],rack[4-8,47-50]n[419,0083]"],
  [["--autostep=3", "-f", "r[11-11]u[4-6]^r[4-9,026]u[09-12,1],r[4-6,11]u[1-2]"], "r[7-9,026]u[1,09-12],r[4-6]u[1-2,09-12],r11u[1-2,4-6]"],
  [["--autostep=3", "-f", "r[7-13,11]u[00-03]p[01-03,099],r[04-10]u[6-6,101]p[5-10]!r[3-6]u[8-8]p[00-05]!r[11-12]u[02-06]p[09-15]"], "r[7-13]u[00-03]p[01-03,099],r[04-10]u[6,101]p[5-10]"],
  [["--autostep=4", "-f", "node[5,016-017,10]^rack9u[18-42,027-044,3-3]^r[6-30,19-42,745]n[1-16/3,3,21-27]"], "node[5,10,016-017],r[6-42,745]n[1,3-4,7-16/3,21-27],rack9u[3,18-42,027-044]"],
  [["--autostep=1", "-f", "r2u[13-14,23-24,55]p[0071,101]!a.b4^rack[18-34,015-022,008]u[378,030-030],login"], "login,r2u[13-14,23,24,55]p[101,0071],rack[18-34,008-015/7,016-022]u[030-378/348]"],
  [["--autostep=2", "-f", "r[0-2,10]u[6-7],r[4-5,104]u[3-4]!r[7-9]u[0-0]!r[3-7,101]u[01-05]"], "r[0-2,10]u[6-7],r[4-5,104]u[3-4]"],
  [["--autostep=2", "-f", "r[09-11]u[10-16]p[2-3]!r[6-10]u[03-06]p[4-10,103]"], "r[09-11]u[10-16]p[2-3]"],
  [["--autostep=2", "-f", "r[9-10]u[10-11]!r[6-11]u[00-02]!r[0-0]u[1-1,10],r[1-2]u[09-10,0]^r[0-6]u[01-03]"], "r[0-3/3,4-6]u[01-03],r[1-2]u[0,01-03,09-10],r[9-10]u[10-11]"],
  [["--autostep=2", "-f", "rack2u[1-25,9]^node[2-17].x,n[009-032].x,node116,r0068n[08-33,7,18-19]"], "n[009-032].x,node116,node[2-17].x,r0068n[7,08-33],rack2u[1-25]"],
  [["--autostep=2", "-f", "r[0-0]u[12-13]p[2-6,7]!r[3-5]u[07-07]p[07-09,12]!r[7-9]u[9-10]p[0-1,104]"], "r0u[12-13]p[2-7]"],
  [["--autostep=2", "-f", "r[01-03]u[07-10,17],r[4-4]u[7-13,5]!r[01-04]u[11-16,8]"], "r[01-03]u[07-10,17],r4u[5-7/2,8-13]"],
  [["-f", "node[22-406,04]"], "node[04,22-99,100-406]"],
  [["-f", "n[8-12,010-012]"], "n[8-12,010-012]"],
  [["-e", "n[09-11,8,1]"], "n1 n8 n09 n10 n11"],
  [["-f", "n1[8-12]"], "n[18-112]"],
  [["-e", "n[1-3]0"], "n10 n20 n30"],
  [["-f", "a0[1-2]"], "a[01-02]"],
  [["-f", "r9u1", "r10u1", "r9u2", "r10u2", "r9u3"], "r9u[1-3],r10u[1-2]"],
  [["-e", "r[1-3]u[1-3]!r2u2"], "r1u1 r1u2 r1u3 r3u1 r3u2 r3u3 r2u1 r2u3"],
  [["-f", "r[1-3]u[1-3]!r2u2"], "r[1,3]u[1-3],r2u[1,3]"],
  [["-f", "r1u[1-2]", "r[1-2]u1"], "r1u[1-2],r2u1"],
  [["--autostep=3", "-f", "n[1-9/2,10-20,30-60/10]"], "n[1-9/2,10-20,30-60/10]"],
  [["--autostep=2", "-f", "r[1-9/2]u[2,4,6]"], "r[1-9/2]u[2-6/2]"],
  [["-f", "n[0-00]"], "n0"],
  [["-f", "x-y,a"], "a,x-y"],
  [["-f", "a%b[1-2]"], "a%b[1-2]"],
  [["-e", "n[1-2]-eth0,n[1-2]-eth1"], "n1-eth0 n1-eth1 n2-eth0 n2-eth1"],
  [["-f", "n001", "n01", "n1", "n0001"], "n[1,01,001,0001]"],
  [["--autostep=auto", "-f", "n[1-9/2]"], "n[1-9/2]"],
  [["--autostep=50%", "-f", "n[1-9/2],n[20-30]"], "n[1,3,5,7,9,20-30]"],
  [["-c", "n[1-10]", "-x", "n[2-3]", "-i", "n[1-5]", "-X", "n[4-7]"], "3"],
  [["-f", "-x", "n1", "n[1-3]"], "n[1-3]"],
  [["-e", "-S", "\\n", "n[1-3]"], "n1\nn2\nn3"],
  [["-S", "\\t", "-e", "n[1-2]"], "n1\tn2"],
  [["--split=3", "-e", "n[1-10]"], "n1 n2 n3 n4\nn5 n6 n7\nn8 n9 n10"],
  [["--split", "4", "-f", "r[1-2]u[1-3],x"], "r1u[1-2]\nr1u3,r2u1\nr2u[2-3]\nx"],
  [["--contiguous", "-f", "n[1-3,5-6],m[1-2]x[3,5]"], "m[1-2]x3\nm[1-2]x5\nn[1-3]\nn[5-6]"],
  [["-O", "x%s-y", "-f", "n[1-3]"], "xn[1-3]-y"],
  [["-O", "%s-ipmi", "-e", "n[1-2]"], "n1-ipmi n2-ipmi"],
  [["-I", "0-1,3", "-f", "n[1-10]"], "n[1-2,4]"],
  [["-I", "2", "-e", "r[1-2]u[1-3]"], "r1u3"],
  [["-c", "n[1-3]", "--split=2"], "4"],];

describe('NodeSet.parse and expand', () => {
  it('expands ranges with padding, in clustershell order', () => {
    expect(expandNodeSet('valkyrie[01-03,05]')).toEqual(['valkyrie01', 'valkyrie02', 'valkyrie03', 'valkyrie05']);
    expect(expandNodeSet('n[8-11]')).toEqual(['n8', 'n9', 'n10', 'n11']);
    expect(expandNodeSet('n[08-11]')).toEqual(['n08', 'n09', 'n10', 'n11']);
    expect(expandNodeSet('n[01,2,003]')).toEqual(['n2', 'n01', 'n003']);
  });

  it('keeps n1, n01 and n001 distinct', () => {
    const ns = NodeSet.parse('n1,n01,n001,n1');
    expect(ns.size).toBe(3);
    expect(ns.expand()).toEqual(['n1', 'n01', 'n001']);
    expect(ns.fold()).toBe('n[1,01,001]');
  });

  it('supports steps', () => {
    expect(expandNodeSet('n[1-10/3]')).toEqual(['n1', 'n4', 'n7', 'n10']);
    expect(expandNodeSet('n[0001-0005/2]')).toEqual(['n0001', 'n0003', 'n0005']);
  });

  it('expands several bracket groups, last dimension fastest', () => {
    expect(expandNodeSet('r[1-2]u[01-02]-bmc')).toEqual(['r1u01-bmc', 'r1u02-bmc', 'r2u01-bmc', 'r2u02-bmc']);
    expect(NodeSet.parse('rack[1-2]node[01-03]').size).toBe(6);
  });

  it('evaluates operators left to right, without precedence', () => {
    expect(expandNodeSet('n[1-5]!n[2-3],n3')).toEqual(['n1', 'n3', 'n4', 'n5']);
    expect(expandNodeSet('n[1-5],n3!n[2-3]')).toEqual(['n1', 'n4', 'n5']);
    expect(expandNodeSet('n[1-5]&n[3-8]^n[5-6]')).toEqual(['n3', 'n4', 'n6']);
  });

  it('ignores whitespace around names and operators', () => {
    expect(expandNodeSet('  n1 , n[2-3] ! n2 ')).toEqual(['n1', 'n3']);
  });

  it('joins digits written next to brackets, like clustershell', () => {
    expect(expandNodeSet('n1[0-2]')).toEqual(['n10', 'n11', 'n12']);
    expect(expandNodeSet('n[1-3]0')).toEqual(['n10', 'n20', 'n30']);
  });

  it('sorts patterns, names without digits included', () => {
    expect(NodeSet.parse('valkyrie[01-02],thor,heimdall').fold()).toBe('heimdall,thor,valkyrie[01-02]');
    expect(expandNodeSet('b1,a,a1,b')).toEqual(['a', 'a1', 'b', 'b1']);
  });

  it('handles characters that are special to clustershell patterns', () => {
    expect(NodeSet.parse('a%b[1-2]').fold()).toBe('a%b[1-2]');
    expect(expandNodeSet('a%s[1-2]')).toEqual(['a%s1', 'a%s2']);
  });
});

describe('fold', () => {
  it('folds names', () => {
    expect(foldNames(['valkyrie01', 'valkyrie02', 'valkyrie03', 'valkyrie05'])).toBe('valkyrie[01-03,05]');
    expect(foldNames(['n8', 'n09', 'n10'])).toBe('n[8,09-10]');
    expect(foldNames(['n9', 'n10', 'n010'])).toBe('n[9-10,010]');
    expect(foldNames(['n2', 'n1', 'n2'])).toBe('n[1-2]');
    expect(foldNames([])).toBe('');
  });

  it('reproduces clustershell quirks', () => {
    // the padding of 04 leaks into the next range: 22-99 stays one piece, 100 starts another
    expect(NodeSet.parse('node[22-406,04]').fold()).toBe('node[04,22-99,100-406]');
    expect(NodeSet.parse('n1[8-12]').fold()).toBe('n[18-112]');
  });

  it('folds several dimensions like clustershell', () => {
    expect(foldNames(['r1u01', 'r1u02', 'r2u01', 'r2u02', 'r3u01'])).toBe('r[1-2]u[01-02],r3u01');
    expect(foldNames(['r9u1', 'r10u1', 'r9u2', 'r10u2', 'r9u3'])).toBe('r9u[1-3],r10u[1-2]');
    const holed = NodeSet.parse('r[1-3]u[1-3]!r2u2');
    expect(holed.fold()).toBe('r[1,3]u[1-3],r2u[1,3]');
    expect(holed.expand()).toEqual(['r1u1', 'r1u2', 'r1u3', 'r3u1', 'r3u2', 'r3u3', 'r2u1', 'r2u3']);
  });

  it('toString is fold', () => {
    const ns = NodeSet.parse('n[1-3],m1');
    expect(String(ns)).toBe('m1,n[1-3]');
    expect(`${ns}`).toBe(ns.fold());
  });
});

describe('NodeSet.fromNames', () => {
  it('deduplicates', () => {
    expect(NodeSet.fromNames(['a1', 'a1', 'a2']).size).toBe(2);
  });

  it('refuses things that are not single node names', () => {
    for (const bad of ['', 'n[1-2]', 'a,b', 'a b', 'a!b', '@grp', 'n*', 'n99999999999999999999']) {
      expect(fleetError(() => NodeSet.fromNames([bad])).code, bad).toBe('nodeset.invalid');
    }
  });

  it('enforces the limit on distinct names', () => {
    expect(NodeSet.fromNames(['a1', 'a2', 'a1'], { limit: 2 }).size).toBe(2);
    expect(fleetError(() => NodeSet.fromNames(['a1', 'a2', 'a3'], { limit: 2 })).code).toBe('nodeset.too_large');
  });
});

describe('set operations', () => {
  const a = NodeSet.parse('n[1-5]');
  const b = NodeSet.parse('n[3-8]');

  it('union, difference, intersection, xor', () => {
    expect(a.union(b).fold()).toBe('n[1-8]');
    expect(a.difference(b).fold()).toBe('n[1-2]');
    expect(a.intersection(b).fold()).toBe('n[3-5]');
    expect(a.xor(b).fold()).toBe('n[1-2,6-8]');
  });

  it('leaves the operands unchanged', () => {
    a.union(b);
    a.difference(b);
    expect(a.fold()).toBe('n[1-5]');
    expect(b.fold()).toBe('n[3-8]');
  });

  it('works across patterns and names without digits', () => {
    const x = NodeSet.parse('n[1-3],login,r[1-2]u[1-2]');
    const y = NodeSet.parse('n2,login,admin,r1u1');
    // expected values from clustershell 1.9 (bigger boxes first)
    expect(x.difference(y).fold()).toBe('n[1,3],r2u[1-2],r1u2');
    expect(x.intersection(y).fold()).toBe('login,n2,r1u1');
    expect(x.xor(y).fold()).toBe('admin,n[1,3],r2u[1-2],r1u2');
  });

  it('checks the limit of the result', () => {
    const p = NodeSet.parse('n[1-3]', { limit: 5 });
    expect(p.union(NodeSet.parse('n[4-5]')).size).toBe(5);
    expect(fleetError(() => p.union(NodeSet.parse('m[1-3]'))).code).toBe('nodeset.too_large');
  });

  it('has()', () => {
    const ns = NodeSet.parse('n[01-03],r[1-2]u[1-3],login');
    expect(ns.has('n02')).toBe(true);
    expect(ns.has('n2')).toBe(false);
    expect(ns.has('r2u3')).toBe(true);
    expect(ns.has('r3u1')).toBe(false);
    expect(ns.has('login')).toBe(true);
    expect(ns.has('n[01-02]')).toBe(false);
    expect(ns.has('n99999999999999999999')).toBe(false);
  });

  it('counts and operates on big ranges without expanding them', () => {
    const M = { limit: 1_000_000 };
    fast(1000, () => {
      expect(NodeSet.parse('rack[1-1000]node[1-1000]', M).size).toBe(1_000_000);
      expect(NodeSet.parse('n[1-1000000]', M).size).toBe(1_000_000);
      expect(NodeSet.parse('n[1-1000000]!n[2-999999]', M).expand()).toEqual(['n1', 'n1000000']);
      const big = NodeSet.parse('rack[1-1000]u[1-1000]', M);
      expect(big.difference(NodeSet.parse('rack5u5')).size).toBe(999_999);
      expect(big.intersection(NodeSet.parse('rack[999-1500]u[1000-1500]', M)).fold()).toBe('rack[999-1000]u1000');
      expect(NodeSet.parse('n[1-1000000]', M).xor(NodeSet.parse('n[2-1000000]', M)).fold()).toBe('n1');
    });
  });
});

describe('limits', () => {
  it('defaults to 100,000 names', () => {
    expect(DEFAULT_EXPAND_LIMIT).toBe(100_000);
    expect(NodeSet.parse('n[1-100000]').size).toBe(100_000);
    expect(fleetError(() => NodeSet.parse('n[1-100001]')).code).toBe('nodeset.too_large');
    const million = fast(200, () => fleetError(() => NodeSet.parse('n[1-1000000]')));
    expect(million.message).toBe('range "1-1000000" expands to 1000000 names, more than the limit of 100000');
  });

  it('fails fast on huge ranges, naming the limit', () => {
    const e = fast(200, () => fleetError(() => NodeSet.parse('n[1-100000000]')));
    expect(e.code).toBe('nodeset.too_large');
    expect(e.message).toContain('the limit of 100000');
    expect(fast(200, () => fleetError(() => NodeSet.parse('n[1-100000000/2]'))).code).toBe('nodeset.too_large');
    expect(fast(200, () => fleetError(() => NodeSet.parse('r[1-100000]u[1-100000]'))).code).toBe('nodeset.too_large');
    expect(fast(200, () => fleetError(() => runNodesetCommand(['-c', 'n[1-100000000]']))).code).toBe('nodeset.too_large');
  });

  it('applies a custom limit everywhere', () => {
    const opts = { limit: 10 };
    expect(NodeSet.parse('n[1-10]', opts).size).toBe(10);
    expect(NodeSet.parse('n[1-20/2]', opts).size).toBe(10);
    expect(NodeSet.parse('n[1-10],n[5-10]', opts).size).toBe(10);
    for (const expr of ['n[1-11]', 'n[1-6],m[1-6]', 'r[1-4]u[1-3]', 'n[1-30/3],n[2-30/3]', 'n[1-5],m[1-5],x']) {
      expect(fleetError(() => NodeSet.parse(expr, opts)).code, expr).toBe('nodeset.too_large');
    }
    expect(fleetError(() => expandNodeSet('n[1-11]', opts)).code).toBe('nodeset.too_large');
    expect(fleetError(() => expandPattern('[1-4][1-3]', opts)).code).toBe('nodeset.too_large');
    expect(fleetError(() => runNodesetCommand(['-c', 'n[1-6]', 'm[1-6]'], opts)).code).toBe('nodeset.too_large');
    expect(runNodesetCommand(['-c', 'n[1-6]', 'n[5-10]'], opts)).toBe('10');
  });

  it('counts an intermediate operand against the limit', () => {
    expect(fleetError(() => NodeSet.parse('n[1-20]!n[2-20]', { limit: 10 })).code).toBe('nodeset.too_large');
  });
});

describe('errors', () => {
  it('gives clustershell-like messages', () => {
    expect(fleetError(() => NodeSet.parse('n[3-1]')).message).toBe('Parse error: bad range: "invalid values in range : "3-1""');
    expect(fleetError(() => NodeSet.parse('n[1-3')).message).toBe('Parse error: missing bracket: "n[1-3"');
    expect(fleetError(() => NodeSet.parse('n[1-2][3-4]')).message).toBe('Parse error: illegal reopening bracket: "[3-4]"');
    expect(fleetError(() => NodeSet.parse('n[1-3/2]0')).message).toBe('Parse error: illegal trailing digits after range with steps: "0"');
    expect(fleetError(() => NodeSet.parse('n[1,,2]')).message).toBe('Parse error: bad range: "empty range"');
  });

  const hostile: [string, string][] = [
    ['empty', ''],
    ['whitespace', ' \t\n '],
    ['unclosed', 'n['],
    ['stray close', 'n]'],
    ['reversed range', 'n[9-1]'],
    ['letters', 'n[a-b]'],
    ['empty brackets', 'n[]'],
    ['nested', 'n[[1]]'],
    ['double close', 'n[1-2]]'],
    ['zero step', 'n[1-3/0]'],
    ['step on a single index', 'n[5/2]'],
    ['negative', 'n[-5]'],
    ['padding mismatch', 'n[09-010]'],
    ['huge range bound', 'n[1-99999999999999999999]'],
    ['huge index', 'n99999999999999999999'],
    ['node group', '@compute'],
    ['wildcard', 'n*'],
    ['whitespace in a name', 'n1 n2'],
    ['dangling operator', 'n1,'],
    ['leading operator', '^n1'],
    ['double operator', 'n1!!n2'],
    ['only brackets', '[[[['],
    ['many opening brackets', '['.repeat(200_000)],
    ['many closing brackets', ']'.repeat(200_000)],
    ['deep nesting', `n${'['.repeat(50_000)}1${']'.repeat(50_000)}`],
    ['unbalanced long', `n[${'1,'.repeat(100_000)}`],
    ['digits after brackets', `n[1-2]${'0'.repeat(100_000)}`],
    ['digits before brackets', `n${'9'.repeat(100_000)}[1-2]`],
    ['too long', 'x'.repeat(5_000_000)],
  ];
  it.each(hostile)('refuses %s with a FleetError, quickly', (_label, input) => {
    const e = fast(2000, () => fleetError(() => NodeSet.parse(input)));
    expect(['nodeset.invalid', 'nodeset.too_large']).toContain(e.code);
    expect(e.message.length).toBeLessThan(600);
  });

  it('refuses non-string input', () => {
    expect(fleetError(() => NodeSet.parse(42 as unknown as string)).code).toBe('nodeset.invalid');
  });

  // generous bounds: these catch quadratic blow-ups (minutes), not slow machines
  const big: [string, () => string, number][] = [
    ['a 3-million-character name', () => 'a'.repeat(3_000_000), 1],
    ['100,000 comma-separated names', () => Array.from({ length: 100_000 }, (_, i) => `n${2 * i}`).join(','), 100_000],
    ['a name with 50,000 numeric parts', () => 'a[1]'.repeat(50_000), 1],
    ['a set at the limit, then duplicates', () => `n[1-199999/2]${',n1'.repeat(20_000)}`, 100_000],
    ['20,000 differences', () => Array.from({ length: 20_000 }, (_, i) => `n[${i}-${i + 5}]`).join('!'), 1],
    ['1,500 xors of 2D boxes', () => Array.from({ length: 1500 }, (_, i) => `r[${i}-${i + 5}]u[${i % 7}-${(i % 7) + 3}]`).join('^'), -1],
  ];
  it.each(big)('handles %s without blowing up', (_label, make, size) => {
    const expr = make();
    const ns = fast(10_000, () => NodeSet.parse(expr));
    if (size >= 0) expect(ns.size).toBe(size);
    else expect(ns.size).toBeGreaterThan(0);
    expect(fast(10_000, () => ns.fold()).length).toBeGreaterThan(0);
  });
});

describe('expandPattern', () => {
  it('expands in declaration order', () => {
    expect(expandPattern('10.10.3.[1-3]')).toEqual(['10.10.3.1', '10.10.3.2', '10.10.3.3']);
    expect(expandPattern('[9001-9003]')).toEqual(['9001', '9002', '9003']);
    expect(expandPattern('plain')).toEqual(['plain']);
    expect(expandPattern('n[3,1-2]')).toEqual(['n3', 'n1', 'n2']);
    expect(expandPattern('n[1,1]')).toEqual(['n1', 'n1']);
    expect(expandPattern('n[08-10]')).toEqual(['n08', 'n09', 'n10']);
    expect(expandPattern('n[1-7/3]')).toEqual(['n1', 'n4', 'n7']);
  });

  it('iterates several groups like nested loops, leftmost outermost', () => {
    expect(expandPattern('a[2,1]b[1-3]')).toEqual(['a2b1', 'a2b2', 'a2b3', 'a1b1', 'a1b2', 'a1b3']);
  });

  it('keeps text outside brackets literal', () => {
    expect(expandPattern('x,y!z[1-2]')).toEqual(['x,y!z1', 'x,y!z2']);
    expect(expandPattern('10.0.1[0-1].5')).toEqual(['10.0.10.5', '10.0.11.5']);
  });

  it('throws nodeset.invalid on bad syntax', () => {
    for (const bad of ['', 'a[1-2', 'a]', 'a[[1]]', 'a[3-1]', 'a[x]', 'a[]', 'a[1-2]]']) {
      expect(fleetError(() => expandPattern(bad)).code, bad).toBe('nodeset.invalid');
    }
  });

  it('enforces the limit before expanding', () => {
    const e = fast(200, () => fleetError(() => expandPattern('[1-100000][1-100000]')));
    expect(e.code).toBe('nodeset.too_large');
  });
});

describe('runNodesetCommand', () => {
  it.each(CLUSTERSHELL_CASES.map(([args, out]) => [args.join(' '), args, out] as const))(
    'matches clustershell: nodeset %s',
    (_label, args, out) => {
      expect(runNodesetCommand([...args])).toBe(out);
    },
  );

  it('prints an empty result like clustershell', () => {
    expect(runNodesetCommand(['-f', ''])).toBe('');
    expect(runNodesetCommand(['-c', ' '])).toBe('0');
    expect(runNodesetCommand(['-e', 'n1', '-x', 'n1'])).toBe('');
  });

  it('treats every line of an argument as a nodeset', () => {
    expect(runNodesetCommand(['-f', 'n1\nn2\r\nn3'])).toBe('n[1-3]');
  });

  it('refuses bad usage with usage.invalid', () => {
    const cases: string[][] = [
      [],
      ['n1'],
      ['-z', 'n1'],
      ['-e', '-f', 'n1'],
      ['-c'],
      ['-f', '-'],
      ['--ex', 'n1'],
      ['-f', '--split'],
      ['-f', '--split=x', 'n1'],
      ['--autostep=x', '-f', 'n1'],
      ['--split=2', '--contiguous', '-f', 'n1'],
      ['-l'],
      ['-f', '-s', 'src', 'n1'],
      ['-e', 'n1', '-x'],
      ['-O', '%d', '-e', 'n1'],
      ['-R', '-f', '1-2'],
    ];
    for (const args of cases) {
      expect(fleetError(() => runNodesetCommand(args)).code, args.join(' ')).toBe('usage.invalid');
    }
  });

  it('reports nodeset syntax errors as nodeset.invalid', () => {
    expect(fleetError(() => runNodesetCommand(['-e', 'n[3-1]'])).code).toBe('nodeset.invalid');
    expect(fleetError(() => runNodesetCommand(['-f', 'n1', '-x', 'n['])).code).toBe('nodeset.invalid');
  });
});

// ---------------------------------------------------------------------------
// Property tests

/** Splits a name into its clustershell pattern key and index strings (independent of the implementation). */
function splitRef(name: string): { key: string; idx: string[] } {
  const texts: string[] = [];
  const idx: string[] = [];
  for (const m of name.matchAll(/(\D*)(\d*)/g)) {
    if (m[0] === '') continue;
    texts.push(m[1]!);
    if (m[2]) idx.push(m[2]);
  }
  // the text after the last digit run closes the pattern
  let key = '';
  let rest = name;
  for (const i of idx) {
    const at = rest.indexOf(i);
    key += `${rest.slice(0, at).replaceAll('%', '%%')}%s`;
    rest = rest.slice(at + i.length);
  }
  key += rest.replaceAll('%', '%%');
  return { key, idx };
}

/** clustershell order: by pattern, then index tuple with indexes compared by (length, value). */
function sortRef(names: Iterable<string>): string[] {
  const cmpIdx = (a: string, b: string): number => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
  return [...names]
    .map((n) => ({ n, ...splitRef(n) }))
    .sort((x, y) => {
      if (x.key !== y.key) return x.key < y.key ? -1 : 1;
      for (let i = 0; i < x.idx.length; i++) {
        const c = cmpIdx(x.idx[i]!, y.idx[i]!);
        if (c !== 0) return c;
      }
      return 0;
    })
    .map((x) => x.n);
}

describe('property: fold then parse gives the same names back', () => {
  it('holds for 400 random name sets (seeded)', () => {
    const r = prng(20240611);
    const index = (): string => {
      const v = r.pick([r.int(0, 12), r.int(0, 120), r.int(90, 1100)]);
      return r.chance(0.35) ? String(v).padStart(r.int(2, 4), '0') : String(v);
    };
    for (let iter = 0; iter < 400; iter++) {
      const prefixes = ['n', 'node', 'cn', 'gpu-', 'a%b'].filter(() => r.chance(0.6));
      if (prefixes.length === 0) prefixes.push('n');
      const names: string[] = [];
      const count = r.int(0, 80);
      for (let k = 0; k < count; k++) {
        const kind = r.int(0, 9);
        if (kind === 0) names.push(r.pick(['login', 'admin', 'gw-a']));
        else if (kind <= 5) names.push(`${r.pick(prefixes)}${index()}${r.pick(['', '', '-bmc', '.ib'])}`);
        else if (kind <= 8) names.push(`r${r.int(1, 4)}u${String(r.int(1, 8)).padStart(r.pick([1, 2]), '0')}`);
        else names.push(`r${r.int(1, 2)}u${index()}p${r.int(0, 3)}`);
      }
      const unique = new Set(names);
      const folded = NodeSet.fromNames(names).fold();
      if (unique.size === 0) {
        expect(folded).toBe('');
        continue;
      }
      const back = NodeSet.parse(folded);
      const expanded = back.expand();
      const ctx = `iteration ${iter}: ${folded}`;
      // same names, no duplicates
      expect(expanded.length, ctx).toBe(unique.size);
      expect(sortRef(expanded), ctx).toEqual(sortRef(unique));
      expect(back.size, ctx).toBe(unique.size);
      // clustershell order: patterns sorted; names with 0 or 1 numeric part fully sorted
      // (names with several parts come box by box, in clustershell's folded order)
      const keys = expanded.map((n) => splitRef(n).key);
      expect(keys, ctx).toEqual([...keys].sort());
      const simple = (n: string): boolean => splitRef(n).idx.length <= 1;
      expect(expanded.filter(simple), ctx).toEqual(sortRef(unique).filter(simple));
      // folding is canonical, membership agrees
      expect(back.fold(), ctx).toBe(folded);
      expect(NodeSet.fromNames(expanded.slice().reverse()).fold(), ctx).toBe(folded);
      for (const n of unique) expect(back.has(n), `${ctx} has ${n}`).toBe(true);
      expect(back.has('zzz-not-there'), ctx).toBe(false);
    }
  });
});

describe('property: set algebra agrees with plain JS Sets', () => {
  interface Dim {
    items: [number, number, number, number][]; // start, stop, step, pad
  }
  const render = (prefix: string, dims: Dim[]): string =>
    prefix +
    dims
      .map(
        (d, i) =>
          `${i > 0 ? 'u' : ''}[${d.items
            .map(([a, b, step, pad]) => {
              const f = (v: number): string => String(v).padStart(pad, '0');
              return a === b ? f(a) : `${f(a)}-${f(b)}${step > 1 ? `/${step}` : ''}`;
            })
            .join(',')}]`,
      )
      .join('');
  const naive = (prefix: string, dims: Dim[]): string[] => {
    let out = [prefix];
    dims.forEach((d, i) => {
      const vals: string[] = [];
      for (const [a, b, step, pad] of d.items) for (let v = a; v <= b; v += step) vals.push(String(v).padStart(pad, '0'));
      out = out.flatMap((p) => vals.map((v) => `${p}${i > 0 ? 'u' : ''}${v}`));
    });
    return out;
  };

  it('holds for 300 random expressions (seeded)', () => {
    const r = prng(77);
    for (let iter = 0; iter < 300; iter++) {
      const dimCount = r.pick([1, 1, 2]);
      const prefix = r.pick(['n', 'r']);
      const operand = (): Dim[] =>
        Array.from({ length: dimCount }, () => ({
          items: Array.from({ length: r.int(1, 3) }, (): [number, number, number, number] => {
            const a = r.int(0, 14);
            const b = a + r.int(0, 8);
            return [a, b, r.chance(0.2) ? r.int(2, 3) : 1, r.chance(0.3) ? 2 : 0];
          }),
        }));
      const first = operand();
      let expr = render(prefix, first);
      let expected = new Set(naive(prefix, first));
      const steps: [string, string][] = [];
      const ops = r.int(1, 4);
      for (let k = 0; k < ops; k++) {
        const op = r.pick([',', '!', '&', '^']);
        const dims = operand();
        steps.push([op, render(prefix, dims)]);
        expr += op + render(prefix, dims);
        const other = new Set(naive(prefix, dims));
        if (op === ',') expected = new Set([...expected, ...other]);
        else if (op === '!') expected = new Set([...expected].filter((x) => !other.has(x)));
        else if (op === '&') expected = new Set([...expected].filter((x) => other.has(x)));
        else expected = new Set([...[...expected].filter((x) => !other.has(x)), ...[...other].filter((x) => !expected.has(x))]);
      }
      const ns = NodeSet.parse(expr);
      const got = ns.expand();
      expect(new Set(got), expr).toEqual(expected);
      expect(got.length, expr).toBe(expected.size);
      expect(ns.size, expr).toBe(expected.size);
      // the methods agree with the operators
      let viaMethods = NodeSet.parse(render(prefix, first));
      for (const [op, text] of steps) {
        const o = NodeSet.parse(text);
        viaMethods =
          op === ','
            ? viaMethods.union(o)
            : op === '!'
              ? viaMethods.difference(o)
              : op === '&'
                ? viaMethods.intersection(o)
                : viaMethods.xor(o);
      }
      expect(viaMethods.fold(), expr).toBe(ns.fold());
    }
  });
});
