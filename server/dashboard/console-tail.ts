/**
 * The tail of a node's console log (DATA/console/NODE.log) as text a page
 * can show: terminal escape sequences (CSI, OSC, charset selections) and
 * other control characters removed, carriage returns folded, the last lines
 * only. Pure; the page escapes what is left.
 */
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[@-Z\\-_]/g;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;

export function consoleTail(raw: string, maxLines = 60): string {
  const text = raw
    .replace(ESCAPES, '')
    .replace(/\r\n/g, '\n')
    // A bare carriage return rewrites its line (progress bars): keep what was written last.
    .split('\n')
    .map((l) => l.split('\r').filter((p) => p !== '').at(-1) ?? '')
    .join('\n')
    .replace(CONTROLS, '');
  const lines = text.split('\n');
  // The first line of a tail read from the middle of the file is usually partial.
  return lines.slice(-maxLines).join('\n');
}
