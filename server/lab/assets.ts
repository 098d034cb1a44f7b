/** Where the lab's shell assets are (server/lab/assets: the chassis hook, the tests' HTTP server). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetError } from '../../common/errors.js';

/** Directory of this module's assets (works from server/lab and from dist/server/lab). */
export function labAssetsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    for (const c of [join(dir, 'assets'), join(dir, 'server', 'lab', 'assets')]) {
      if (existsSync(join(c, 'chassis-control.sh'))) return c;
    }
    dir = dirname(dir);
  }
  throw new FleetError('internal', 'server/lab/assets not found next to the lab module');
}

export function assetPath(name: string): string {
  return join(labAssetsDir(), name);
}
