/** Runs the fleet CLI in-process against a running server, capturing output and exit code. */
import type { CliIo } from '../../server/cli/io.js';
import { main } from '../../server/cli/main.js';

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

export function cliAgainst(server: { url: string; tokenPath: string }, dir: string, env: NodeJS.ProcessEnv = {}): (...args: string[]) => Promise<CliResult> {
  return async (...args) => {
    let out = '';
    let err = '';
    const io: CliIo = { stdout: (s) => (out += s), stderr: (s) => (err += s), env, isTTY: false, home: dir, cwd: dir };
    const code = await main(['node', 'fleet', '--url', server.url, '--token-file', server.tokenPath, ...args], io);
    return { code, out, err };
  };
}
