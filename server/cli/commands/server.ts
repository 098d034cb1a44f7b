import { Exit } from '../../../common/errors.js';
import { startServer } from '../../serve.js';
import type { CliIo } from '../io.js';

export interface ServerFlags {
  config: string;
  data?: string;
  listen?: string;
  bootListen?: string;
  grpcListen?: string;
  logLevel: string;
}

/** `fleet server`: runs until SIGINT/SIGTERM, then stops cleanly. */
export async function cmdServer(flags: ServerFlags, io: CliIo): Promise<number> {
  const server = await startServer({
    configPath: flags.config,
    dataDir: flags.data ?? io.env.FLEET_DATA,
    listen: flags.listen,
    bootListen: flags.bootListen,
    grpcListen: flags.grpcListen,
    logLevel: flags.logLevel,
    env: io.env,
    cwd: io.cwd,
    say: (line) => io.stderr(line + '\n'),
  });
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string): void => {
      io.stderr(`fleet: ${signal} received, stopping\n`);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      void server.close().then(resolveStop);
    };
    const onInt = (): void => stop('SIGINT');
    const onTerm = (): void => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  return Exit.OK;
}
