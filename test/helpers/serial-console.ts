/**
 * A small, bounded expect(1) for a VM's serial console: feed it what the
 * console prints, wait for a pattern (every wait has a timeout, and a
 * failure carries the last 4 KiB of the console), type lines, and run shell
 * commands framed by markers so their output and exit status can be read
 * back. Escape sequences and carriage returns are dropped before matching.
 */

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78cDEHM])/g;

/** The console text as matched: no escape sequences, no CR, no NUL. */
export function cleanConsole(raw: string): string {
  // eslint-disable-next-line no-control-regex
  return raw.replace(ANSI, '').replace(/[\r\0]/g, '');
}

export class SerialTimeout extends Error {}

export class SerialConsole {
  private raw = '';
  /** Offset in the cleaned text up to which matches have been consumed. */
  private pos = 0;
  private wake: (() => void) | undefined;
  private seq = 0;
  private closedWhy: string | undefined;

  constructor(private readonly write: (s: string) => void) {}

  /** What the console printed (raw bytes as text). */
  feed(chunk: string | Buffer): void {
    this.raw += chunk.toString();
    this.wake?.();
  }

  /** The console is gone (the VM exited): pending and later waits fail at once. */
  close(why: string): void {
    this.closedWhy = why;
    this.wake?.();
  }

  text(): string {
    return cleanConsole(this.raw);
  }

  /** The last `n` characters of the console, cleaned. */
  tail(n = 4096): string {
    return this.text().slice(-n);
  }

  /** Waits for `re` in what the console printed since the last match; fails after `timeoutMs`. */
  async expect(re: RegExp, timeoutMs: number, what = String(re)): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    const flags = re.flags.includes('g') ? re.flags : `${re.flags}g`;
    for (;;) {
      const t = this.text();
      const g = new RegExp(re.source, flags);
      g.lastIndex = this.pos;
      const m = g.exec(t);
      if (m) {
        this.pos = m.index + m[0].length;
        return m;
      }
      const left = end - Date.now();
      if (this.closedWhy !== undefined) throw new SerialTimeout(`waiting for ${what}: ${this.closedWhy}\n--- console (last 4 KiB) ---\n${this.tail()}`);
      if (left <= 0) throw new SerialTimeout(`waiting for ${what}: no match in ${(timeoutMs / 1000).toFixed(0)} s\n--- console (last 4 KiB) ---\n${this.tail()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 1000));
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
    }
  }

  /** Types `line` and Enter. */
  send(line: string): void {
    this.write(`${line}\n`);
  }

  /**
   * Runs `cmd` in the logged-in shell and returns its output (stdout and
   * stderr, cleaned, trimmed) and exit status. The markers are typed split by
   * quotes, so the shell's echo of the typed line never matches them.
   */
  async run(cmd: string, timeoutMs = 60_000): Promise<{ code: number; out: string }> {
    const n = ++this.seq;
    this.send(`echo "@@S${n}""@@"; ${cmd} 2>&1; echo "@@E${n}""@@ $?"`);
    await this.expect(new RegExp(`@@S${n}@@\\n`), timeoutMs, `the start of \`${cmd}\``);
    const start = this.pos;
    const m = await this.expect(new RegExp(`@@E${n}@@ (\\d+)\\n`), timeoutMs, `the end of \`${cmd}\``);
    return { code: Number(m[1]), out: this.text().slice(start, m.index).trim() };
  }
}
