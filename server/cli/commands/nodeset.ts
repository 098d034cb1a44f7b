import { runNodesetCommand } from '../../nodeset/index.js';
import { Exit } from '../../../common/errors.js';
import type { CliIo } from '../io.js';

/** `fleet nodeset -e|-f|-c EXPR...`: same output as clustershell's nodeset. Works offline. */
export function cmdNodeset(args: string[], io: CliIo): number {
  const out = runNodesetCommand(args);
  io.stdout(out + '\n');
  return Exit.OK;
}
