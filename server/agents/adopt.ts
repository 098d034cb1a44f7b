/**
 * Adoption of an installed machine (issue 12 item 5, seed 002; docs/agent.md
 * "Adoption", docs/decisions/0011-adoption-without-bmc.md): `fleet adopt
 * NODE` prints one line for the admin to paste as root on the machine.
 *
 * Trust: the machine does not know the server yet and fetches over plain
 * HTTP, so everything it runs is pinned by a digest that travels in the
 * line itself (which the admin copies from the authenticated CLI):
 *
 *   line      → /agent/adopt.sh, checked against the script's sha256 in the line
 *   adopt.sh  → /agent/fleet-agent, checked against the agent's sha256 in the script;
 *               the unit file is inside the script
 *   enroll    → the server's TLS chain, checked against the CA fingerprint in the
 *               script before the token is sent (agent/enroll.ts)
 *
 * The script holds no secret (it is served to anyone on the boot network);
 * the one-time token rides in the line, in the environment of `sh`, never
 * in argv. Rendering is pure; `adoptScript` reads the agent bundle.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../../common/errors.js';
import { normaliseFingerprint } from '../../common/fingerprint.js';
import { sha256Hex } from '../images/manifest.js';
import { sha256File } from '../images/store.js';

/** Where the boot face serves the script (server/http/routes/boot.ts). */
export const ADOPT_SCRIPT_PATH = '/agent/adopt.sh';
/** The agent bundle's file names in the agent directory (agent/package/build.sh). */
export const AGENT_FILE = 'fleet-agent';
export const AGENT_UNIT_FILE = 'fleet-agent.service';

const HEX64 = /^[0-9a-f]{64}$/;
/** What may stand between single quotes in the script and in the line: no quote, no space, no `$`. */
const URL_SAFE = /^https?:\/\/[A-Za-z0-9.:[\]-]+(\/[A-Za-z0-9._~/-]*)?$/;
const HOST_PORT = /^[A-Za-z0-9.:[\]-]+:\d{1,5}$/;
const TOKEN = /^[A-Za-z0-9_-]{16,256}$/;
const UNIT_END = 'FLEET_UNIT_EOF';

export interface AdoptScriptInput {
  /** The boot face's base URL as the machine reaches it, e.g. http://10.10.0.1:8080. */
  serverUrl: string;
  /** HOST:PORT of the gRPC agent service. */
  enrolServer: string;
  /** The fleet CA's SHA-256 fingerprint (any accepted form). */
  caFingerprint: string;
  /** sha256 (hex) of the agent bundle served at /agent/fleet-agent. */
  agentSha256: string;
  /** The systemd unit (agent/fleet-agent.service), written by the script. */
  unit: string;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new FleetError('precondition.failed', `cannot render the adoption script: ${what}`);
}

/** `sha256:` and lower-case hex without colons: the compact form the agent accepts. */
export function compactFingerprint(fp: string): string {
  return `sha256:${normaliseFingerprint(fp).replace(/:/g, '').toLowerCase()}`;
}

/** The script served at /agent/adopt.sh. Pure; the same input gives the same bytes (its sha256 is in the line). */
export function renderAdoptScript(i: AdoptScriptInput): string {
  check(URL_SAFE.test(i.serverUrl), `server URL ${JSON.stringify(i.serverUrl)} is not a plain http(s) URL`);
  check(HOST_PORT.test(i.enrolServer), `gRPC address ${JSON.stringify(i.enrolServer)} is not HOST:PORT`);
  check(HEX64.test(i.agentSha256), 'the agent digest is not a sha256');
  check(!i.unit.split('\n').includes(UNIT_END), 'the unit file holds the heredoc delimiter');
  const ca = compactFingerprint(i.caFingerprint);
  const base = i.serverUrl.replace(/\/+$/, '');
  const unit = i.unit.endsWith('\n') ? i.unit : `${i.unit}\n`;
  return `#!/bin/sh
# fleet adoption of an installed machine (docs/agent.md "Adoption").
# Run through the line \`fleet adopt NODE\` prints, as root: the line checks this
# script's sha256; this script checks the agent's, and the agent pins the fleet CA
# by its fingerprint before it sends the one-time token (FLEET_ENROLL_TOKEN).
# FLEET_ROOT (tests only): a directory standing in for /; systemd is left alone.
set -eu
server='${base}'
grpc='${i.enrolServer}'
agent_sha256='${i.agentSha256}'
ca_fingerprint='${ca}'
root="\${FLEET_ROOT:-}"
say() { echo "fleet-adopt: $*" >&2; }
if [ -z "\${FLEET_ENROLL_TOKEN:-}" ]; then say "FLEET_ENROLL_TOKEN is not set: run the line fleet adopt printed"; exit 2; fi
if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then say "run as root"; exit 2; fi
for tool in curl sha256sum install; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is missing"; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "downloading the agent from $server"
curl -fsS -m 600 --retry 3 -o "$tmp/fleet-agent" "$server/agent/fleet-agent"
if ! echo "$agent_sha256  $tmp/fleet-agent" | sha256sum -c --quiet >/dev/null 2>&1; then
  say "the agent downloaded from $server does not match its sha256 (rebuilt since fleet adopt ran? run fleet adopt again): nothing installed"
  exit 1
fi
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system"
install -m 0755 "$tmp/fleet-agent" "$root/usr/local/bin/fleet-agent"
FLEET_AGENT_LIB="$root/usr/local/lib/fleet-agent" "$root/usr/local/bin/fleet-agent" enroll --server "$grpc" --ca-fingerprint "$ca_fingerprint" --state-dir "$root/var/lib/fleet-agent" --force
unset FLEET_ENROLL_TOKEN
cat > "$root/etc/systemd/system/fleet-agent.service" <<'${UNIT_END}'
${unit}${UNIT_END}
chmod 0644 "$root/etc/systemd/system/fleet-agent.service"
if [ -n "$root" ]; then say "enrolled under $root (FLEET_ROOT): systemd left alone"; exit 0; fi
systemctl daemon-reload
systemctl enable fleet-agent.service
systemctl restart fleet-agent.service
say "enrolled; fleet-agent started: the node goes ready once its roles apply (fleet status)"
`;
}

/**
 * The one line the admin pastes as root on the machine: a private temp
 * directory, the script fetched and checked against its sha256, then run
 * with the token in its environment. A subshell, so nothing it sets (or
 * its exit) touches the admin's shell. Pure.
 */
export function renderAdoptLine(i: { serverUrl: string; scriptSha256: string; token: string }): string {
  if (!URL_SAFE.test(i.serverUrl)) throw new FleetError('precondition.failed', `cannot render the adoption line: server URL ${JSON.stringify(i.serverUrl)} is not a plain http(s) URL`);
  if (!HEX64.test(i.scriptSha256)) throw new FleetError('internal', 'the adoption script digest is not a sha256');
  if (!TOKEN.test(i.token)) throw new FleetError('internal', 'the adoption token is malformed');
  const url = `${i.serverUrl.replace(/\/+$/, '')}${ADOPT_SCRIPT_PATH}`;
  return `(d=$(mktemp -d) && trap 'rm -rf "$d"' EXIT && curl -fsSo "$d/a" ${url} && echo "${i.scriptSha256}  $d/a" | sha256sum -c --quiet && FLEET_ENROLL_TOKEN=${i.token} sh "$d/a")`;
}

const digests = new Map<string, { key: string; sha256: string }>();

/**
 * The agent bundle's sha256 and its unit, read from the agent directory
 * (DATA/www/agent); the digest is cached while the file's size and mtime
 * stay the same. precondition.failed when the bundle is not built.
 */
export async function agentBundle(agentDir: string | undefined): Promise<{ sha256: string; unit: string }> {
  const missing = (): FleetError =>
    new FleetError('precondition.failed', 'the fleet agent bundle is not built on this server: run agent/package/build.sh --out DATA/www/agent (machines download it to be adopted)');
  if (agentDir === undefined) throw missing();
  const file = join(agentDir, AGENT_FILE);
  let key: string;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw missing();
    key = `${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw missing();
  }
  let unit: string;
  try {
    unit = await readFile(join(agentDir, AGENT_UNIT_FILE), 'utf8');
  } catch {
    throw missing();
  }
  const cached = digests.get(file);
  if (cached?.key === key) return { sha256: cached.sha256, unit };
  const sha256 = await sha256File(file);
  digests.set(file, { key, sha256 });
  return { sha256, unit };
}

export interface AdoptDeps {
  serverUrl: string;
  enrolServer?: string;
  caFingerprint?: string;
  agentDir?: string;
}

/** The script as served now, and its sha256 (the route that prints the line and the boot face agree on both). */
export async function adoptScript(deps: AdoptDeps): Promise<{ text: string; sha256: string; agentSha256: string }> {
  if (deps.caFingerprint === undefined) throw new FleetError('precondition.failed', 'the server has no CA fingerprint configured (the agent pins the CA with it)');
  const bundle = await agentBundle(deps.agentDir);
  const text = renderAdoptScript({
    serverUrl: deps.serverUrl,
    enrolServer: deps.enrolServer ?? deps.serverUrl.replace(/^https?:\/\//, '').replace(/\/.*$/, ''),
    caFingerprint: deps.caFingerprint,
    agentSha256: bundle.sha256,
    unit: bundle.unit,
  });
  return { text, sha256: sha256Hex(text), agentSha256: bundle.sha256 };
}
