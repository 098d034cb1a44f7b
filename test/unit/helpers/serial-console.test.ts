import { describe, expect, it } from 'vitest';
import { cleanConsole, SerialConsole } from '../../helpers/serial-console.js';

/** A fake shell behind the console: echoes what is typed, then prints the markers (the start one after the prompt, as with `stty -echo`) and canned output. */
function fakeVm(): { con: SerialConsole; typed: string[] } {
  const typed: string[] = [];
  const con: SerialConsole = new SerialConsole((s) => {
    typed.push(s);
    setTimeout(() => {
      con.feed(`${s.replace(/\n/g, '\r\n')}`); // the tty's echo
      const m = /^echo "(@@S\d+)""@@"; (.*) 2>&1; echo "(@@E\d+)""@@ \$\?"\n$/.exec(s);
      if (m) con.feed(`\x1b[?2004l# ${m[1]}@@\r\n${m[2] === 'hostname' ? 'valkyrie01\r\n' : ''}${m[3]}@@ ${m[2] === 'false' ? 1 : 0}\r\n# `);
    }, 5);
  });
  return { con, typed };
}

describe('SerialConsole', () => {
  it('drops escape sequences and carriage returns', () => {
    expect(cleanConsole('\x1b[0;32m  OK  \x1b[0m] Started\r\n\x1b[?2004hroot@x:~# ')).toBe('  OK  ] Started\nroot@x:~# ');
  });

  it('waits for a pattern fed in pieces, consuming what it matched', async () => {
    const { con } = fakeVm();
    setTimeout(() => con.feed('valkyrie01 lo'), 5);
    setTimeout(() => con.feed('gin: '), 20);
    expect((await con.expect(/(\S+) login: /, 2000))[1]).toBe('valkyrie01');
    setTimeout(() => con.feed('\r\nvalkyrie01 login: '), 5);
    await con.expect(/login: /, 2000); // the second prompt, not the first again
  });

  it('fails after its timeout with the console tail in the message', async () => {
    const { con } = fakeVm();
    con.feed(`${'x'.repeat(5000)}[  OK  ] Reached target Multi-User System.\r\n`);
    const err = await con.expect(/login: /, 50, 'the login prompt').catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^waiting for the login prompt: no match in 0 s/);
    expect((err as Error).message).toContain('Reached target Multi-User System.');
    expect((err as Error).message.length).toBeLessThan(4096 + 200);
  });

  it('fails at once when the VM is gone', async () => {
    const { con } = fakeVm();
    setTimeout(() => con.close('QEMU exited (1)'), 5);
    await expect(con.expect(/login: /, 60_000)).rejects.toThrow(/QEMU exited \(1\)/);
  });

  it('runs commands and reads their output and status, not the echo of the typed line', async () => {
    const { con, typed } = fakeVm();
    expect(await con.run('hostname', 2000)).toEqual({ code: 0, out: 'valkyrie01' });
    expect(await con.run('false', 2000)).toEqual({ code: 1, out: '' });
    expect(typed).toHaveLength(2);
  });
});
