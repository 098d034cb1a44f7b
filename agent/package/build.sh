#!/bin/sh
# Builds the agent bundle the fleet server serves under /agent/:
#
#   OUT/fleet-agent           one self-extracting file (POSIX sh launcher +
#                             tar.gz of the agent bundled by esbuild, its npm
#                             packages and a Node.js runtime); the kickstart
#                             downloads it
#   OUT/fleet-agent.service   the systemd unit
#   OUT/fleet-agent.sha256    checksums of both
#
# Usage: agent/package/build.sh [--out DIR] [--node PATH | --system-node] [--dist DIR]
#   --out DIR       where to write (default: dist/agent-bundle); for a server,
#                   DATA/www/agent (what `fleet server` serves at /agent/)
#   --node PATH     the Node.js runtime to bundle (default: the `node` running
#                   this build); it must be a self-contained build (links only
#                   the C/C++ runtime), e.g. the nodejs.org or NodeSource
#                   binary, and of the nodes' architecture
#   --system-node   bundle no runtime: nodes then need nodejs >= 20 from the
#                   cluster's repository (e.g. %packages @nodejs:20)
#   --dist DIR      bundle already compiled JavaScript (DIR/agent/main.js)
#                   instead of the TypeScript sources
#
# Needs only what the build tree has: node, npm packages in node_modules
# (npm ci), esbuild (devDependency), tar, gzip. Never touches the network.
set -eu

ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
OUT=$ROOT/dist/agent-bundle
NODE_BIN=
SYSTEM_NODE=0
DIST=

while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --node) NODE_BIN=$2; shift 2 ;;
    --system-node) SYSTEM_NODE=1; shift ;;
    --dist) DIST=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "build.sh: $*" >&2; }
die() { say "$*"; exit 1; }

command -v node >/dev/null 2>&1 || die "node not found"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleet-agent-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

# 1-2. the agent bundled by esbuild (agent/, common/, proto/gen/ in one
# module) and the npm packages it imports. esbuild does not type-check: the
# agent's modules are checked by the test suite (npm run lint).
[ -x "$ROOT/node_modules/.bin/esbuild" ] || die "esbuild is missing from node_modules (npm ci: it is a devDependency)"
mkdir -p "$WORK/stage"
if [ -n "$DIST" ]; then
  node "$ROOT/agent/package/stage.mjs" --root "$ROOT" --dist "$DIST" --out "$WORK/stage/app" >"$WORK/stage.json"
else
  node "$ROOT/agent/package/stage.mjs" --root "$ROOT" --out "$WORK/stage/app" >"$WORK/stage.json"
fi

# 3. the runtime
ARCH=$(uname -m)
HAS_NODE=0
if [ "$SYSTEM_NODE" = 0 ]; then
  [ -n "$NODE_BIN" ] || NODE_BIN=$(node -p 'process.execPath')
  [ -x "$NODE_BIN" ] || die "$NODE_BIN is not an executable"
  VERSION=$("$NODE_BIN" -p 'process.versions.node') || die "$NODE_BIN does not run"
  case $VERSION in
    [2-9][0-9].*) ;;
    *) die "$NODE_BIN is Node.js $VERSION; the agent needs 20 or later" ;;
  esac
  ARCH=$("$NODE_BIN" -p 'process.arch === "x64" ? "x86_64" : process.arch === "arm64" ? "aarch64" : process.arch')
  # A distribution's nodejs links libnode, libuv, OpenSSL... that the nodes may not have.
  if command -v ldd >/dev/null 2>&1; then
    extra=$(ldd "$NODE_BIN" 2>/dev/null | awk '{print $1}' | grep -v -E '^(linux-vdso|linux-gate|/lib.*/ld-linux|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libstdc\+\+\.so|libgcc_s\.so|libatomic\.so)' || true)
    if [ -n "$extra" ]; then
      die "$NODE_BIN is not self-contained (links $(echo $extra | tr '\n' ' ')); give --node PATH of a nodejs.org build, or --system-node"
    fi
  fi
  mkdir -p "$WORK/stage/runtime"
  cp "$NODE_BIN" "$WORK/stage/runtime/node"
  chmod 0755 "$WORK/stage/runtime/node"
  echo "$VERSION" >"$WORK/stage/runtime/VERSION"
  HAS_NODE=1
  say "bundling Node.js $VERSION ($ARCH) from $NODE_BIN"
else
  say "no runtime bundled: nodes need nodejs >= 20 from the cluster's repository"
fi

# 4. payload and launcher
(cd "$WORK/stage" && tar -cf - --owner=0 --group=0 --numeric-owner app $( [ "$HAS_NODE" = 1 ] && echo runtime )) | gzip -6 >"$WORK/payload.tgz"
ID=$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha256").update(f.readFileSync(process.argv[1])).digest("hex").slice(0,16))' "$WORK/payload.tgz")
mkdir -p "$OUT"
sed -e "s/@BUNDLE_ID@/$ID/" -e "s/@BUNDLE_ARCH@/$ARCH/" -e "s/@BUNDLE_HAS_NODE@/$HAS_NODE/" "$ROOT/agent/package/launcher.sh" >"$WORK/fleet-agent"
echo '__FLEET_AGENT_PAYLOAD_BELOW__' >>"$WORK/fleet-agent"
cat "$WORK/payload.tgz" >>"$WORK/fleet-agent"
chmod 0755 "$WORK/fleet-agent"
mv "$WORK/fleet-agent" "$OUT/fleet-agent"
cp "$ROOT/agent/fleet-agent.service" "$OUT/fleet-agent.service"
chmod 0644 "$OUT/fleet-agent.service"
(cd "$OUT" && sha256sum fleet-agent fleet-agent.service >fleet-agent.sha256)

SIZE=$(wc -c <"$OUT/fleet-agent" | tr -d ' ')
say "wrote $OUT/fleet-agent ($SIZE bytes, bundle $ID, $(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).modules' "$WORK/stage.json") modules)"
