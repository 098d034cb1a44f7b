/**
 * The secret key and what is derived from it.
 *
 * One 32-byte key per data directory (DATA/secret.key, 0600). From it, HKDF
 * derives separate keys for: AES-256-GCM sealing of BMC secrets, the keyed
 * digest that lets `fleet apply` see a changed secret without the plaintext,
 * and a short key id recorded beside each sealed secret so that opening with
 * another key fails with a clear message instead of a bare GCM error.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { FleetError } from '../../common/errors.js';

export const SECRET_KEY_BYTES = 32;
export const SECRET_KEY_FILE = 'secret.key';

const BOX_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface SecretKeys {
  readonly keyId: string;
  seal(name: string, plaintext: string): Buffer;
  open(name: string, keyId: string, box: Buffer): string;
  digest(plaintext: string): string;
}

function derive(master: Buffer, info: string, length: number): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', master, Buffer.alloc(0), info, length));
}

function aad(name: string): Buffer {
  // Binds a sealed secret to its credential name: boxes cannot be swapped between rows.
  return Buffer.from(`fleet/credential/v1/${name}`, 'utf8');
}

export function deriveKeys(master: Buffer): SecretKeys {
  if (!Buffer.isBuffer(master) || master.length !== SECRET_KEY_BYTES) {
    throw new FleetError('usage.invalid', `the secret key must be ${SECRET_KEY_BYTES} bytes`);
  }
  const encKey = derive(master, 'fleet/credentials/aes-256-gcm/v1', 32);
  const macKey = derive(master, 'fleet/credentials/digest/v1', 32);
  const keyId = derive(master, 'fleet/key-id/v1', 8).toString('hex');

  return {
    keyId,
    seal(name, plaintext) {
      const nonce = crypto.randomBytes(NONCE_BYTES);
      const cipher = crypto.createCipheriv('aes-256-gcm', encKey, nonce, { authTagLength: TAG_BYTES });
      cipher.setAAD(aad(name));
      const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.of(BOX_VERSION), nonce, cipher.getAuthTag(), ct]);
    },
    open(name, boxKeyId, box) {
      if (boxKeyId !== keyId) {
        throw new FleetError(
          'internal',
          `cannot decrypt credential "${name}": it was encrypted with another secret key (key id ${boxKeyId}, current key id ${keyId}); ` +
            'restore the original DATA/secret.key, or run `fleet apply` again so the passwords are re-encrypted with this key',
        );
      }
      if (box.length < 1 + NONCE_BYTES + TAG_BYTES || box[0] !== BOX_VERSION) {
        throw new FleetError('internal', `cannot decrypt credential "${name}": unknown or truncated secret format`);
      }
      const nonce = box.subarray(1, 1 + NONCE_BYTES);
      const tag = box.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + TAG_BYTES);
      const ct = box.subarray(1 + NONCE_BYTES + TAG_BYTES);
      try {
        const decipher = crypto.createDecipheriv('aes-256-gcm', encKey, nonce, { authTagLength: TAG_BYTES });
        decipher.setAAD(aad(name));
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
      } catch (e) {
        throw new FleetError(
          'internal',
          `cannot decrypt credential "${name}": authentication failed (the stored secret is corrupted or was sealed with another key)`,
          undefined,
          { cause: e },
        );
      }
    },
    digest(plaintext) {
      return crypto.createHmac('sha256', macKey).update(plaintext, 'utf8').digest('hex');
    },
  };
}

/** SHA-256 hex of a one-time token: what the tokens table keeps. */
export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}

function modeString(mode: number): string {
  return '0' + (mode & 0o777).toString(8).padStart(3, '0');
}

/**
 * Reads DATA/secret.key, or creates it: 32 random bytes, mode 0600, written to
 * a temporary file, fsynced, then hard-linked into place (atomic, and never
 * overwrites a key another process created first). Refuses a key file that
 * group or others can read, and one of the wrong size.
 */
export async function loadOrCreateSecretKey(dataDir: string): Promise<Buffer> {
  const file = path.join(dataDir, SECRET_KEY_FILE);
  await fs.promises.mkdir(dataDir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 2; attempt++) {
    let stat: fs.Stats | undefined;
    try {
      stat = await fs.promises.stat(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new FleetError('config.unreadable', `cannot read ${file}: ${(e as Error).message}`, undefined, { cause: e });
      }
    }
    if (stat) {
      if (!stat.isFile()) throw new FleetError('config.unreadable', `${file} is not a regular file`);
      if ((stat.mode & 0o077) !== 0) {
        throw new FleetError(
          'config.unreadable',
          `refusing to use ${file}: its mode is ${modeString(stat.mode)}, readable by group or others; ` +
            `run \`chmod 600 ${file}\` (and consider the key exposed: rotate the BMC passwords)`,
        );
      }
      let key: Buffer;
      try {
        key = await fs.promises.readFile(file);
      } catch (e) {
        throw new FleetError('config.unreadable', `cannot read ${file}: ${(e as Error).message}`, undefined, { cause: e });
      }
      if (key.length !== SECRET_KEY_BYTES) {
        throw new FleetError('config.unreadable', `${file} holds ${key.length} bytes, expected ${SECRET_KEY_BYTES}`);
      }
      return key;
    }
    const tmp = path.join(dataDir, `.${SECRET_KEY_FILE}.${process.pid}.${crypto.randomBytes(6).toString('hex')}`);
    const key = crypto.randomBytes(SECRET_KEY_BYTES);
    const fh = await fs.promises.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(key);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.promises.link(tmp, file);
      return key;
    } catch (e) {
      // EEXIST: another process won the race; read its key on the next turn.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new FleetError('config.unreadable', `cannot create ${file}: ${(e as Error).message}`, undefined, { cause: e });
      }
    } finally {
      await fs.promises.rm(tmp, { force: true });
    }
  }
  throw new FleetError('internal', `cannot create or read ${file}`);
}
