/**
 * The repository key and signatures, with GnuPG (docs/decisions/0010):
 * `gpg --batch` in a private home, DATA/repo/key/ (0700), never the
 * caller's ~/.gnupg. The key (ed25519, signing only, no passphrase: the
 * server signs unattended, and the directory's mode is its protection) is
 * made once, the first time the repository is written. Its public half is
 * exported next to the repository, where nodes fetch it:
 * fleet-archive-keyring.gpg (binary, what `signed-by=` wants) and .asc.
 *
 * `gpg` starts a gpg-agent for the private home; every operation ends with
 * `gpgconf --kill gpg-agent` so no daemon outlives the command.
 */
import { promises as fs } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { FleetError } from '../../common/errors.js';
import { findExecutable } from '../../common/executable.js';
import { runProcess } from '../../common/spawn.js';

const GPG_TIMEOUT_MS = 120_000;

export interface KeyPaths {
  /** GNUPGHOME (0700). */
  home: string;
  /** Binary public keyring for signed-by=. */
  keyringGpg: string;
  /** The same key, ASCII-armoured. */
  keyringAsc: string;
}

function gpgPath(): string {
  const p = findExecutable('gpg');
  if (!p) throw new FleetError('unavailable', 'gpg is missing to sign the repository: apt-get install gnupg (.ci/deps.sh installs it)');
  return p;
}

async function gpg(home: string, args: string[], what: string): Promise<string> {
  const env = { ...process.env, GNUPGHOME: home, LC_ALL: 'C' };
  const r = await runProcess(gpgPath(), ['--batch', '--no-tty', '--quiet', ...args], { timeoutMs: GPG_TIMEOUT_MS, env });
  if (r.code !== 0) {
    const why = r.error ? r.error.message : r.timedOut ? 'timed out' : (r.stderr.trim().split('\n').slice(-3).join(' / ') || `exit ${r.code}`);
    throw new FleetError('internal', `gpg ${what} failed: ${why}`);
  }
  return r.stdout;
}

/**
 * The home as gpg should be given it: gpg-agent's sockets live in the home
 * when /run/user/UID does not exist, and a socket path is limited to 107
 * bytes, so a long data dir path is reached through a short symlink in the
 * temporary directory (removed by the returned function).
 */
export async function shortHome(home: string): Promise<{ home: string; done: () => Promise<void> }> {
  if (home.length + '/S.gpg-agent.browser'.length < 100) return { home, done: async () => {} };
  const dir = await fs.mkdtemp(path.join(tmpdir(), 'fleet-gpg-'));
  const link = path.join(dir, 'h');
  await fs.symlink(home, link);
  return { home: link, done: () => fs.rm(dir, { recursive: true, force: true }) };
}

/** Stops the gpg-agent a private home started (nothing when none runs). */
export async function stopAgent(home: string): Promise<void> {
  const gpgconf = findExecutable('gpgconf');
  if (!gpgconf) return;
  await runProcess(gpgconf, ['--kill', 'gpg-agent'], { timeoutMs: 10_000, env: { ...process.env, GNUPGHOME: home } });
}

/** The fingerprint of the home's secret key, or undefined when it has none. */
export async function secretFingerprint(home: string): Promise<string | undefined> {
  const out = await gpg(home, ['--with-colons', '--list-secret-keys'], 'list-secret-keys').catch(() => '');
  const fpr = out.split('\n').find((l) => l.startsWith('fpr:'));
  return fpr?.split(':')[9] || undefined;
}

/**
 * The repository key: made when the home has none, its public half
 * (re)exported when missing. Answers the fingerprint.
 */
export async function ensureKey(paths: KeyPaths, log: (s: string) => void): Promise<string> {
  await fs.mkdir(paths.home, { recursive: true, mode: 0o700 });
  await fs.chmod(paths.home, 0o700);
  const short = await shortHome(paths.home);
  const p = { ...paths, home: short.home };
  try {
    let fpr = await secretFingerprint(p.home);
    if (!fpr) {
      const uid = `fleet repository key (${hostname()})`;
      log(`making the repository signing key in ${paths.home} (ed25519): ${uid}`);
      await gpg(p.home, ['--passphrase', '', '--pinentry-mode', 'loopback', '--quick-gen-key', uid, 'ed25519', 'sign', 'never'], 'quick-gen-key');
      fpr = await secretFingerprint(p.home);
      if (!fpr) throw new FleetError('internal', `gpg made no key in ${paths.home}`);
      await fs.rm(p.keyringGpg, { force: true });
      await fs.rm(p.keyringAsc, { force: true });
    }
    if (!(await exists(p.keyringGpg))) await exportKey(p.home, fpr, p.keyringGpg, false);
    if (!(await exists(p.keyringAsc))) await exportKey(p.home, fpr, p.keyringAsc, true);
    return fpr;
  } finally {
    await stopAgent(p.home);
    await short.done();
  }
}

async function exists(f: string): Promise<boolean> {
  return fs.stat(f).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function exportKey(home: string, fpr: string, out: string, armor: boolean): Promise<void> {
  const tmp = `${out}.${process.pid}.tmp`;
  await fs.rm(tmp, { force: true });
  await gpg(home, [...(armor ? ['--armor'] : []), '--export-options', 'export-minimal', '--output', tmp, '--export', fpr], 'export');
  await fs.chmod(tmp, 0o644);
  await fs.rename(tmp, out);
}

/** InRelease (clearsigned) and Release.gpg (detached, armoured) beside `release`, by the key `fpr`. */
export async function signRelease(realHome: string, fpr: string, release: string, dir: string): Promise<void> {
  const short = await shortHome(realHome);
  const home = short.home;
  const inRelease = `${dir}/InRelease`;
  const detached = `${dir}/Release.gpg`;
  const tmpIn = `${inRelease}.${process.pid}.tmp`;
  const tmpDet = `${detached}.${process.pid}.tmp`;
  try {
    const common = ['--yes', '--pinentry-mode', 'loopback', '--passphrase', '', '--digest-algo', 'SHA512', '--local-user', `${fpr}!`];
    await gpg(home, [...common, '--clearsign', '--output', tmpIn, release], 'clearsign');
    await gpg(home, [...common, '--armor', '--detach-sign', '--output', tmpDet, release], 'detach-sign');
    await fs.chmod(tmpIn, 0o644);
    await fs.chmod(tmpDet, 0o644);
    await fs.rename(tmpDet, detached);
    await fs.rename(tmpIn, inRelease);
  } finally {
    await fs.rm(tmpIn, { force: true });
    await fs.rm(tmpDet, { force: true });
    await stopAgent(home);
    await short.done();
  }
}
