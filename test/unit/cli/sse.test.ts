import { describe, expect, it } from 'vitest';
import { sseEvents, type SseMessage } from '../../../server/cli/sse.js';

async function parse(chunks: string[]): Promise<SseMessage[]> {
  const enc = new TextEncoder();
  async function* body(): AsyncGenerator<Uint8Array> {
    for (const c of chunks) yield enc.encode(c);
  }
  const out: SseMessage[] = [];
  for await (const m of sseEvents(body())) out.push(m);
  return out;
}

describe('sseEvents', () => {
  it('splits messages at blank lines, across chunk boundaries, and joins data lines', async () => {
    expect(await parse(['id: 7\nevent: state.cha', 'nged\ndata: {"a":1}\n', '\nid: 8\ndata: x\ndata: y\n\n'])).toEqual([
      { id: '7', event: 'state.changed', data: '{"a":1}' },
      { id: '8', data: 'x\ny' },
    ]);
  });

  it('skips comments, blocks without data and an unfinished last block', async () => {
    expect(await parse(['retry: 2000\n: fleet events after 3\n\n', ': keep-alive\n\n', 'data:no-space\n\n', 'id: 9\ndata: cut'])).toEqual([{ data: 'no-space' }]);
  });

  it('decodes a UTF-8 character split between chunks', async () => {
    const bytes = new TextEncoder().encode('data: é\n\n');
    async function* body(): AsyncGenerator<Uint8Array> {
      yield bytes.slice(0, 7);
      yield bytes.slice(7);
    }
    const out: SseMessage[] = [];
    for await (const m of sseEvents(body())) out.push(m);
    expect(out).toEqual([{ data: 'é' }]);
  });
});
