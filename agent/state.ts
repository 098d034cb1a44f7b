/**
 * The agent's credential on disk (default /var/lib/fleet-agent, 0700):
 *   node.key   the node's private key (PKCS#8 PEM), generated on the node   0600
 *   node.crt   the node certificate the server issued (CN = node name)       0600
 *   ca.crt     the fleet CA (the pinned one)                                 0600
 *   agent.json server address, node name, CA fingerprint, times              0600
 * agent.json is written last: its presence marks a complete enrolment.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../common/atomic-write.js';
import { FleetError } from '../common/errors.js';

export const DEFAULT_STATE_DIR = '/var/lib/fleet-agent';
export const STATE_FILE = 'agent.json';
export const KEY_FILE = 'node.key';
export const CERT_FILE = 'node.crt';
export const CA_FILE = 'ca.crt';

export interface AgentStateInfo {
  version: 1;
  /** HOST:PORT of the fleet server. */
  server: string;
  node: string;
  /** Canonical SHA-256 fingerprint of the fleet CA. */
  caFingerprint: string;
  enrolledAt: string;
  certNotAfter: string;
}

export interface AgentCredential extends AgentStateInfo {
  keyPem: string;
  certPem: string;
  caPem: string;
}

const PRIVATE = { mode: 0o600 } as const;

/** Writes the credential (key, certificate, CA, then agent.json), each 0600, in a 0700 directory. */
export async function saveCredential(dir: string, c: AgentCredential): Promise<void> {
  try {
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.promises.chmod(dir, 0o700);
    await fs.promises.rm(path.join(dir, STATE_FILE), { force: true });
    await writeFileAtomic(path.join(dir, KEY_FILE), c.keyPem, PRIVATE);
    await writeFileAtomic(path.join(dir, CERT_FILE), c.certPem, PRIVATE);
    await writeFileAtomic(path.join(dir, CA_FILE), c.caPem, PRIVATE);
    const info: AgentStateInfo = {
      version: 1,
      server: c.server,
      node: c.node,
      caFingerprint: c.caFingerprint,
      enrolledAt: c.enrolledAt,
      certNotAfter: c.certNotAfter,
    };
    await writeFileAtomic(path.join(dir, STATE_FILE), JSON.stringify(info, null, 2) + '\n', PRIVATE);
  } catch (e) {
    throw new FleetError('config.unreadable', `cannot write the agent credential to ${dir}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/** The enrolment recorded in dir, or null when there is none (no agent.json). */
export async function readStateInfo(dir: string): Promise<AgentStateInfo | null> {
  let text: string;
  try {
    text = await fs.promises.readFile(path.join(dir, STATE_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new FleetError('config.unreadable', `cannot read ${path.join(dir, STATE_FILE)}: ${(e as Error).message}`, undefined, { cause: e });
  }
  let info: Partial<AgentStateInfo>;
  try {
    info = JSON.parse(text) as Partial<AgentStateInfo>;
  } catch {
    throw new FleetError('config.unreadable', `${path.join(dir, STATE_FILE)} is not JSON`);
  }
  if (info.version !== 1 || typeof info.server !== 'string' || typeof info.node !== 'string' || typeof info.caFingerprint !== 'string') {
    throw new FleetError('config.unreadable', `${path.join(dir, STATE_FILE)} is not an agent state file`);
  }
  return info as AgentStateInfo;
}

/** The full credential; FleetError config.unreadable when the agent is not enrolled or a file is missing. */
export async function loadCredential(dir: string): Promise<AgentCredential> {
  const info = await readStateInfo(dir);
  if (!info) throw new FleetError('config.unreadable', `not enrolled: ${path.join(dir, STATE_FILE)} does not exist (run fleet-agent enroll)`);
  const read = async (f: string) => {
    try {
      return await fs.promises.readFile(path.join(dir, f), 'utf8');
    } catch (e) {
      throw new FleetError('config.unreadable', `cannot read ${path.join(dir, f)}: ${(e as Error).message}`, undefined, { cause: e });
    }
  };
  const [keyPem, certPem, caPem] = await Promise.all([read(KEY_FILE), read(CERT_FILE), read(CA_FILE)]);
  return { ...info, keyPem, certPem, caPem };
}
