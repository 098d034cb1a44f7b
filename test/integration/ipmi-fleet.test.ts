/**
 * 50 ipmi_sim BMCs through ONE IpmiTransport (one UDP socket): every power
 * status right, every power change lands, sessions closed. Timings are
 * printed for the record (LAB-NOTES style); the assertions are generous.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIpmiDriver, type IpmiDriver } from '../../server/bmc/ipmi/driver.js';
import { IpmiTransport } from '../../server/bmc/ipmi/transport.js';
import { createIpmitoolDriver } from '../../server/bmc/ipmitool/driver.js';
import { IPMITOOL, IPMI_SIM, type IpmiSimLab, startIpmiSims } from '../helpers/ipmisim.js';

const N = 50;
const READY = IPMI_SIM !== null && IPMITOOL !== null;
const suite = READY ? describe : describe.skip;
const title = READY ? `${N} ipmi_sim BMCs through one transport` : `${N} ipmi_sim BMCs — SKIPPED: ipmi_sim and/or ipmitool not installed (apt-get install openipmi ipmitool)`;

suite(title, () => {
  let lab: IpmiSimLab;
  let transport: IpmiTransport;
  let drivers: IpmiDriver[] = [];

  beforeAll(async () => {
    const t0 = Date.now();
    lab = await startIpmiSims(N, { initial: (i) => ({ power: i % 3 === 0 ? 'on' : 'off' }) });
    console.log(`started ${N} ipmi_sim in ${Date.now() - t0} ms`);
    transport = await IpmiTransport.open();
  });

  afterAll(async () => {
    await Promise.allSettled(drivers.map((d) => d.close()));
    await transport?.close();
    await lab?.stop();
  });

  it(`${N} concurrent power status (session set-up included) are all correct`, async () => {
    drivers = lab.bmcs.map((b) => createIpmiDriver(transport, b.target, { timeoutMs: 10_000 }));
    const t0 = Date.now();
    const states = await Promise.all(drivers.map((d) => d.powerStatus()));
    const cold = Date.now() - t0;
    lab.bmcs.forEach((b, i) => expect(states[i]).toBe(b.state().power));
    const t1 = Date.now();
    const again = await Promise.all(drivers.map((d) => d.powerStatus()));
    const warm = Date.now() - t1;
    expect(again).toEqual(states);
    console.log(`${N} × powerStatus through one socket: ${cold} ms with session set-up, ${warm} ms on open sessions; stats ${JSON.stringify(transport.stats)}`);
    expect(cold).toBeLessThan(5000);
    for (const d of drivers) expect(d.sessionsOpened).toBe(1);
  });

  it(`${N} concurrent power on land on every BMC`, async () => {
    const t0 = Date.now();
    await Promise.all(drivers.map((d) => d.powerOn()));
    console.log(`${N} × powerOn (status + chassis control): ${Date.now() - t0} ms`);
    for (const b of lab.bmcs) expect(b.state().power).toBe('on');
    expect(await Promise.all(drivers.map((d) => d.powerStatus()))).toEqual(lab.bmcs.map(() => 'on'));
  });

  it('all sessions close; independent ipmitool check on a sample', async () => {
    await Promise.all(drivers.map((d) => d.close()));
    expect(transport.pendingCount).toBe(0);
    for (const b of [lab.bmcs[0]!, lab.bmcs[N - 1]!]) {
      const r = await b.ipmitool(['chassis', 'power', 'status']);
      expect(r.stdout).toContain('Chassis Power is on');
    }
  });

  it(`for comparison: ${N} concurrent power status through the ipmitool provider`, async () => {
    const t0 = Date.now();
    const states = await Promise.all(lab.bmcs.map((b) => createIpmitoolDriver(b.target, { timeoutMs: 20_000 }).powerStatus()));
    console.log(`${N} × powerStatus via ${N} ipmitool processes: ${Date.now() - t0} ms`);
    expect(states).toEqual(lab.bmcs.map(() => 'on'));
  });
});
