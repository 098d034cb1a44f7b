/**
 * Where each face of the server listens (server/listeners.ts): the defaults
 * keep the admin API off the provisioning network, the flags win over
 * fleet.yaml, and one socket is never asked to serve two faces.
 */
import { describe, expect, it } from 'vitest';
import { parseListen } from '../../../common/listen.js';
import { planListeners, type ListenInputs } from '../../../server/listeners.js';

const base = (over: Partial<ListenInputs> = {}): ListenInputs => ({ flags: {}, config: {}, managementAddress: '10.10.0.1', ...over });

describe('listener plan', () => {
  it('defaults: admin on loopback, boot endpoints and gRPC on the management address', () => {
    const p = planListeners(base());
    expect(p.admin).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(p.boot).toEqual({ host: '10.10.0.1', port: 8080 });
    expect(p.bootImplicit).toBe(true);
    expect(p.grpc).toEqual({ host: '10.10.0.1', port: 50051 });
    expect(p.advertise.boot).toBe('10.10.0.1');
    expect(p.warnings).toEqual([]);
  });

  it('fleet.yaml settings, and flags over them', () => {
    const config = { listen: '10.0.0.5:9443', bootListen: '10.10.0.1:80', grpcListen: '10.10.0.1:6000' };
    const p = planListeners(base({ config }));
    expect([p.admin, p.boot, p.grpc, p.bootImplicit]).toEqual([
      { host: '10.0.0.5', port: 9443 },
      { host: '10.10.0.1', port: 80 },
      { host: '10.10.0.1', port: 6000 },
      false,
    ]);
    const f = planListeners(base({ config, flags: { listen: '127.0.0.1:1', bootListen: '127.0.0.1:2', grpcListen: '127.0.0.1:3' } }));
    expect([f.admin.port, f.boot.port, f.grpc.port]).toEqual([1, 2, 3]);
  });

  it('a wildcard boot address is advertised as the management address', () => {
    const p = planListeners(base({ config: { bootListen: '0.0.0.0:8081' } }));
    expect(p.boot.host).toBe('0.0.0.0');
    expect(p.advertise.boot).toBe('10.10.0.1');
    expect(p.grpc.host).toBe('0.0.0.0');
    expect(parseListen('*:8080')).toEqual({ host: '0.0.0.0', port: 8080 });
  });

  it('an admin port 0 (tests) makes the default boot and gRPC ports 0 too: two servers on one host never collide', () => {
    const p = planListeners(base({ flags: { listen: '127.0.0.1:0' } }));
    expect([p.admin.port, p.boot.port, p.grpc.port]).toEqual([0, 0, 0]);
  });

  it('warns when the admin API faces the provisioning network', () => {
    expect(planListeners(base({ config: { listen: '0.0.0.0:9000' } })).warnings).toEqual([expect.stringMatching(/provisioning network can reach/)]);
    expect(planListeners(base({ config: { listen: '10.10.0.1:9000' } })).warnings).toHaveLength(1);
  });

  it('refuses one socket for two faces, and bad addresses', () => {
    expect(() => planListeners(base({ config: { listen: '10.10.0.1:8080' } }))).toThrow(/cannot share one socket/);
    expect(() => planListeners(base({ config: { listen: '0.0.0.0:8080' } }))).toThrow(/cannot share one socket/);
    expect(() => planListeners(base({ flags: { listen: 'nonsense' } }))).toThrow(/bad listen address 'nonsense'/);
    expect(() => planListeners(base({ flags: { grpcListen: '1.2.3.4:70000' } }))).toThrow(/bad listen address/);
  });
});
