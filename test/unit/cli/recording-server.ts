/** A stand-in fleet server for CLI tests: records each request and answers with `answer(method, path, body)` as JSON. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { CliIo } from '../../../server/cli/io.js';

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
}

export interface RecordingServer {
  url: string;
  requests: RecordedRequest[];
  close: () => Promise<void>;
}

export async function recordingServer(answer: (req: RecordedRequest) => unknown): Promise<RecordingServer> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const r: RecordedRequest = { method: req.method ?? '', path: req.url ?? '', body: text ? (JSON.parse(text) as unknown) : undefined };
      requests.push(r);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer(r)));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export function captureIo(): { io: CliIo; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { stdout: (s) => void (out += s), stderr: (s) => void (err += s), env: {}, isTTY: false, home: '/nonexistent', cwd: '/' },
    out: () => out,
    err: () => err,
  };
}
