/**
 * The serial side of a node for SOL tests: a TCP listener on 127.0.0.1 that
 * ipmi_sim's `sol "tcp:127.0.0.1:PORT"` connects to (as it would to QEMU's
 * `-serial tcp:...,server`). Bytes written here are what the node "prints";
 * bytes received are what the console user typed.
 */
import net from 'node:net';

export interface SerialLine {
  port: number;
  /** Everything received from the BMC so far. */
  received(): Buffer;
  /** Writes to the BMC (waits until ipmi_sim has connected). */
  write(data: string | Buffer): Promise<void>;
  /** Resolves once `text` has been received. */
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  connected(): Promise<void>;
  close(): Promise<void>;
}

export async function startSerialLine(): Promise<SerialLine> {
  let sock: net.Socket | null = null;
  let got = Buffer.alloc(0);
  const waiters: Array<() => void> = [];
  let onConnect: (() => void) | null = null;
  const connectedP = new Promise<void>((r) => (onConnect = r));
  const server = net.createServer((s) => {
    sock?.destroy();
    sock = s;
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      for (const w of waiters.splice(0)) w();
    });
    s.on('error', () => undefined);
    onConnect?.();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    received: () => got,
    connected: () => connectedP,
    async write(data) {
      await connectedP;
      await new Promise<void>((resolve, reject) => sock!.write(data, (e) => (e ? reject(e) : resolve())));
    },
    async waitFor(text, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs;
      while (!got.toString('latin1').includes(text)) {
        const left = end - Date.now();
        if (left <= 0) throw new Error(`serial line: ${JSON.stringify(text)} not received in ${timeoutMs} ms (got ${JSON.stringify(got.toString('latin1'))})`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
      }
    },
    async close() {
      sock?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
