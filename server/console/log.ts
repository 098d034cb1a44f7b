/**
 * DATA/console/NODE.log: what a node's serial console printed, appended as
 * it arrives, bounded: past `maxBytes` the file is renamed NODE.log.1 (the
 * previous .1 is dropped) and a new one started. Events point at the file
 * ("installer said ..." → `fleet console NODE` or the log). Appends are
 * synchronous and small; a write error is reported once and logging stops
 * for that node (a full disk must not end the console).
 */
import { appendFileSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FleetError } from '../../common/errors.js';

export const DEFAULT_CONSOLE_LOG_BYTES = 4 * 1024 * 1024;

/** A node name safe as a file name (node names are validated already; this is the last line of defence). */
export function consoleLogPath(dir: string, node: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(node) || node.includes('..')) throw new FleetError('usage.invalid', `not a node name usable as a console log file: ${JSON.stringify(node)}`);
  return join(dir, `${node}.log`);
}

export class ConsoleLog {
  private size: number;
  private failed = false;
  readonly file: string;

  constructor(
    dir: string,
    node: string,
    private readonly maxBytes = DEFAULT_CONSOLE_LOG_BYTES,
    private readonly onError: (e: Error) => void = () => undefined,
  ) {
    this.file = consoleLogPath(dir, node);
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    try {
      this.size = statSync(this.file).size;
    } catch {
      this.size = 0;
    }
  }

  append(data: Uint8Array): void {
    if (this.failed || data.length === 0) return;
    try {
      if (this.size > 0 && this.size + data.length > this.maxBytes) {
        renameSync(this.file, `${this.file}.1`);
        this.size = 0;
      }
      // A chunk larger than the whole bound keeps only its tail.
      const chunk = data.length > this.maxBytes ? data.subarray(data.length - this.maxBytes) : data;
      appendFileSync(this.file, chunk, { mode: 0o640 });
      this.size += chunk.length;
    } catch (e) {
      this.failed = true;
      this.onError(e as Error);
    }
  }

  /** A marker line, e.g. "-- fleet: alice attached --". */
  mark(text: string): void {
    this.append(Buffer.from(`\r\n-- fleet ${new Date().toISOString()}: ${text} --\r\n`));
  }
}
