import { mkdtempSync, readFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../common/errors.js';
import { FrameDecoder, encodeBreakFrame, encodeDataFrames } from '../../../server/console/frames.js';
import { ipmitoolSolError } from '../../../server/console/ipmitool-sol.js';
import { ConsoleLog, consoleLogPath } from '../../../server/console/log.js';
import { watchPlan } from '../../../server/console/manager.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'fleet-console-unit-'));
  dirs.push(d);
  return d;
};

describe('console client frames', () => {
  it('round-trips data and breaks however TCP cuts them', () => {
    const wire = Buffer.concat([encodeDataFrames(Buffer.from('hello')), encodeBreakFrame(), encodeDataFrames(Buffer.from('x'))]);
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const frames = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
      expect(frames).toEqual([{ type: 'data', data: Buffer.from('hello') }, { type: 'break' }, { type: 'data', data: Buffer.from('x') }]);
    }
  });

  it('splits large writes into frames of at most 65535 bytes', () => {
    const big = Buffer.alloc(70_000, 0x61);
    const frames = new FrameDecoder().push(encodeDataFrames(big));
    expect(frames.map((f) => (f.type === 'data' ? f.data.length : -1))).toEqual([65535, 4465]);
  });

  it('rejects an unknown frame type or a break with data (request.invalid)', () => {
    expect(() => new FrameDecoder().push(Buffer.from([7, 0, 0]))).toThrow(FleetError);
    expect(() => new FrameDecoder().push(Buffer.from([1, 0, 1, 0]))).toThrow(/break frame/);
  });
});

describe('console log', () => {
  it('appends, rotates past the bound to NODE.log.1, keeps the tail of an oversized chunk', () => {
    const dir = tmp();
    const log = new ConsoleLog(dir, 'n01', 100);
    log.append(Buffer.from('a'.repeat(60)));
    log.append(Buffer.from('b'.repeat(60)));
    expect(readFileSync(join(dir, 'n01.log.1'), 'utf8')).toBe('a'.repeat(60));
    expect(readFileSync(join(dir, 'n01.log'), 'utf8')).toBe('b'.repeat(60));
    log.append(Buffer.from('c'.repeat(250)));
    expect(readFileSync(join(dir, 'n01.log'), 'utf8')).toBe('c'.repeat(100));
    expect(statSync(join(dir, 'n01.log')).size).toBeLessThanOrEqual(100);
  });

  it('continues an existing file and counts its size', () => {
    const dir = tmp();
    new ConsoleLog(dir, 'n02', 50).append(Buffer.from('x'.repeat(40)));
    new ConsoleLog(dir, 'n02', 50).append(Buffer.from('y'.repeat(20)));
    expect(readFileSync(join(dir, 'n02.log'), 'utf8')).toBe('y'.repeat(20));
    expect(readFileSync(join(dir, 'n02.log.1'), 'utf8')).toBe('x'.repeat(40));
  });

  it('a write error stops logging for that node, reported once, never thrown', () => {
    const dir = tmp();
    const errors: Error[] = [];
    const log = new ConsoleLog(dir, 'n03', 100, (e) => errors.push(e));
    rmSync(dir, { recursive: true, force: true });
    log.append(Buffer.from('lost'));
    log.append(Buffer.from('lost'));
    expect(errors).toHaveLength(1);
    expect(existsSync(join(dir, 'n03.log'))).toBe(false);
  });

  it('refuses names that are not plain file names', () => {
    expect(() => consoleLogPath('/d', '../etc/passwd')).toThrow(/node name/);
    expect(() => consoleLogPath('/d', 'a/b')).toThrow(/node name/);
    expect(consoleLogPath('/d', 'node-01.lab')).toBe('/d/node-01.lab.log');
  });
});

describe("ipmitool sol activate's errors", () => {
  it('maps what ipmitool says to the catalogue', () => {
    expect(ipmitoolSolError('tcgetattr: Inappropriate ioctl for device\nInfo: SOL payload already active on another session\n', 'b:623')).toMatchObject({ code: 'conflict', message: expect.stringMatching(/console busy/) });
    expect(ipmitoolSolError('Error in open session response message : unauthorized name\n', 'b:623').code).toBe('bmc.auth_failed');
    expect(ipmitoolSolError('Error: No response activating SOL payload\n', 'b:623').code).toBe('bmc.timeout');
    expect(ipmitoolSolError('> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n', 'b:623').code).toBe('bmc.auth_failed');
    expect(ipmitoolSolError('Error: Unable to establish IPMI v2 / RMCP+ session\n', 'b:623')).toMatchObject({ code: 'bmc.command_failed', message: expect.stringMatching(/could not open a session/) });
    expect(ipmitoolSolError('', 'b:623')).toMatchObject({ code: 'bmc.command_failed', message: 'SOL on b:623: ipmitool sol activate failed' });
  });
});

describe('console watcher plan', () => {
  const nodes = [
    { name: 'a', state: 'installing', protocol: 'ipmi' },
    { name: 'b', state: 'netbooting', protocol: 'ipmitool' },
    { name: 'c', state: 'ready', protocol: 'ipmi' },
    { name: 'd', state: 'installing', protocol: 'redfish' },
    { name: 'e', state: 'installing', protocol: null },
    { name: 'f', state: 'first-boot', protocol: 'ipmi' },
  ];
  it('opens install/boot-phase IPMI nodes not yet watched, releases the rest', () => {
    expect(watchPlan(nodes, new Set(['a', 'c']), new Map(), 1000)).toEqual({ open: ['b', 'f'], release: ['c'] });
  });
  it('waits out the retry time of a node that failed to open', () => {
    expect(watchPlan(nodes, new Set(), new Map([['b', 2000]]), 1000).open).toEqual(['a', 'f']);
    expect(watchPlan(nodes, new Set(), new Map([['b', 2000]]), 2000).open).toEqual(['a', 'b', 'f']);
  });
});
