/**
 * A bundle in DATA/www/agent built from other agent sources is rebuilt: the
 * lab once baked an agent from before the inventory work into its image and
 * reported what the old agent saw.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { agentSourceDigest, bundleBuildReason } from '../../../server/images/build.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-agent-src-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(tmp, 'root-'));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

describe('the agent bundle is rebuilt when its sources change', () => {
  const files = { 'agent/run.ts': 'a', 'agent/inventory/collect.ts': 'b', 'common/x.ts': 'c', 'proto/gen/fleet/v1/agent.ts': 'd', 'package-lock.json': '{}', 'server/serve.ts': 's' };

  it('agentSourceDigest: the agent, common, generated proto and the lock file count; server code and node_modules do not', async () => {
    const d = await agentSourceDigest(tree(files));
    expect(d).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await agentSourceDigest(tree(files))).toBe(d);
    expect(await agentSourceDigest(tree({ ...files, 'server/serve.ts': 'changed' }))).toBe(d);
    expect(await agentSourceDigest(tree({ ...files, 'agent/node_modules/x/index.js': 'x' }))).toBe(d);
    for (const [k, v] of [['agent/inventory/collect.ts', 'B'], ['common/x.ts', 'C'], ['proto/gen/fleet/v1/agent.ts', 'D'], ['package-lock.json', '{"x":1}'], ['agent/new.ts', 'n']] as const) {
      expect(await agentSourceDigest(tree({ ...files, [k]: v })), k).not.toBe(d);
    }
    // a file moved is a change, even with the same content
    const { 'common/x.ts': x, ...rest } = files;
    expect(await agentSourceDigest(tree({ ...rest, 'common/y.ts': x }))).not.toBe(d);
  });

  it('bundleBuildReason: absent, unrecorded, other sources; null only for a bundle of these sources', () => {
    const s = 'sha256:' + 'a'.repeat(64);
    expect(bundleBuildReason({ bundle: false, unit: true, recorded: s }, s)).toBe('absent');
    expect(bundleBuildReason({ bundle: true, unit: false, recorded: s }, s)).toBe('absent');
    expect(bundleBuildReason({ bundle: true, unit: true, recorded: null }, s)).toBe('built from unrecorded sources');
    expect(bundleBuildReason({ bundle: true, unit: true, recorded: 'sha256:' + 'b'.repeat(64) }, s)).toBe('built from other agent sources');
    expect(bundleBuildReason({ bundle: true, unit: true, recorded: `${s}\n` }, s)).toBeNull();
  });
});
