#!/bin/sh
# chassis_control hook for one ipmi_sim BMC (see test/helpers/ipmisim.ts).
#
#   ipmisim-chassis.sh STATEFILE get NAME...          -> prints NAME:VALUE lines
#   ipmisim-chassis.sh STATEFILE set NAME VALUE...    -> updates STATEFILE
#
# ipmi_sim asks for: power (0|1), boot (none|pxe|default|cdrom|bios) and
# sets power 0|1, reset 1, shutdown 1, boot VALUE. It blocks while this runs,
# so it must stay fast. STATEFILE holds key=value lines; every call is also
# appended to STATEFILE.log. A file STATEFILE.setdelay holding a number of
# seconds makes every `set` sleep that long first (a slow BMC, for tests of
# retransmits).
f="$1"
shift
echo "$*" >> "$f.log"
if [ "$1" = set ] && [ -f "$f.setdelay" ]; then
  read -r d < "$f.setdelay"
  case "$d" in
    *[!0-9.]*|'') ;;
    *) sleep "$d" ;;
  esac
fi

power=0
boot=default
resets=0
softs=0
if [ -f "$f" ]; then
  while IFS='=' read -r k v; do
    case "$k" in
      power) power="$v" ;;
      boot) boot="$v" ;;
      resets) resets="$v" ;;
      softs) softs="$v" ;;
    esac
  done < "$f"
fi

op="$1"
shift
case "$op" in
  get)
    for n in "$@"; do
      case "$n" in
        power) echo "power:$power" ;;
        boot) echo "boot:$boot" ;;
      esac
    done
    ;;
  set)
    while [ $# -ge 2 ]; do
      case "$1" in
        power) power="$2" ;;
        boot) boot="$2" ;;
        reset) resets=$((resets + 1)) ;;
        shutdown) softs=$((softs + 1)); power=0 ;;
      esac
      shift 2
    done
    printf 'power=%s\nboot=%s\nresets=%s\nsofts=%s\n' "$power" "$boot" "$resets" "$softs" > "$f.tmp"
    mv "$f.tmp" "$f"
    ;;
esac
exit 0
