/** Where a CLI command writes, and how it learns its environment: injectable so tests run commands in-process. */
export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  isTTY: boolean;
  /** The terminal's size now (it may change while a command runs); absent or undefined when not known. */
  termSize?: () => { columns: number; rows: number } | undefined;
  /** Home directory for ~/.config/fleet/config.yaml */
  home: string;
  cwd: string;
}

export function processIo(): CliIo {
  return {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env: process.env,
    isTTY: Boolean(process.stdout.isTTY),
    termSize: () => (process.stdout.isTTY && process.stdout.columns > 0 ? { columns: process.stdout.columns, rows: process.stdout.rows } : undefined),
    home: process.env.HOME ?? '/root',
    cwd: process.cwd(),
  };
}
