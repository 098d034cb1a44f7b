import { join } from 'node:path';
import { Exit, FleetError } from '../../../common/errors.js';
import { startServer } from '../../serve.js';
import type { CliIo } from '../io.js';
import { logProcessWarnings, serverLogger } from '../../http/logging.js';

export interface ServerFlags {
  config?: string;
  data?: string;
  listen?: string;
  bootListen?: string;
  grpcListen?: string;
  /** A PostgreSQL store URL (overrides fleet.yaml store.url). */
  store?: string;
  logLevel: string;
}

/** The first of systemd's colon-separated directory list ($CONFIGURATION_DIRECTORY, $STATE_DIRECTORY), if set. */
function systemdDir(value: string | undefined): string | undefined {
  const first = value?.split(':')[0];
  return first ? first : undefined;
}

/**
 * Where `fleet server` finds fleet.yaml and keeps its data when not told.
 * Under systemd (server/fleet.service) the unit's ConfigurationDirectory= and
 * StateDirectory= give $CONFIGURATION_DIRECTORY (/etc/fleet) and
 * $STATE_DIRECTORY (/var/lib/fleet); by hand, --config is needed and the data
 * goes to ./fleet-data (a first try). --data, FLEET_DATA and fleet.yaml's
 * server.data_dir win over $STATE_DIRECTORY.
 */
export function serverPaths(flags: Pick<ServerFlags, 'config' | 'data'>, env: NodeJS.ProcessEnv): { configPath: string; dataDir?: string; defaultDataDir?: string } {
  const confDir = systemdDir(env.CONFIGURATION_DIRECTORY);
  const configPath = flags.config ?? (confDir ? join(confDir, 'fleet.yaml') : undefined);
  if (configPath === undefined) {
    throw new FleetError('usage.invalid', 'fleet server needs --config FILE (fleet.yaml); as a systemd service it reads /etc/fleet/fleet.yaml ($CONFIGURATION_DIRECTORY)');
  }
  const dataDir = flags.data ?? env.FLEET_DATA;
  const stateDir = systemdDir(env.STATE_DIRECTORY);
  return { configPath, ...(dataDir ? { dataDir } : {}), ...(stateDir ? { defaultDataDir: stateDir } : {}) };
}

/** The level of a start-up fact: warn for warnings and for the doctor's failed or doubtful checks. */
export function startupLineLevel(line: string): 'info' | 'warn' {
  return /^(warning: |doctor: (fail|warn) )/.test(line) || /^doctor: \d+ ok, \d+ warn, [1-9]/.test(line) ? 'warn' : 'info';
}

/** How often `fleet server` under npm checks that its parent is still there. */
const PARENT_CHECK_MS = 500;

/**
 * `fleet server`: runs until SIGINT/SIGTERM, then stops cleanly (dnsmasq,
 * listeners, lifecycle, store) and exits 0.
 *
 * Under npx / npm exec (npm sets npm_command=exec), npm runs the command through
 * `sh -c` and passes a SIGTERM it gets to that shell only: the shell dies and
 * the server would run on, orphaned, with its dnsmasq. So there the server
 * also stops when its parent process is gone. Not otherwise: a server started
 * with nohup or detached (fleet lab) outlives its parent on purpose, and a
 * server started by a script of `npm run` (npm_command=run-script, which
 * children inherit: the lab under `npm run test:e2e`) is not npm exec's.
 */
export async function cmdServer(flags: ServerFlags, io: CliIo): Promise<number> {
  // One log format (docs/operations.md "Logs"): the start-up facts, the stop and Node's own warnings are
  // JSON lines on stdout, as the HTTP faces' logs are.
  const log = serverLogger(flags.logLevel, { write: (chunk: string | Uint8Array) => (io.stdout(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString()), true) } as unknown as NodeJS.WritableStream);
  const restoreWarnings = logProcessWarnings(log);
  // Listen for the signals before starting: a SIGTERM during start-up (systemctl stop) then stops the server once it is up.
  let stopping: string | undefined;
  let wake: (() => void) | undefined;
  const stop = (why: string): void => {
    if (stopping !== undefined) return;
    stopping = why;
    log.info(`fleet: ${why}, stopping`);
    wake?.();
  };
  const onInt = (): void => stop('SIGINT received');
  const onTerm = (): void => stop('SIGTERM received');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const parent = process.ppid;
  const underNpmExec = io.env.npm_command === 'exec';
  const watch = underNpmExec
    ? setInterval(() => {
        if (process.ppid !== parent) stop(`its parent process ${parent} (npm exec) is gone`);
      }, PARENT_CHECK_MS)
    : undefined;
  try {
    const server = await startServer({
      ...serverPaths(flags, io.env),
      listen: flags.listen,
      bootListen: flags.bootListen,
      grpcListen: flags.grpcListen,
      ...(flags.store !== undefined ? { store: flags.store } : {}),
      logLevel: flags.logLevel,
      env: io.env,
      cwd: io.cwd,
      say: (line) => (startupLineLevel(line) === 'warn' ? log.warn(line) : log.info(line)),
    });
    if (stopping === undefined) await new Promise<void>((resolveStop) => (wake = resolveStop));
    await server.close();
    return Exit.OK;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    if (watch) clearInterval(watch);
    restoreWarnings();
  }
}
