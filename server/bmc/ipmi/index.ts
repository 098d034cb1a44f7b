/**
 * Native IPMI v2.0 / RMCP+ provider. Typical use:
 *
 *   const transport = await IpmiTransport.open();          // one UDP socket per process
 *   const bmc = createIpmiDriver(transport, target, { cipherSuite: 3, timeoutMs: 10_000 });
 *   await bmc.powerStatus();
 *   await bmc.close();                                      // Close Session
 *   await transport.close();
 */
export { IpmiTransport, type IpmiTransportOptions, type Endpoint, type TransportStats } from './transport.js';
export { IpmiDriver, createIpmiDriver, type IpmiDriverOptions } from './driver.js';
export { IpmiSession, type SessionOpenOptions, type PrivilegeName } from './session.js';
export { IpmiClient } from './client.js';
