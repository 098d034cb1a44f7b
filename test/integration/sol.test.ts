/**
 * Native SOL (server/bmc/ipmi/sol-console.ts) against a real ipmi_sim whose
 * SOL is wired to a TCP socket this test owns (the "serial line").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../common/errors.js';
import { SolConsole } from '../../server/bmc/ipmi/sol-console.js';
import { IpmiTransport } from '../../server/bmc/ipmi/transport.js';
import { randomInt } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labSerialPort, renderLanConf, startBmc, stopBmc } from '../../server/lab/bmc.js';
import { serialChardev } from '../../server/lab/vm.js';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, ownsUdpPortAlone, startIpmiSims } from '../helpers/ipmisim.js';
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

  it('the keepalive notices a takeover with no keystroke (Get Payload Instance Info)', async () => {
    const ends: FleetError[] = [];
    const first = await SolConsole.open(transport, lab.bmcs[0]!.target, { keepaliveMs: 300 }, { onData: () => undefined, onEnd: (e) => ends.push(e) });
    const second = await SolConsole.open(transport, lab.bmcs[0]!.target, { force: true }, { onData: () => undefined, onEnd: () => undefined });
    try {
      await until(() => ends.length === 1);
      expect(ends[0]!.message).toMatch(/taken over by another session/);
    } finally {
      await second.close();
      await first.close();
    }
  }, 30_000);

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

  it("the lab's BMC configuration wires SOL to the VM's serial port (the test plays QEMU's serial server)", async () => {
    // What `fleet lab up` writes: lan.conf with `sol "tcp:127.0.0.1:PORT"`, QEMU's chardev serving that port.
    const dir = mkdtempSync(join(tmpdir(), 'fleet-lab-sol-'));
    const vmLine = await startSerialLine();
    const hook = join(dir, 'hook.sh');
    writeFileSync(hook, '#!/bin/sh\nshift\n[ "$1" = get ] && echo "power:0"\nexit 0\n');
    chmodSync(hook, 0o755);
    const vmDir = join(dir, 'vm');
    let started: { pid: number; port: number } | null = null;
    try {
      for (let i = 0; i < 5 && !started; i++) {
        const port = randomInt(12000, 14000);
        const spec = { name: 'labvm', vmDir, address: '127.0.0.1', port, username: 'admin', password: 'Lab-Sol-Pw-1', hook, solPort: vmLine.port };
        expect(renderLanConf(spec)).toContain(`  sol "tcp:127.0.0.1:${vmLine.port}" 115200\n`);
        try {
          const pid = await startBmc(undefined, IPMI_SIM!, spec, IPMITOOL);
          if (ownsUdpPortAlone(pid, port)) started = { pid, port };
          else await stopBmc(vmDir);
        } catch {
          // port taken: try another
        }
      }
      expect(started).not.toBeNull();
      await vmLine.connected();
      let out = '';
      const c = await SolConsole.open(transport, { address: '127.0.0.1', port: started!.port, username: 'admin', password: 'Lab-Sol-Pw-1' }, {}, { onData: (d) => (out += d.toString()), onEnd: () => undefined });
      try {
        await vmLine.write('SeaBIOS (version 1.16.2)\r\n');
        await until(() => out.includes('SeaBIOS'));
        c.write(Buffer.from('\r'));
        await vmLine.waitFor('\r');
      } finally {
        await c.close();
      }
    } finally {
      await stopBmc(vmDir);
      await vmLine.close();
      rmSync(dir, { recursive: true, force: true });
    }
    // QEMU's side of the same wiring (not run here: no VMs in this suite).
    expect(serialChardev({ dir: '/lab/vms/n1', serialPort: labSerialPort(9001) })).toBe('socket,id=con0,host=127.0.0.1,port=10001,server=on,wait=off,logfile=/lab/vms/n1/console.log,logappend=on');
    expect(serialChardev({ dir: '/lab/vms/n1' })).toBe('file,id=con0,path=/lab/vms/n1/console.log,append=on');
  }, 60_000);
});
