/**
 * Native SOL (server/bmc/ipmi/sol-console.ts) against a real ipmi_sim whose
 * SOL is wired to a TCP socket this test owns (the "serial line").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../common/errors.js';
import { SolConsole } from '../../server/bmc/ipmi/sol-console.js';
import { IpmiTransport } from '../../server/bmc/ipmi/transport.js';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';
import { type SerialLine, startSerialLine } from '../helpers/serial-line.js';

if ((!IPMI_SIM || !IPMITOOL) && process.env.CI === 'true') throw new Error('ipmi_sim and ipmitool are required in CI (.ci/deps.sh installs them)');
const suite = IPMI_SIM && IPMITOOL ? describe : describe.skip;

async function until(check: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

suite('native SOL against ipmi_sim', () => {
  let lab: IpmiSimLab;
  let line: SerialLine;
  let transport: IpmiTransport;

  beforeAll(async () => {
    line = await startSerialLine();
    lab = await startIpmiSims(1, { sol: () => `tcp:127.0.0.1:${line.port}` });
    transport = await IpmiTransport.open();
    await line.connected();
  }, 30_000);

  afterAll(async () => {
    await transport?.close();
    await lab?.stop();
    await line?.close();
  });

  it('carries characters both ways, refuses a second console, deactivates on close', async () => {
    let out = Buffer.alloc(0);
    const ends: FleetError[] = [];
    const c = await SolConsole.open(transport, lab.bmcs[0]!.target, { keepaliveMs: 1000 }, { onData: (d) => (out = Buffer.concat([out, d])), onEnd: (e) => ends.push(e) });
    try {
      await line.write('BIOS v1.0\r\nbooting kernel...\r\n');
      await until(() => out.toString().includes('booting kernel...'));
      // More than one packet's worth, from the serial side and from the keyboard.
      const big = 'x'.repeat(900) + 'END\r\n';
      await line.write(big);
      await until(() => out.toString().includes('END'));
      expect(out.toString().split('x').length - 1).toBe(900);
      c.write(Buffer.from('root\r'));
      await line.waitFor('root\r');
      c.write(Buffer.from('y'.repeat(700) + 'TAIL'));
      await line.waitFor('TAIL');
      expect(line.received().toString().split('y').length - 1).toBe(700);

      // The BMC holds one SOL (instance 1): a second console gets a clear "busy".
      const second = await SolConsole.open(transport, lab.bmcs[0]!.target, {}, { onData: () => undefined, onEnd: () => undefined }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(second).toBeInstanceOf(FleetError);
      expect((second as FleetError).code).toBe('conflict');
      expect((second as FleetError).message).toMatch(/console busy/);
      // Keepalives keep it up.
      await new Promise((r) => setTimeout(r, 2500));
      expect(ends).toEqual([]);
    } finally {
      await c.close();
    }
    // Deactivated: a new console attaches, and ipmitool agrees it is free after that one closes.
    const again = await SolConsole.open(transport, lab.bmcs[0]!.target, {}, { onData: (d) => (out = Buffer.concat([out, d])), onEnd: () => undefined });
    await line.write('again\r\n');
    await until(() => out.toString().includes('again'));
    await again.close();
  }, 60_000);

  it('--force takes the console over; the first one notices', async () => {
    const ends: FleetError[] = [];
    const first = await SolConsole.open(transport, lab.bmcs[0]!.target, { retransmitMs: 100, maxRetransmits: 5 }, { onData: () => undefined, onEnd: (e) => ends.push(e) });
    let out = '';
    const second = await SolConsole.open(transport, lab.bmcs[0]!.target, { force: true }, { onData: (d) => (out += d.toString()), onEnd: () => undefined });
    try {
      await line.write('stolen\r\n');
      await until(() => out.includes('stolen'));
      // ipmi_sim drops the first session's SOL without a "deactivating" packet: the first console
      // notices at its next keystroke, which is never acknowledged, and never reaches the line.
      first.write(Buffer.from('from-the-first'));
      await until(() => ends.length === 1);
      expect(ends[0]!.message).toMatch(/stopped acknowledging/);
      expect(first.isEnded).toBe(true);
      expect(line.received().toString()).not.toContain('from-the-first');
    } finally {
      await second.close();
      await first.close();
    }
  }, 30_000);
});
