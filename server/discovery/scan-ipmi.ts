/**
 * The IPMI probe of a BMC scan (I/O only; scan-classify.ts decides what the
 * answers mean). Two pre-session requests go out side by side on the scan's
 * own IpmiTransport, no credentials in either:
 *   - the RMCP/ASF presence ping (IPMI v2.0 §13.2.3), answered by a pong that
 *     says whether the device supports IPMI;
 *   - Get Channel Authentication Capabilities in IPMI v1.5 framing (§22.13),
 *     asking for the IPMI v2.0 extended data; a BMC that refuses that form
 *     (an error completion code) is asked the v1.5 form after.
 * The transport sends each 1 + retries times (timeout / (retries + 1)
 * apart: the scan opens it with that interval) and waits until the deadline,
 * drops replies from any other address or port, and fails a request whose
 * peer sends garbage.
 */
import { FleetError, toFleetError } from '../../common/errors.js';
import { getChannelAuthCaps } from '../bmc/ipmi/commands.js';
import { encodeIpmiRequest } from '../bmc/ipmi/message.js';
import { encodeIpmi15Packet } from '../bmc/ipmi/packet.js';
import { Privilege } from '../bmc/ipmi/rakp.js';
import { type Endpoint, type IpmiTransport, remoteKeyOf, sessionlessKey } from '../bmc/ipmi/transport.js';
import type { IpmiRaw, Settled } from './scan-classify.js';

async function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: await p };
  } catch (e) {
    const fe = toFleetError(e);
    return { error: { code: fe.code, message: fe.message } };
  }
}

/** Get Channel Auth Caps, sessionless, at the privilege a console asks for first (administrator, as ipmitool does). */
async function channelAuthCaps(transport: IpmiTransport, remote: Endpoint, deadline: number, maxAttempts: number, extended: boolean): Promise<{ completionCode: number; data: Buffer }> {
  const label = remoteKeyOf(remote.address, remote.port);
  const spec = getChannelAuthCaps(Privilege.ADMINISTRATOR, 0x0e, extended);
  const rqSeq = transport.nextCounter(`sl|${label}`, 64, (v) => transport.isPending(sessionlessKey(label, v)));
  const reply = await transport.request({
    remote,
    key: sessionlessKey(label, rqSeq),
    deadline,
    maxAttempts,
    what: 'Get Channel Authentication Capabilities',
    encode: () => encodeIpmi15Packet({ payload: encodeIpmiRequest({ ...spec, rqSeq }) }),
    accept: (r) => r.response?.cmd === spec.cmd && r.response.netFn === spec.netFn + 1,
  });
  const res = reply.response;
  if (!res) throw new FleetError('bmc.protocol', `IPMI Get Channel Authentication Capabilities: ${label} answered without an IPMI message`);
  return { completionCode: res.completionCode, data: Buffer.from(res.data) };
}

/**
 * Probes one address; never throws. Each request is sent 1 + `retries`
 * times at most, then waited for until its deadline; at most two timeouts
 * long (the v1.5 form only follows an answer).
 */
export async function probeIpmi(transport: IpmiTransport, address: string, port: number, timeoutMs: number, retries: number): Promise<IpmiRaw> {
  const remote = { address, port };
  const deadline = Date.now() + timeoutMs;
  const maxAttempts = retries + 1;
  const [pong, caps] = await Promise.all([
    settle(transport.ping(remote, deadline, { maxAttempts })),
    settle(channelAuthCaps(transport, remote, deadline, maxAttempts, true)),
  ]);
  const raw: IpmiRaw = { pong, caps };
  if ('ok' in caps && caps.ok.completionCode !== 0) {
    raw.capsV15 = await settle(channelAuthCaps(transport, remote, Date.now() + timeoutMs, maxAttempts, false));
  }
  return raw;
}
