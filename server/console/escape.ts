/**
 * The console escape sequence, as ssh and ipmitool have it: `~` typed at the
 * start of a line (after Enter, or as the very first key) is held back and
 * the next key decides:
 *   `~.`  detach        `~?`  help          `~B`  send a serial break
 *   `~~`  one `~`       `~` + anything else: both keys go through.
 * Pure: feed it keystroke chunks, it returns what to send and what to do.
 */
export type EscapeAction = 'detach' | 'help' | 'break';

export interface EscapeResult {
  /** Bytes for the serial line, in order. */
  send: Buffer;
  /** Escape commands found in this chunk, in order (bytes after a detach are dropped). */
  actions: EscapeAction[];
}

export const ESCAPE_HELP = ['Supported escape sequences (after Enter):', '  ~.  detach from the console', '  ~B  send a serial break', '  ~?  this help', '  ~~  send ~'].join('\r\n') + '\r\n';

const TILDE = 0x7e;

export class EscapeScanner {
  private atLineStart = true;
  private held = false;

  feed(chunk: Uint8Array): EscapeResult {
    const out: number[] = [];
    const actions: EscapeAction[] = [];
    for (const b of chunk) {
      if (this.held) {
        this.held = false;
        if (b === 0x2e /* . */) {
          actions.push('detach');
          return { send: Buffer.from(out), actions };
        }
        if (b === 0x3f /* ? */) {
          actions.push('help');
          this.atLineStart = true;
          continue;
        }
        if (b === 0x42 /* B */) {
          actions.push('break');
          this.atLineStart = true;
          continue;
        }
        if (b === TILDE) {
          out.push(TILDE);
          this.atLineStart = false;
          continue;
        }
        out.push(TILDE);
        // fall through: b is an ordinary key
      } else if (b === TILDE && this.atLineStart) {
        this.held = true;
        continue;
      }
      out.push(b);
      this.atLineStart = b === 0x0d || b === 0x0a;
    }
    return { send: Buffer.from(out), actions };
  }
}
