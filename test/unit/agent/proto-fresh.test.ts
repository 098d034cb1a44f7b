/**
 * "CI fails if generated code is stale" (DESIGN §1): regenerate the agent
 * contract into a temp dir with scripts/gen-proto.sh and compare with
 * proto/gen byte for byte.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../../..');
const protoc = process.env.PROTOC ?? 'protoc';
const haveProtoc = spawnSync(protoc, ['--version']).status === 0;

function listTs(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

describe('proto/gen is fresh', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-proto-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it.skipIf(!haveProtoc)('regenerating proto/fleet/v1/*.proto gives exactly proto/gen (protoc missing: apt-get install protobuf-compiler)', () => {
    execFileSync('sh', [path.join(root, 'scripts/gen-proto.sh'), tmp], { cwd: root, stdio: 'pipe' });
    const committed = listTs(path.join(root, 'proto/gen'));
    const fresh = listTs(tmp);
    expect(fresh.length).toBeGreaterThan(0);
    expect(committed, 'generated file set differs: run ./scripts/gen-proto.sh').toEqual(fresh);
    for (const f of fresh) {
      const a = fs.readFileSync(path.join(root, 'proto/gen', f));
      const b = fs.readFileSync(path.join(tmp, f));
      expect(a.equals(b), `proto/gen/${f} is stale: run ./scripts/gen-proto.sh`).toBe(true);
    }
  });

  it('every service method of agent.proto is in the generated service', async () => {
    const text = fs.readFileSync(path.join(root, 'proto/fleet/v1/agent.proto'), 'utf8');
    const rpcs = [...text.matchAll(/^\s*rpc\s+(\w+)\s*\(/gm)].map((m) => m[1]!);
    const gen = await import('../../../proto/gen/fleet/v1/agent.js');
    const paths = Object.values(gen.AgentServiceService).map((m) => m.path);
    expect(paths.sort()).toEqual(rpcs.map((r) => `/fleet.v1.AgentService/${r}`).sort());
    expect(rpcs).toEqual(['Enroll', 'ReportInventory', 'GetConfig', 'ReportApply', 'ReportBoot', 'Heartbeat', 'Watch']);
  });
});
