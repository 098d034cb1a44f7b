/**
 * Starts the fleet server in-process for an integration test: the given
 * fleet.yaml written to a temp dir, `startServer` on loopback with port 0,
 * the data dir inside the temp dir, and the CLI (test/helpers/cli.ts) run
 * against it. (The built binary inside a network namespace is
 * test/helpers/fleet-server.ts.)
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer, type StartOptions } from '../../server/serve.js';
import { cliAgainst, type CliResult } from './cli.js';

export interface TestServerOptions extends Omit<StartOptions, 'configPath' | 'dataDir'> {
  /** Prefix of the temp dir's name; default 'fleet-test-'. */
  prefix?: string;
  /** A directory the caller made (and put files in, e.g. a PKI) instead of a new temp dir; close() removes it all the same. */
  dir?: string;
  /** Environment of the CLI runs; default { USER: 'tester' }. */
  cliEnv?: NodeJS.ProcessEnv;
}

export interface TestServer {
  server: RunningServer;
  /** The admin API, e.g. http://127.0.0.1:40123. */
  url: string;
  /** The API bearer token and the file it is in. */
  token: string;
  tokenPath: string;
  /** The temp dir (the CLI's home and cwd), the fleet.yaml in it and the data dir under it. */
  dir: string;
  configPath: string;
  dataDir: string;
  /** Runs the fleet CLI in-process against this server. */
  fleet(...args: string[]): Promise<CliResult>;
  /** Closes the server; once, however often called. The temp dir stays. */
  closeServer(): Promise<void>;
  /** Closes the server (if not yet) and removes the temp dir. */
  close(): Promise<void>;
}

/** Writes `yaml` as DIR/fleet.yaml and starts the server on 127.0.0.1:0 (log level warn unless given). */
export async function startTestServer(yaml: string, opts: TestServerOptions = {}): Promise<TestServer> {
  const { prefix, dir: given, cliEnv, ...start } = opts;
  const dir = given ?? (await mkdtemp(join(tmpdir(), prefix ?? 'fleet-test-')));
  const configPath = join(dir, 'fleet.yaml');
  const dataDir = join(dir, 'data');
  let server: RunningServer;
  try {
    await writeFile(configPath, yaml);
    server = await startServer({ listen: '127.0.0.1:0', logLevel: 'warn', ...start, configPath, dataDir });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  let closing: Promise<void> | undefined;
  const closeServer = (): Promise<void> => (closing ??= server.close());
  return {
    server,
    url: server.url,
    token: (await readFile(server.tokenPath, 'utf8')).trim(),
    tokenPath: server.tokenPath,
    dir,
    configPath,
    dataDir,
    fleet: cliAgainst(server, dir, cliEnv ?? { USER: 'tester' }),
    closeServer,
    async close() {
      try {
        await closeServer();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
