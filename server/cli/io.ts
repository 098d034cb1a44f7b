/** Where a CLI command writes, and how it learns its environment: injectable so tests run commands in-process. */
export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  isTTY: boolean;
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
    home: process.env.HOME ?? '/root',
    cwd: process.cwd(),
  };
}
