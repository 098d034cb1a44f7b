#!/bin/sh
# fleet lab: a `curl` for the stand-in installer and the lab "OS", mapped onto
# busybox wget. It supports exactly what fleet's kickstart (kickstart/base.ks)
# and the lab scripts use, and refuses anything else (exit 2):
#
#   curl -fsS -m 10 --retry 3 -X POST URL                       (empty POST)
#   ... | curl -fsS -m 20 --retry 3 -X POST -H "H: v" --data-binary @- URL
#   curl -fsS -m 120 --retry 5 --retry-delay 2 -o FILE URL      (download)
#   -d/--data/--data-binary/--data-raw STR|@FILE|@-, -H (repeatable), -L, -X GET|POST
#
# Differences from curl: an empty POST carries `Content-Type: text/plain` (busybox
# wget cannot send a POST without one; curl sends none), any failure is retried (curl retries only transient
# errors), an HTTP error always fails (as with -f), -m bounds each attempt
# (with the timeout applet: busybox 1.35's wget -T crashes).
# Server: http:// only (busybox wget here has no TLS verification).
set -u
method=""
out="-"
data=""
hasdata=0
datafile=""
stdin=0
retries=0
delay=1
maxtime=""
url=""
hdrs=""
NL='
'
die() { echo "curl (fleet lab shim): $*" >&2; exit 2; }
need() { [ $# -ge 2 ] || die "option $1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    -f|--fail|-s|--silent|-S|--show-error|-L|--location) ;;
    -[fsSL]*)
      flags="${1#-}"
      while [ -n "$flags" ]; do
        c="${flags%"${flags#?}"}"
        flags="${flags#?}"
        case "$c" in f|s|S|L) ;; *) die "unsupported option -$c" ;; esac
      done
      ;;
    -m|--max-time) need "$@"; maxtime="$2"; shift ;;
    --retry) need "$@"; retries="$2"; shift ;;
    --retry-delay) need "$@"; delay="$2"; shift ;;
    -X|--request) need "$@"; method="$2"; shift ;;
    -H|--header) need "$@"; hdrs="$hdrs$2$NL"; shift ;;
    -o|--output) need "$@"; out="$2"; shift ;;
    -d|--data|--data-binary|--data-ascii)
      need "$@"; hasdata=1
      case "$2" in
        @-) stdin=1 ;;
        @*) datafile="${2#@}" ;;
        *) data="$2" ;;
      esac
      shift ;;
    --data-raw) need "$@"; hasdata=1; data="$2"; shift ;;
    -*) die "unsupported option $1" ;;
    *) [ -z "$url" ] || die "only one URL is supported"; url="$1" ;;
  esac
  shift
done
[ -n "$url" ] || die "no URL"
case "$url" in http://*) ;; *) die "only http:// URLs are supported: $url" ;; esac
case "$retries" in ''|*[!0-9]*) die "--retry needs a number" ;; esac
case "$delay" in ''|*[!0-9]*) die "--retry-delay needs a number" ;; esac
[ -z "$method" ] && { if [ $hasdata = 1 ]; then method=POST; else method=GET; fi; }
case "$method" in GET|POST) ;; *) die "method $method is not supported" ;; esac

tmp=""
cleanup() { [ -n "$tmp" ] && rm -f "$tmp"; }
trap cleanup EXIT
if [ "$method" = POST ]; then
  # curl -X POST without data sends no body and no Content-Type; busybox wget always sends one,
  # application/x-www-form-urlencoded unless told otherwise, which fleet's callback endpoints
  # refuse (400 "unsupported content type"). An empty text/plain body is what they accept.
  if [ $hasdata = 0 ] && ! printf '%s' "$hdrs" | grep -qi '^content-type:'; then
    hdrs="${hdrs}Content-Type: text/plain$NL"
  fi
  tmp="$(mktemp /tmp/curl-shim.XXXXXX)" || exit 2
  if [ $stdin = 1 ]; then cat > "$tmp"
  elif [ -n "$datafile" ]; then cat "$datafile" > "$tmp" || exit 26
  else printf '%s' "$data" > "$tmp"
  fi
fi

# Arguments for wget, rebuilt for every attempt (no arrays in sh).
attempt() {
  set -- -q -O "$out"
  if [ -n "$hdrs" ]; then
    while IFS= read -r h; do [ -n "$h" ] && set -- "$@" --header "$h"; done <<HDRS
$hdrs
HDRS
  fi
  [ "$method" = POST ] && set -- "$@" --post-file "$tmp"
  if [ -n "$maxtime" ]; then
    timeout "$maxtime" wget "$@" "$url"
  else
    wget "$@" "$url"
  fi
}

i=0
while :; do
  attempt && exit 0
  rc=$?
  [ "$out" != "-" ] && rm -f "$out"
  [ $i -ge "$retries" ] && break
  i=$((i + 1))
  sleep "$delay"
done
echo "curl (fleet lab shim): $method $url failed after $((i + 1)) attempt(s)" >&2
exit 22
