#!/bin/sh
# Builds the release tarball of the fleet server and CLI
# (docs/decisions/0012-release-artefact.md):
#
#   OUT/fleet-VERSION-linux-ARCH-node-ABI.tar.gz, one top directory fleet-VERSION/:
#     bin/fleet            launcher (POSIX sh): runs bin/fleet.js with the node on PATH
#     bin/fleet.js         the CLI entry (as in the repository)
#     dist/                the compiled JavaScript (tsc, no source maps)
#     node_modules/        production dependencies only, better-sqlite3's
#                          native module included, built for this machine
#     package.json, package-lock.json, README.md, docs/operations.md
#     ipxe/ kickstart/ server/bootenv/assets/   templates and assets read at run time
#     server/dashboard/assets/                  the dashboard's script and stylesheet (served by the server)
#     systemd/fleet.service                     the server's unit
#     man/man1/fleet.1, fleet-agent.1           the man pages (npm run man; install under /usr/local/share/man)
#
# Build it on the target platform (e.g. Debian 12 amd64 with Node 20): the
# native module is the one in this tree's node_modules, so its Node ABI and
# libc are this machine's; the file name says both (ARCH, node-ABI). Installing
# needs no compiler, no npm and no network: unpack, link bin/fleet onto PATH.
#
# Usage: scripts/release.sh [--out DIR] [--dist DIR]
#   --out DIR    where to write the tarball (default: dist/release)
#   --dist DIR   ship this already compiled JavaScript (npm run build: dist/)
#                instead of compiling afresh (faster; the test of the release uses it)
# Needs: node, npm, tar, gzip, this tree's node_modules (npm ci). Never touches the network.
set -eu

ROOT=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
OUT=$ROOT/dist/release
DIST=
while [ $# -gt 0 ]; do
  case $1 in
    --out) [ $# -ge 2 ] || { echo "release.sh: --out needs a directory" >&2; exit 2; }; OUT=$2; shift 2 ;;
    --dist) [ $# -ge 2 ] || { echo "release.sh: --dist needs a directory" >&2; exit 2; }; DIST=$2; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "release.sh: unknown argument $1 (usage: scripts/release.sh [--out DIR] [--dist DIR])" >&2; exit 2 ;;
  esac
done
[ -d "$ROOT/node_modules/better-sqlite3" ] || { echo "release.sh: $ROOT/node_modules has no better-sqlite3: run npm ci first" >&2; exit 2; }

VERSION=$(node -p "require('$ROOT/package.json').version")
NAME=fleet-$VERSION
TARGET=linux-$(node -p process.arch)-node-$(node -p process.versions.modules)
mkdir -p "$OUT"
OUT=$(CDPATH= cd -- "$OUT" && pwd)
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/fleet-release.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT INT TERM
DIR=$STAGE/$NAME
mkdir -p "$DIR/bin" "$DIR/docs" "$DIR/systemd" "$DIR/server/bootenv"

if [ -n "$DIST" ]; then
  [ -f "$DIST/server/cli/main.js" ] || { echo "release.sh: $DIST/server/cli/main.js does not exist (npm run build)" >&2; exit 2; }
  echo "release.sh: copying the compiled JavaScript from $DIST" >&2
  mkdir "$DIR/dist"
  for d in common server agent proto; do [ ! -d "$DIST/$d" ] || cp -R "$DIST/$d" "$DIR/dist/"; done
  find "$DIR/dist" -name '*.map' -delete
else
  echo "release.sh: compiling (tsc) into $DIR/dist" >&2
  (cd "$ROOT" && node node_modules/typescript/bin/tsc -p tsconfig.json --outDir "$DIR/dist" --sourceMap false)
fi

cp "$ROOT/package.json" "$ROOT/package-lock.json" "$ROOT/README.md" "$DIR/"
cp "$ROOT/bin/fleet.js" "$DIR/bin/fleet.js"
cp "$ROOT/docs/operations.md" "$DIR/docs/"
cp -R "$ROOT/ipxe" "$ROOT/kickstart" "$DIR/"
cp -R "$ROOT/server/bootenv/assets" "$DIR/server/bootenv/"
mkdir -p "$DIR/server/dashboard"
cp -R "$ROOT/server/dashboard/assets" "$DIR/server/dashboard/"
cp "$ROOT/server/fleet.service" "$DIR/systemd/fleet.service"
mkdir -p "$DIR/man/man1"
cp "$ROOT/man/fleet.1" "$ROOT/man/fleet-agent.1" "$DIR/man/man1/"

cat > "$DIR/bin/fleet" <<'EOF'
#!/bin/sh
# fleet launcher (release tarball): the CLI and server with the node on PATH (Node.js >= 20.19).
# Follows symlinks, so /usr/local/bin/fleet may point here.
here=$(dirname -- "$(readlink -f -- "$0")")
exec node "$here/fleet.js" "$@"
EOF
chmod 755 "$DIR/bin/fleet" "$DIR/bin/fleet.js"

echo "release.sh: production node_modules (copied from this tree, dev dependencies pruned, offline)" >&2
# The contents, not the path: node_modules may be a symlink (a worktree sharing one), which must not be followed by prune.
mkdir "$DIR/node_modules"
cp -R "$ROOT/node_modules/." "$DIR/node_modules/"
(cd "$DIR" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
# better-sqlite3 needs only its lib/ and the compiled module at run time: not the SQLite sources and build tree (~25 MB).
B=$DIR/node_modules/better-sqlite3
rm -rf "$B/deps" "$B/src"
find "$B/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$B/build/Release" -mindepth 1 -maxdepth 1 ! -name better_sqlite3.node -exec rm -rf {} +
# The native module must be there and load with this Node: the target's ABI.
(cd "$DIR" && node -e "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()") || {
  echo "release.sh: better-sqlite3's native module does not load from the staged tree" >&2
  exit 1
}
for dev in typescript vitest esbuild ts-proto; do
  [ ! -e "$DIR/node_modules/$dev" ] || { echo "release.sh: dev dependency $dev is still in node_modules" >&2; exit 1; }
done

TARBALL=$OUT/$NAME-$TARGET.tar.gz
tar -C "$STAGE" --owner=0 --group=0 -czf "$TARBALL" "$NAME"
echo "$TARBALL"
