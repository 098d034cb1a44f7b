#!/bin/sh
# fleet-agent: the fleet node agent, as one self-extracting file.
#
# Built by agent/package/build.sh; served by the fleet server at
# /agent/fleet-agent. What follows the marker line at the end is a gzip'ed
# tar of the agent (compiled JavaScript and the npm packages it needs) and,
# unless the bundle was built with --system-node, the Node.js runtime copied
# from the build host. On first run it is unpacked to
#   /usr/local/lib/fleet-agent/<bundle id>/   (root; $FLEET_AGENT_LIB overrides)
#   ${XDG_CACHE_HOME:-~/.cache}/fleet-agent/<bundle id>/   (other users)
# and every later run starts from there. Nothing is fetched from anywhere.
#
# Node.js: $FLEET_AGENT_NODE if set, else the bundled runtime (when the
# machine's architecture is the bundle's), else `node` on PATH (version 20
# or later, e.g. the OS's nodejs:20 module stream).
set -eu

BUNDLE_ID='@BUNDLE_ID@'
BUNDLE_ARCH='@BUNDLE_ARCH@'
BUNDLE_HAS_NODE='@BUNDLE_HAS_NODE@'
MARKER='__FLEET_AGENT_PAYLOAD_BELOW__'

die() {
  echo "fleet-agent: $*" >&2
  exit 2
}

self=$0
case $self in
  */*) ;;
  *) self=$(command -v -- "$self") || die "cannot find myself ($0)" ;;
esac

if [ -n "${FLEET_AGENT_LIB:-}" ]; then
  base=$FLEET_AGENT_LIB
elif [ "$(id -u)" = 0 ]; then
  base=/usr/local/lib/fleet-agent
else
  base=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/fleet-agent
fi
dir=$base/$BUNDLE_ID

if [ ! -f "$dir/.complete" ]; then
  umask 022
  mkdir -p "$base" || die "cannot create $base"
  tmp=$(mktemp -d "$base/.unpack.XXXXXX") || die "cannot create a directory in $base"
  trap 'rm -rf "$tmp"' EXIT INT TERM
  line=$(awk -v m="$MARKER" '$0 == m { print NR + 1; exit }' "$self")
  [ -n "$line" ] || die "$self has no payload (damaged download?)"
  tail -n +"$line" "$self" | gzip -dc | tar -xf - -C "$tmp" || die "cannot unpack the agent into $tmp (damaged download, or disk full?)"
  : >"$tmp/.complete"
  if [ ! -e "$dir" ]; then
    mv "$tmp" "$dir" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  trap - EXIT INT TERM
  [ -f "$dir/.complete" ] || die "cannot install the agent into $dir"
  # Bundles of earlier versions are of no use any more.
  for old in "$base"/*; do
    [ -d "$old" ] && [ "$old" != "$dir" ] && [ -f "$old/.complete" ] && rm -rf "$old"
  done
fi

node=${FLEET_AGENT_NODE:-}
if [ -z "$node" ] && [ "$BUNDLE_HAS_NODE" = 1 ] && [ "$(uname -m)" = "$BUNDLE_ARCH" ]; then
  node=$dir/runtime/node
fi
if [ -z "$node" ]; then
  node=$(command -v node 2>/dev/null) || die "no Node.js runtime: this bundle carries none for $(uname -m); install nodejs 20 or later from the cluster's repository, or set FLEET_AGENT_NODE"
  "$node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null ||
    die "$node is older than Node.js 20; install nodejs 20 or later from the cluster's repository, or set FLEET_AGENT_NODE"
fi
[ -x "$node" ] || die "$node is not executable"

exec "$node" "$dir/app/bin/fleet-agent.js" "$@"
exit 2
