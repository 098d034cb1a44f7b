# fleet boot environment: shell functions shared by /init and install.sh
# (busybox ash). Pure over their arguments and the directory trees they are
# given, so test/unit/bootenv runs them against fake /sys trees.

# parse_cmdline "CMDLINE": one FLEET_KEY='value' line per fleet.key=value word
# (dots and dashes in the key become underscores, the key is upper-cased).
parse_cmdline() {
  for w in $1; do
    case "$w" in
      fleet.*=*)
        k=${w%%=*}; k=${k#fleet.}
        v=${w#*=}
        case "$k" in *[!A-Za-z0-9._-]*|'') continue ;; esac
        k=$(echo "$k" | tr 'a-z.-' 'A-Z__')
        printf "FLEET_%s='%s'\n" "$k" "$(printf '%s' "$v" | sed "s/'/'\\\\''/g")"
        ;;
    esac
  done
}

# nic_by_mac SYSNET MAC: the interface under SYSNET (/sys/class/net) whose
# address is MAC (case-insensitive); without MAC, the first non-loopback one.
nic_by_mac() {
  want=$(echo "$2" | tr 'A-F' 'a-f')
  for d in "$1"/*; do
    n=${d##*/}
    [ "$n" = lo ] && continue
    [ -f "$d/address" ] || continue
    a=$(tr 'A-F' 'a-f' < "$d/address")
    if [ -z "$want" ] || [ "$a" = "$want" ]; then echo "$n"; return 0; fi
  done
  return 1
}

# choose_disk SYSBLOCK [RULE]: the target disk's name (vda, sda, nvme0n1).
# RULE "auto" (default): the smallest non-removable disk of type disk (not
# loop/ram/sr/zram/fd/md/dm, size > 0, with a device); "serial:XYZ": the disk
# whose serial is XYZ; "/dev/NAME" or a by-path name: that disk when present.
choose_disk() {
  sys=$1; rule=${2:-auto}
  case "$rule" in
    /dev/disk/*)
      # No udev here: a by-path/by-id link is resolved only when present.
      [ -e "$rule" ] || return 1
      t=$(readlink -f "$rule"); echo "${t##*/}"; return 0 ;;
    /dev/*)
      n=${rule#/dev/}
      [ -d "$sys/$n" ] || return 1
      echo "$n"; return 0 ;;
  esac
  best=''; bestsize=''
  for d in "$sys"/*; do
    n=${d##*/}
    case "$n" in loop*|ram*|sr*|zram*|fd*|md*|dm-*|nbd*) continue ;; esac
    [ -e "$d/device" ] || continue
    [ "$(cat "$d/removable" 2>/dev/null || echo 0)" = 0 ] || continue
    size=$(cat "$d/size" 2>/dev/null || echo 0)
    [ "$size" -gt 0 ] 2>/dev/null || continue
    case "$rule" in
      serial:*)
        s=$(cat "$d/serial" 2>/dev/null || cat "$d/device/serial" 2>/dev/null || true)
        s=$(echo $s)
        [ "$s" = "${rule#serial:}" ] && { echo "$n"; return 0; }
        continue ;;
    esac
    if [ -z "$best" ] || [ "$size" -lt "$bestsize" ]; then best=$n; bestsize=$size; fi
  done
  [ -n "$best" ] || return 1
  echo "$best"
}

# part_dev DISK N: the device of partition N (vda 1 → /dev/vda1, nvme0n1 1 → /dev/nvme0n1p1).
part_dev() {
  case "$1" in *[0-9]) echo "/dev/${1}p$2" ;; *) echo "/dev/$1$2" ;; esac
}

# json_str: stdin as one JSON string (quotes included).
json_str() {
  awk 'BEGIN { ORS=""; print "\"" }
    { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); gsub(/\r/, ""); gsub(/[\001-\037]/, "?"); if (NR > 1) print "\\n"; print }
    END { print "\"" }'
}

# layout_script FIRMWARE SWAPMIB: the sfdisk script of the whole-disk GPT layout.
layout_script() {
  echo 'label: gpt'
  if [ "$1" = uefi ]; then
    echo 'size=256MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"'
  else
    echo 'size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name="bios_grub"'
  fi
  if [ "${2:-0}" -gt 0 ] 2>/dev/null; then
    echo "size=${2}MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=\"swap\""
  fi
  echo 'type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"'
}
