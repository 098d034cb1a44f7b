/** Dashboard sessions, cookies, CSRF comparison and the escaping template (pure parts). */
import { describe, expect, it } from 'vitest';
import { SessionStore, clearedSessionCookie, csrfMatches, parseCookies, sessionCookie } from '../../../server/dashboard/session.js';
import { escapeHtml, html, raw } from '../../../server/dashboard/html.js';
import { formatAge } from '../../../server/dashboard/pages.js';

const TOKEN = { tokenId: 'abcd1234', hash: 'ab'.repeat(32) };

describe('SessionStore', () => {
  it('issues random 43-character ids, each with its own CSRF token', () => {
    const s = new SessionStore();
    const a = s.create('alice', TOKEN);
    const b = s.create('alice', TOKEN);
    expect(a.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.id).not.toBe(b.id);
    expect(a.session.csrf).not.toBe(b.session.csrf);
    expect(a.session.csrf).not.toBe(a.id);
    expect(s.get(a.id)?.user).toBe('alice');
  });

  it('ends sessions at their end, when idle, and on delete; malformed ids are never looked up', () => {
    let now = 1_000_000;
    const s = new SessionStore({ ttlMs: 100, idleMs: 40, clock: () => now });
    const { id } = s.create('u', TOKEN);
    now += 30;
    expect(s.get(id)).toBeDefined();
    now += 30;
    expect(s.get(id)).toBeDefined();
    now += 30;
    expect(s.get(id)).toBeDefined();
    now += 10; // 100 ms after creation
    expect(s.get(id)).toBeUndefined();
    const idle = s.create('u', TOKEN).id;
    now += 40;
    expect(s.get(idle)).toBeUndefined();
    const gone = s.create('u', TOKEN).id;
    s.delete(gone);
    expect(s.get(gone)).toBeUndefined();
    for (const bad of [undefined, '', 'x', `${gone}x`, gone.slice(1), '../../../etc/passwd']) expect(s.get(bad)).toBeUndefined();
  });

  it('keeps at most `max` sessions, the oldest going first', () => {
    const s = new SessionStore({ max: 2 });
    const a = s.create('a', TOKEN).id;
    const b = s.create('b', TOKEN).id;
    const c = s.create('c', TOKEN).id;
    expect(s.size).toBe(2);
    expect(s.get(a)).toBeUndefined();
    expect(s.get(b)?.user).toBe('b');
    expect(s.get(c)?.user).toBe('c');
  });
});

describe('cookies and CSRF', () => {
  it('parses Cookie headers, first value winning, malformed pairs skipped', () => {
    const c = parseCookies('a=1; fleet_session=xyz; junk; =v; fleet_session=second; q="quoted"');
    expect(c.get('fleet_session')).toBe('xyz');
    expect(c.get('a')).toBe('1');
    expect(c.get('q')).toBe('quoted');
    expect(parseCookies(undefined).size).toBe(0);
  });

  it('sets httpOnly, SameSite=Strict, path /ui; Secure only on TLS', () => {
    expect(sessionCookie('ID', { secure: false, maxAgeSeconds: 60 })).toBe('fleet_session=ID; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60');
    expect(sessionCookie('ID', { secure: true, maxAgeSeconds: 60 })).toBe('fleet_session=ID; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60; Secure');
    expect(clearedSessionCookie({ secure: true })).toContain('Max-Age=0; Secure');
  });

  it('compares CSRF tokens: only the exact token matches', () => {
    const t = 'k'.repeat(43);
    expect(csrfMatches(t, t)).toBe(true);
    for (const bad of [undefined, null, '', 'k'.repeat(42), 'k'.repeat(44), `${'k'.repeat(42)}K`, ['k'.repeat(43)], 42]) expect(csrfMatches(t, bad)).toBe(false);
  });
});

describe('html', () => {
  it('escapes every interpolated value unless it is Html', () => {
    const name = `<img src=x onerror="alert('1')">&\``;
    expect(html`<td title="${name}">${name}</td>`.text).toBe(
      '<td title="&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;&#96;">&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;&#96;</td>',
    );
    expect(html`<p>${html`<b>${'<i>'}</b>`}</p>`.text).toBe('<p><b>&lt;i&gt;</b></p>');
    expect(html`${['<a>', raw('<br>')]}${null}${undefined}${false}${0}`.text).toBe('&lt;a&gt;<br>0');
    expect(escapeHtml('"\'<>&')).toBe('&quot;&#39;&lt;&gt;&amp;');
  });

  it('formats ages', () => {
    expect([formatAge(5), formatAge(65), formatAge(3700), formatAge(90_000), formatAge(-3)]).toEqual(['5s', '1m 5s', '1h 1m', '1d 1h', '0s']);
  });
});

describe('consoleTail', () => {
  it('drops terminal escapes and control characters, folds carriage returns, keeps the last lines', async () => {
    const { consoleTail } = await import('../../../server/dashboard/console-tail.js');
    const raw = 'old line\r\n\x1b[1;32mOK\x1b[0m Started \x1b]0;title\x07udev\r\nprogress 10%\rprogress 100%\r\nbell\x07 and \x00nul <b>\r\n';
    expect(consoleTail(raw)).toBe('old line\nOK Started udev\nprogress 100%\nbell and nul <b>\n');
    expect(consoleTail('a\nb\nc\nd', 2)).toBe('c\nd');
  });
});
