/**
 * The fact rules as a table (facts.ts) and the one way in for facts
 * (record.ts): an in-memory store and a listener that stands for the
 * conductor; no socket.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EVENT } from '../../../common/events.js';
import { checkFactRules, eventForFact, FACT, FACT_KINDS, FACT_RULES, ignoredEverywhere, isFactKind } from '../../../server/lifecycle/facts.js';
import { createRecorder } from '../../../server/lifecycle/record.js';
import { E, S } from '../../../server/lifecycle/states.js';
import { openStore } from '../../../server/store/index.js';

describe('fact rules', () => {
  it('is a complete table: every fact has rows, the last one catches every state, each row fires or says why not', () => {
    expect(checkFactRules()).toEqual([]);
    for (const f of FACT_KINDS) expect(FACT_RULES.some((r) => r.fact === f)).toBe(true);
  });

  it('answers an ignore for a kind that is not a fact', () => {
    expect(isFactKind(EVENT.nodeAdded)).toBe(false);
    expect(eventForFact(S.installing, EVENT.nodeAdded, {})).toEqual({ ignore: `unknown signal ${EVENT.nodeAdded}` });
  });

  it('knows the facts that move nothing in any state', () => {
    // agent.enrolled moves an adopting node (fleet adopt); everywhere else it is ignored.
    expect(ignoredEverywhere(FACT.agentEnrolled)).toBe(false);
    expect(eventForFact(S.adopting, FACT.agentEnrolled, { peer: '10.0.0.9', repeated: false })).toEqual({ event: E.configure, details: { peer: '10.0.0.9' } });
    expect(eventForFact(S.installing, FACT.agentEnrolled, {})).toMatchObject({ ignore: expect.any(String) });
    expect(ignoredEverywhere(FACT.loopSuspect)).toBe(true);
    expect(ignoredEverywhere(FACT.scriptFetched)).toBe(false);
    expect(ignoredEverywhere(FACT.agentBoot)).toBe(false);
  });

  it('takes the first matching row: a flagged script fetch is never a netboot, even while power-cycling', () => {
    const t = eventForFact(S.powerCycling, FACT.scriptFetched, { decision: 'install', flag: 'boot-loop-suspect', reason: 'r' });
    expect(t).toEqual({ ignore: expect.stringContaining('flagged'), flag: { name: 'boot-loop-suspect', reason: 'r' } });
    expect(eventForFact(S.powerCycling, FACT.scriptFetched, { decision: 'install', mac: 'm', token: 'never-copied' })).toEqual({ event: E.netboot, details: { mac: 'm' } });
  });

  it('tells a stateless node\'s stage 1 apart by its mark: handover, no flip; a failed reboot fails a ready node', () => {
    const st = { method: 'stateless' };
    expect(eventForFact(S.installing, FACT.installFinished, { ...st, ip: '10.0.0.5' })).toEqual({ event: E.handover, details: { ip: '10.0.0.5' } });
    expect(eventForFact(S.installing, FACT.installFinished, { ip: '10.0.0.5' })).toEqual({ event: E.finish, details: { ip: '10.0.0.5' } });
    // A reboot of a ready stateless node: its stage 1 callbacks move nothing, unless it fails.
    expect(eventForFact(S.ready, FACT.installFinished, st)).toMatchObject({ ignore: expect.any(String) });
    expect(eventForFact(S.ready, FACT.installStarted, st)).toMatchObject({ ignore: expect.any(String) });
    expect(eventForFact(S.ready, FACT.installFailed, { ...st, message: 'image digest mismatch (expected a, got b)' })).toEqual({
      event: E.fail,
      details: { step: 'stateless', reason: 'stage 1 failed: image digest mismatch (expected a, got b)' },
    });
    expect(eventForFact(S.ready, FACT.installFailed, { message: 'late' })).toMatchObject({ ignore: expect.any(String) });
    expect(eventForFact(S.installing, FACT.installFailed, { ...st, message: 'no RAM' })).toEqual({ event: E.fail, details: { step: 'install', reason: 'stage 1 failed: no RAM' } });
    // The image's agent: a boot from RAM moves it on; from a disk fails it; a repeat is ignored.
    expect(eventForFact(S.imageBooting, FACT.agentBoot, { bootId: 'b1', assessment: { rootOnLocalDisk: false, firmwareVia: 'network' } })).toEqual({ event: E.boot, details: { bootId: 'b1', firmwareVia: 'network' } });
    expect(eventForFact(S.imageBooting, FACT.agentBoot, { bootId: 'b1', assessment: { rootOnLocalDisk: true } })).toMatchObject({ event: E.fail, details: { step: 'image-boot' } });
    expect(eventForFact(S.imageBooting, FACT.agentBoot, { isNewBoot: false, assessment: { rootOnLocalDisk: true } })).toEqual({ ignore: 'a repeated boot report' });
    expect(eventForFact(S.ready, FACT.agentBoot, { bootId: 'b2', assessment: { rootOnLocalDisk: false } })).toMatchObject({ ignore: expect.any(String) });
  });

  it('keeps a repeated boot report from failing a node whose first report was fine', () => {
    expect(eventForFact(S.diskArmed, FACT.agentBoot, { isNewBoot: false, assessment: { rootOnLocalDisk: false } })).toEqual({ ignore: 'a repeated boot report' });
  });
});

describe('record(fact)', () => {
  const open = () => openStore({ memory: true }, { secretKey: randomBytes(32) });

  it('writes the event row, then tells the conductor, for a fact', async () => {
    const store = await open();
    const told: unknown[] = [];
    const order: string[] = [];
    const r = createRecorder({
      store,
      listener: {
        signal: async (node, kind, details) => {
          order.push(`signal:${(await store.events.list({ node })).events.length}`);
          told.push([node, kind, details]);
        },
      },
    });
    await r.record({ node: 'n1', kind: FACT.kickstartFetched, details: { ip: '10.0.0.5' }, actor: 'netboot' });
    expect(order).toEqual(['signal:1']); // the row exists before the conductor hears of it
    expect(told).toEqual([['n1', FACT.kickstartFetched, { ip: '10.0.0.5' }]]);
    const ev = (await store.events.list({ node: 'n1' })).events;
    expect(ev).toMatchObject([{ node: 'n1', kind: FACT.kickstartFetched, actor: 'netboot', details: { ip: '10.0.0.5' } }]);
    await store.close();
  });

  it('writes but does not signal an event kind the lifecycle does not act on', async () => {
    const store = await open();
    let calls = 0;
    const r = createRecorder({ store, listener: { signal: async () => void calls++ } });
    await r.record({ node: 'n1', kind: EVENT.kickstartRefused, details: { reason: 'unknown token' }, actor: 'netboot' });
    expect(calls).toBe(0);
    expect((await store.events.list({ node: 'n1' })).events).toHaveLength(1);
    await store.close();
  });

  it('logs a failing conductor and keeps the row (it is replayed), never throws to the reporter', async () => {
    const store = await open();
    const logged: string[] = [];
    const r = createRecorder({
      store,
      listener: { signal: async () => Promise.reject(new Error('database is locked')) },
      logger: { error: (o, msg) => logged.push(`${String(o.kind)}: ${msg}`) },
    });
    await expect(r.record({ node: 'n1', kind: FACT.installFinished, details: {}, actor: 'netboot' })).resolves.toBeUndefined();
    expect(logged).toEqual([`${FACT.installFinished}: the conductor failed on a fact; its event row stays and is replayed at the next recovery`]);
    expect((await store.events.list({ node: 'n1' })).events).toHaveLength(1);
    await store.close();
  });

  it('recorded(): the store wrote the row with its data; only the conductor is told', async () => {
    const store = await open();
    const told: string[] = [];
    const r = createRecorder({ store, listener: { signal: async (n, k) => void told.push(`${n} ${k}`) } });
    await r.recorded({ node: 'n1', kind: FACT.agentBoot, details: { bootId: 'b' } });
    expect(told).toEqual([`n1 ${FACT.agentBoot}`]);
    expect((await store.events.list({ node: 'n1' })).events).toHaveLength(0);
    await store.close();
  });
});

describe('docs/lifecycle.md fact table', () => {
  it('is generated from FACT_RULES and in sync', async () => {
    const { readFile } = await import('node:fs/promises');
    const { FACTS_BEGIN, generatedSection, renderFactTableMarkdown } = await import('../../../server/lifecycle/doc.js');
    const doc = await readFile(new URL('../../../docs/lifecycle.md', import.meta.url), 'utf8');
    expect(generatedSection(doc, FACTS_BEGIN)).toBe(renderFactTableMarkdown());
    expect(renderFactTableMarkdown().split('\n').filter((l) => l.startsWith('| `')).length).toBe(FACT_RULES.length);
  });
});
