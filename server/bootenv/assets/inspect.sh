#!/bin/sh
# fleet boot environment: the inspect job (fleet.job=inspect, docs/discovery.md
# "Inspection"). A machine no node declares: read what it is (SMBIOS, CPUs,
# memory, disks, NICs and their links) and what its own BMC says in band
# (ipmitool over the KCS device: LAN channel, address, MAC, firmware, GUID,
# users), post one report with the inspect token of the iPXE script, then ask
# the server what comes next (wait, or power off) until the machine is
# rebooted. The server interprets the BMC's texts; this script only collects.
. /run/fleet.env
. /usr/share/fleet/lib.sh
LOG=/run/fleet.log
API="$FLEET_SERVER/inspection/$FLEET_MAC"
Q="token=$FLEET_TOKEN"
W=/tmp/inspect
mkdir -p "$W"
: > "$W/notes"
log() { echo "fleet-inspect: $*" | tee -a "$LOG" >/dev/console; }
note() { echo "$*" >> "$W/notes"; log "$*"; }
# One sysfs/procfs value: NULs dropped, at most 200 bytes, empty when unreadable.
rd() { [ -r "$1" ] && tr -d '\000\n' < "$1" 2>/dev/null | head -c 200; }

halt_now() {
  log "powering off: $1"
  sync
  poweroff -f
  while :; do sleep 3600; done
}

log "inspecting $FLEET_MAC for $FLEET_SERVER"
FIRMWARE=bios; [ -d /sys/firmware/efi ] && FIRMWARE=uefi

# SMBIOS (the kernel's DMI table: /sys/class/dmi/id; serial and UUID are root-only).
D=/sys/class/dmi/id
[ -d "$D" ] || note "no /sys/class/dmi/id: the firmware gave no SMBIOS table"
jq -n --arg v "$(rd $D/sys_vendor)" --arg p "$(rd $D/product_name)" --arg s "$(rd $D/product_serial)" \
  --arg u "$(rd $D/product_uuid)" --arg bv "$(rd $D/bios_vendor)" --arg bver "$(rd $D/bios_version)" \
  '{sys_vendor:$v, product_name:$p, product_serial:$s, product_uuid:$u, bios_vendor:$bv, bios_version:$bver}' > "$W/system.json"

# CPUs and memory as the kernel counts them (logical CPUs; MemTotal, which is a little below what is installed).
CPUS=$(grep -c '^processor' /proc/cpuinfo)
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
MEM_KIB=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)

# Disks: every block device but loop, ram, zram, CD and floppy drives, device-mapper and md.
: > "$W/disks"
for b in /sys/block/*; do
  n=${b##*/}
  case "$n" in loop*|ram*|zram*|sr*|fd*|dm-*|md*) continue ;; esac
  serial=$(rd "$b/serial"); [ -n "$serial" ] || serial=$(rd "$b/device/serial")
  jq -cn --arg name "$n" --arg sectors "$(rd "$b/size")" --arg model "$(rd "$b/device/model")" --arg serial "$serial" \
    --arg rot "$(rd "$b/queue/rotational")" --arg rem "$(rd "$b/removable")" \
    '{name:$name, sectors:($sectors|tonumber? // 0), model:$model, serial:$serial, rotational:($rot|tonumber? // null), removable:($rem|tonumber? // null)}' >> "$W/disks"
done

# NICs: every interface backed by a device. Links are read after bringing each up (carrier is only valid then).
NICS=''
for c in /sys/class/net/*; do
  [ -e "$c/device" ] || continue
  NICS="$NICS ${c##*/}"
  ip link set "${c##*/}" up 2>>"$LOG"
done
# LLDP (fleet.lldp_wait=SECONDS, set when a discovery rule matches on it or discovery.lldp_wait
# says so): one frame per NIC, captured in the background while the rest is read, as raw pcap
# bytes the server decodes. tcpdump stays root (-Z root): the initramfs has no tcpdump user.
LLDP_WAIT=${FLEET_LLDP_WAIT:-0}
case "$LLDP_WAIT" in ''|*[!0-9]*) note "fleet.lldp_wait=$LLDP_WAIT is not a number of seconds: LLDP not listened for"; LLDP_WAIT=0 ;; esac
LLDP_PIDS=''
if [ "$LLDP_WAIT" -gt 0 ]; then
  log "listening for LLDP on$NICS for up to $LLDP_WAIT s"
  for n in $NICS; do
    timeout "$LLDP_WAIT" tcpdump -Z root -i "$n" -c 1 -s 1600 -U -w "$W/lldp-$n.pcap" 'ether proto 0x88cc' 2>>"$LOG" &
    LLDP_PIDS="$LLDP_PIDS $!"
  done
fi
sleep 3
: > "$W/nics"
for n in $NICS; do
  c=/sys/class/net/$n
  drv=''; [ -L "$c/device/driver" ] && drv=$(basename "$(readlink "$c/device/driver")")
  jq -cn --arg name "$n" --arg mac "$(rd "$c/address")" --arg carrier "$(rd "$c/carrier")" --arg speed "$(rd "$c/speed")" --arg driver "$drv" \
    '{name:$name, mac:$mac, carrier:($carrier|tonumber? // null), speed:($speed|tonumber? // null), driver:$driver}' >> "$W/nics"
done

# The BMC, in band. ipmi_si finds a KCS (or SMIC/BT) interface from SMBIOS/ACPI; ipmi_devintf makes /dev/ipmi0.
ipmi() { timeout 60 ipmitool "$@" 2>>"$LOG"; }
if [ ! -e /dev/ipmi0 ]; then
  jq -n '{absent: "no in-band IPMI device (/dev/ipmi0): the machine has no BMC the kernel found over KCS, SMIC or BT"}' > "$W/bmc.json"
else
  CH=''
  for ch in 1 2 3 4 5 6 7 8 9 10 11; do
    if ipmi channel info "$ch" 2>/dev/null | grep -q '802.3 LAN'; then CH=$ch; break; fi
  done
  if [ -z "$CH" ]; then
    note "bmc: no channel 1-11 says it is 802.3 LAN: using channel 1"
    CH=1
  fi
  ipmi lan print "$CH" > "$W/lan.txt" || note "bmc: ipmitool lan print $CH failed"
  ipmi mc info > "$W/mc.txt" || note "bmc: ipmitool mc info failed"
  ipmi user list "$CH" > "$W/users.txt" || note "bmc: ipmitool user list $CH failed"
  ipmi raw 0x06 0x37 > "$W/guid.txt" || note "bmc: Get System GUID failed"
  jq -n --argjson ch "$CH" --rawfile lan "$W/lan.txt" --rawfile mc "$W/mc.txt" --rawfile users "$W/users.txt" --rawfile guid "$W/guid.txt" \
    '{channel:$ch, lan:$lan, mc:$mc, users:$users, guid:$guid}' > "$W/bmc.json"
fi

# The LLDP captures: each NIC's pcap (base64) goes into its entry; an empty capture is "" (listened, none heard).
if [ -n "$LLDP_PIDS" ]; then
  for pid in $LLDP_PIDS; do wait "$pid" 2>/dev/null; done
  : > "$W/nics.lldp"
  while read -r line; do
    n=$(echo "$line" | jq -r .name)
    f="$W/lldp-$n.pcap"
    if [ -s "$f" ]; then b=$(base64 < "$f" | tr -d '\n'); else b=''; note "lldp: tcpdump wrote no capture on $n"; fi
    echo "$line" | jq -c --arg b "$b" '. + {lldp: $b}' >> "$W/nics.lldp"
  done < "$W/nics"
  mv "$W/nics.lldp" "$W/nics"
  log "LLDP: $(for f in "$W"/lldp-*.pcap; do [ -s "$f" ] && echo "${f##*/lldp-} $(wc -c < "$f") bytes"; done | tr '\n' ' ')"
fi

jq -n --arg fw "$FIRMWARE" --slurpfile system "$W/system.json" --arg cm "$CPU_MODEL" --arg cc "$CPUS" --arg mem "${MEM_KIB:-0}" \
  --slurpfile disks "$W/disks" --slurpfile nics "$W/nics" --slurpfile bmc "$W/bmc.json" --rawfile notes "$W/notes" \
  '{version:1, firmware:$fw, system:$system[0], cpu:{model:$cm, count:($cc|tonumber)}, memoryKiB:($mem|tonumber),
    disks:$disks, nics:$nics, bmc:$bmc[0], notes:($notes|split("\n")|map(select(. != "")))}' > "$W/report.json" \
  || halt_now "could not assemble the inspection report (jq)"
log "report: $(jq -c '{serial:.system.product_serial, model:.system.product_name, cpus:.cpu.count, memoryKiB, disks:(.disks|length), nics:(.nics|length), bmc:(.bmc.channel // .bmc.absent)}' "$W/report.json")"

code=$(curl -sS -m 30 --retry 5 --retry-connrefused -o "$W/answer" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data-binary @"$W/report.json" "$API?$Q" 2>>"$LOG")
if [ "$code" = 403 ] && grep -q 'already used by a report' "$W/answer" 2>/dev/null; then
  # curl retried a report whose 200 was lost on the way back: the server kept the first one.
  log "report kept by the server (an earlier try of this report was kept; its answer was lost)"
elif [ "$code" != 200 ]; then
  log "the server refused the report (HTTP $code): $(head -c 300 "$W/answer" 2>/dev/null)"
  halt_now "no report was kept; boot the machine again to inspect it again"
else
  log "report kept by the server"
fi

# The in-band BMC set-up of an accepted machine (discovery rule bmc.setup): the job from
# $W/next.json, run with ipmitool over KCS; each step is logged without the password, and the
# log goes back to the server, which then verifies the new account out of band.
bmc_setup() {
  J="$W/next.json"; S="$W/bmc-setup.log"; : > "$S"
  ch=$(jq -r '.job.channel' "$J"); slot=$(jq -r '.job.slot' "$J"); acct=$(jq -r '.job.account' "$J")
  len=$(jq -r '.job.passwordLength' "$J"); addr=$(jq -r '.job.address' "$J"); mask=$(jq -r '.job.netmask' "$J")
  gw=$(jq -r '.job.gateway // empty' "$J")
  ok=true
  step() { # step WHAT ARGS...: runs ipmitool ARGS, logs WHAT (never the arguments: one is the password)
    what=$1; shift
    if out=$(timeout 60 ipmitool "$@" 2>&1); then echo "ok: $what" >> "$S"; else echo "FAILED: $what: $(echo "$out" | tail -n 2 | tr '\n' ' ')" >> "$S"; ok=false; fi
  }
  case "$ch$slot$len" in *[!0-9]*|'') echo "FAILED: the job is not readable: $(head -c 200 "$J")" >> "$S"; ok=false ;; esac
  if $ok; then
    step "lan set $ch ipsrc static" lan set "$ch" ipsrc static
    step "lan set $ch ipaddr $addr" lan set "$ch" ipaddr "$addr"
    step "lan set $ch netmask $mask" lan set "$ch" netmask "$mask"
    [ -n "$gw" ] && step "lan set $ch defgw ipaddr $gw" lan set "$ch" defgw ipaddr "$gw"
    step "user set name $slot $acct" user set name "$slot" "$acct"
    step "user set password $slot (generated, $len bytes)" user set password "$slot" "$(jq -r '.job.password' "$J")" "$len"
    step "channel setaccess $ch $slot ipmi=on link=on privilege=4" channel setaccess "$ch" "$slot" callin=on ipmi=on link=on privilege=4
    step "user enable $slot" user enable "$slot"
    # Cipher suite policy: suite 0 (no authentication, no encryption) off, the others administrator.
    # Not every BMC has the parameter: said, not fatal.
    if out=$(timeout 60 ipmitool lan set "$ch" cipher_privs Xaaaaaaaaaaaaaa 2>&1); then echo "ok: lan set $ch cipher_privs (suite 0 disabled)" >> "$S"
    else echo "note: cipher suite policy not set (the BMC refused: $(echo "$out" | tail -n 1))" >> "$S"; fi
  fi
  rm -f "$J"
  log "BMC set-up in band: $(tr '\n' ';' < "$S" | head -c 600)"
  jq -n --argjson ok "$ok" --rawfile log "$S" '{ok:$ok, log:$log}' > "$W/bmc-report.json"
  code=$(curl -sS -m 120 --retry 3 --retry-connrefused -o "$W/next.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data-binary @"$W/bmc-report.json" "$API/bmc?$Q" 2>>"$LOG")
  if [ "$code" = 200 ]; then log "the server says: $(jq -r '.reason // empty' "$W/next.json")"
  else log "the server refused the BMC set-up report (HTTP $code): $(head -c 300 "$W/next.json" 2>/dev/null)"; fi
  rm -f "$W/next.json"
}

# What comes next: the server says wait (and when to ask again) or power off. A machine that
# becomes a node is rebooted by fleet through its BMC (or by hand) and netboots as that node.
while :; do
  if curl -fsS -m 20 -o "$W/next.json" "$API/next?$Q" 2>>"$LOG"; then
    action=$(jq -r '.action // empty' "$W/next.json")
    reason=$(jq -r '.reason // empty' "$W/next.json")
    case "$action" in
      wait)
        s=$(jq -r '.seconds // 30' "$W/next.json")
        case "$s" in ''|*[!0-9]*) s=30 ;; esac
        log "waiting: $reason (asking again in $s s)"
        sleep "$s"
        ;;
      poweroff) halt_now "$reason" ;;
      bmc-setup)
        log "$reason"
        bmc_setup
        ;;
      *)
        log "the server said $(head -c 200 "$W/next.json"): not an action this boot environment knows; asking again in 60 s"
        sleep 60
        ;;
    esac
  else
    log "could not ask $FLEET_SERVER what comes next (accepted and no longer a discovered machine, or the server is away); asking again in 60 s"
    sleep 60
  fi
done
