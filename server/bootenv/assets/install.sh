#!/bin/sh
# fleet boot environment: the install job (fleet.job=install, docs/bootenv.md
# "Protocol"). Fetches the plan, partitions the target disk (GPT), streams the
# image onto it, writes the node's identity and agent enrolment material,
# installs GRUB for the firmware it booted with, reports install-finished and
# reboots. Any failure reports install-failed with a one-line reason and the
# log tail, then halts: it never retries by itself.
. /run/fleet.env
. /usr/share/fleet/lib.sh
LOG=/run/fleet.log
T=/target
API="$FLEET_SERVER/api/v1/boot-events/$FLEET_NODE"
Q="token=$FLEET_TOKEN"
log() { echo "fleet-install: $*" | tee -a "$LOG" >/dev/console; }

post() { # post EVENT JSON
  printf '%s' "$2" > /tmp/body.json
  curl -fsS -m 20 --retry 3 --retry-connrefused -X POST -H 'Content-Type: application/json' \
    --data-binary @/tmp/body.json -o /dev/null "$API/$1?$Q" 2>>"$LOG" || log "callback $1 failed"
}

fail() { # fail "one-line reason": install-failed with the log tail, then halt
  log "FAILED: $1"
  msg=$(printf '%s' "$1" | head -n1 | json_str)
  tail_=$(tail -c 4096 "$LOG" | json_str)
  post install-failed "{\"message\":$msg,\"log\":$tail_}"
  sync
  poweroff -f
  while :; do sleep 3600; done
}

progress() { # progress PHASE BYTES TOTAL PERCENT
  post install-progress "{\"phase\":\"$1\",\"bytes\":${2:-0},\"total\":${3:-0},\"percent\":${4:-0}}"
}

run() { # run CMD...: logged; a failure fails the install
  echo "+ $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1 || fail "$1 failed (exit $?): $*"
}

# 1. The plan.
curl -fsS -m 30 --retry 5 --retry-connrefused -o /tmp/plan.json "$FLEET_SERVER/bootenv/$FLEET_NODE/plan?$Q" 2>>"$LOG" \
  || fail "cannot fetch the install plan from $FLEET_SERVER/bootenv/$FLEET_NODE/plan"
j() { jq -r "$1 // empty" /tmp/plan.json; }
jq -e . /tmp/plan.json >/dev/null 2>&1 || fail "the install plan is not JSON"
HOSTNAME_=$(j .hostname); [ -n "$HOSTNAME_" ] || HOSTNAME_=$FLEET_NODE
URL=$(j .image.rootfs.url); SHA=$(j .image.rootfs.sha256); SIZE=$(j .image.rootfs.size)
DISKRULE=$(j .storage.disk); FS=$(j .storage.fs); SWAP=$(j .storage.swapMiB)
[ -n "$URL" ] && [ -n "$SHA" ] || fail "the install plan names no image rootfs url and sha256"
[ -z "$FS" ] || [ "$FS" = ext4 ] || fail "filesystem $FS is not supported (ext4)"
post install-started '{}'

# 2. The disk and the layout.
FIRMWARE=bios; [ -d /sys/firmware/efi ] && FIRMWARE=uefi
DISK=$(choose_disk /sys/block "${DISKRULE:-auto}") || fail "no disk found"
log "target disk /dev/$DISK ($(( $(cat /sys/block/$DISK/size) / 2048 )) MiB), firmware $FIRMWARE, hostname $HOSTNAME_"
progress partition 0 "${SIZE:-0}" 0
layout_script "$FIRMWARE" "${SWAP:-0}" > /tmp/layout
run sh -c "sfdisk -q --wipe always --wipe-partitions always /dev/$DISK < /tmp/layout"
n=1; ESP=''; SWAPDEV=''
if [ "$FIRMWARE" = uefi ]; then ESP=$(part_dev "$DISK" 1); fi
n=2; if [ "${SWAP:-0}" -gt 0 ] 2>/dev/null; then SWAPDEV=$(part_dev "$DISK" 2); n=3; fi
ROOT=$(part_dev "$DISK" $n)
for _ in $(seq 50); do [ -b "$ROOT" ] && break; sleep 0.1; done
[ -b "$ROOT" ] || fail "partition $ROOT did not appear"
run mkfs.ext4 -F -q -O ^orphan_file -L root "$ROOT"
[ -n "$ESP" ] && run mkfs.vfat -F 32 -n EFI "$ESP"
[ -n "$SWAPDEV" ] && run mkswap -L swap "$SWAPDEV"
mkdir -p $T && run mount -t ext4 "$ROOT" $T

# 3. The image, streamed: fetch | tee (sha256sum) | zstd -d | tar -x. GNU tar by
# its path: busybox sh runs its own applets (tar, mke2fs) before searching PATH.
# A transfer that breaks (the server restarted, a link flapped) is resumed
# where it stopped with an HTTP Range request, so the stream stays one stream.
fetch_image() { # fetch_image URL SIZE: the body on stdout; each curl's PID in /tmp/fetch.pid, its offset in /tmp/fetch.base
  f_got=0; f_try=0
  while :; do
    echo "$f_got" > /tmp/fetch.base
    curl -fsS -r "$f_got-" -w '%{stderr}fleet-fetch %{http_code} %{size_download}\n' "$1" 2>/tmp/fetch.err &
    echo $! > /tmp/fetch.pid
    wait $!; f_rc=$?
    grep -v '^fleet-fetch ' /tmp/fetch.err >>"$LOG"
    f_code=$(awk '/^fleet-fetch /{c=$2} END{print c+0}' /tmp/fetch.err)
    f_n=$(awk '/^fleet-fetch /{n=$3} END{print n+0}' /tmp/fetch.err)
    if [ "$f_got" -gt 0 ] && [ "$f_n" -gt 0 ] && [ "$f_code" != 206 ]; then
      echo "fleet-install: the server answered a resumed download with HTTP $f_code, not 206" >>"$LOG"; return 98
    fi
    f_got=$((f_got + f_n))
    # A body that ended cleanly is the whole answer, even one shorter than the plan's size:
    # the digest check then says what is wrong with it. Only a broken transfer is resumed.
    [ "$f_rc" = 0 ] && return 0
    case $f_code in 4??) return "$f_rc" ;; esac   # not there, refused: no use asking again
    f_try=$((f_try + 1))
    [ "$f_try" -lt 20 ] || return "$f_rc"
    echo "fleet-install: image download broke at $f_got of ${2:-?} bytes (curl exit $f_rc); resuming in 3 s" | tee -a "$LOG" >/dev/console
    sleep 3
  done
}
progress write 0 "${SIZE:-0}" 0
rm -f /tmp/dl /tmp/sum /tmp/fetch.pid /tmp/fetch.base; mkfifo /tmp/dl /tmp/sum
sha256sum < /tmp/sum > /tmp/sha.out &
SUMPID=$!
fetch_image "$URL" "${SIZE:-0}" > /tmp/dl &
FETCHPID=$!
( last=0
  while kill -0 $FETCHPID 2>/dev/null; do
    b=$(awk '/^wchar:/ {print $2}' /proc/$(cat /tmp/fetch.pid 2>/dev/null)/io 2>/dev/null)
    base=$(cat /tmp/fetch.base 2>/dev/null)
    if [ -n "$b" ] && [ "${SIZE:-0}" -gt 0 ]; then
      b=$(( b + ${base:-0} ))
      p=$(( b * 100 / SIZE )); step=$(( p / 5 * 5 ))
      if [ "$step" -gt "$last" ] && [ "$step" -lt 100 ]; then last=$step; progress write "$b" "$SIZE" "$step"; fi
    fi
    sleep 1
  done ) &
MONPID=$!
tee /tmp/sum < /tmp/dl | zstd -d -q | /usr/bin/tar -x -C $T --numeric-owner --xattrs -f - 2>>"$LOG"
TARRC=$?
wait $FETCHPID; CURLRC=$?
wait $SUMPID
kill $MONPID 2>/dev/null; wait $MONPID 2>/dev/null
GOT=$(cut -d' ' -f1 /tmp/sha.out)
[ "$CURLRC" = 0 ] || fail "image download failed (curl exit $CURLRC): $URL"
[ "$GOT" = "$SHA" ] || fail "image digest mismatch (expected $SHA, got $GOT)"
[ "$TARRC" = 0 ] || fail "image unpack failed (tar exit $TARRC)"
progress write "${SIZE:-0}" "${SIZE:-0}" 100

# 4. Identity.
progress identity 0 0 0
UUID=$(blkid -s UUID -o value "$ROOT")
mkdir -p $T/etc $T/root $T/etc/systemd/network $T/boot
echo "${HOSTNAME_%%.*}" > $T/etc/hostname
IP=$(j .network.ip); PREFIX=$(j .network.prefix); GW=$(j .network.gateway); DOMAIN=$(j .network.domain); MAC=$(j .network.mac)
{
  echo "127.0.0.1 localhost"
  [ -n "$IP" ] && echo "$IP $HOSTNAME_ ${HOSTNAME_%%.*}"
} > $T/etc/hosts
if [ -n "$IP" ]; then
  {
    echo "# written by the fleet boot environment: the provisioning NIC"
    echo "[Match]"; echo "MACAddress=${MAC:-$FLEET_MAC}"
    echo "[Network]"; echo "Address=$IP/${PREFIX:-24}"
    [ -n "$GW" ] && echo "Gateway=$GW"
    jq -r '.network.dns[]? | "DNS=" + .' /tmp/plan.json
    [ -n "$DOMAIN" ] && echo "Domains=$DOMAIN"
  } > $T/etc/systemd/network/10-fleet-provisioning.network
fi
{
  echo "UUID=$UUID / ext4 errors=remount-ro 0 1"
  [ -n "$ESP" ] && echo "UUID=$(blkid -s UUID -o value "$ESP") /boot/efi vfat umask=0077 0 1"
  [ -n "$SWAPDEV" ] && echo "UUID=$(blkid -s UUID -o value "$SWAPDEV") none swap sw 0 0"
} > $T/etc/fstab
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > $T/etc/machine-id; echo >> $T/etc/machine-id
rm -f $T/var/lib/dbus/machine-id $T/etc/ssh/ssh_host_*
PW=$(j .rootPasswordHash)
if [ -n "$PW" ] && [ -f $T/etc/shadow ]; then
  awk -v pw="$PW" 'BEGIN{FS=OFS=":"} $1=="root"{$2=pw} {print}' $T/etc/shadow > /tmp/shadow && cat /tmp/shadow > $T/etc/shadow
fi
mkdir -p $T/root/.ssh && chmod 700 $T/root/.ssh
jq -r '.sshKeys[]?' /tmp/plan.json > $T/root/.ssh/authorized_keys
chmod 600 $T/root/.ssh/authorized_keys

mount --bind /dev $T/dev 2>/dev/null; mount -t proc proc $T/proc 2>/dev/null; mount -t sysfs sys $T/sys 2>/dev/null
if [ -x $T/usr/bin/ssh-keygen ]; then run chroot $T /usr/bin/ssh-keygen -A; fi
# The .network file above is read by systemd-networkd, which Debian ships
# disabled (ifupdown's networking.service is what it enables): enable it, or
# the node comes up without its provisioning address.
if [ -n "$IP" ] && [ -x $T/usr/bin/systemctl ] && [ -f $T/lib/systemd/system/systemd-networkd.service ]; then
  run chroot $T /usr/bin/systemctl enable systemd-networkd.service
fi

# 5. What was installed, and the agent. /etc/fleet/image.json records the
# image (name, manifest digest, rootfs sha256) on the node itself.
progress agent 0 0 0
mkdir -p $T/etc/fleet && chmod 755 $T/etc/fleet
jq -c '{name: .image.name, digest: .image.digest, rootfsSha256: .image.rootfs.sha256, node: .node}' /tmp/plan.json > $T/etc/fleet/image.json
chmod 644 $T/etc/fleet/image.json
# The enrolment, as the kickstart's %post does it: the image's own agent, in a
# chroot of the target, before install-finished (which revokes the token). The
# node's first boot then starts fleet-agent.service (its condition is the
# credential this writes). A plan without "agent" installs no enrolment.
if jq -e '.agent.enrolToken' /tmp/plan.json >/dev/null 2>&1; then
  ( umask 077
    { echo "FLEET_SERVER=$(j .agent.server)"
      echo "FLEET_CA_FINGERPRINT=$(j .agent.caFingerprint)"
    } > $T/etc/fleet/agent.env
    j .agent.enrolToken > /tmp/enroll-token )
  chmod 600 $T/etc/fleet/agent.env
  if [ -x $T/usr/local/bin/fleet-agent ]; then
    log "enrolling the agent with $(j .agent.server)"
    mkdir -p $T/run/fleet && cp /tmp/enroll-token $T/run/fleet/enroll-token && chmod 600 $T/run/fleet/enroll-token
    echo "+ chroot fleet-agent enroll --server $(j .agent.server)" >>"$LOG"
    chroot $T /usr/local/bin/fleet-agent enroll --server "$(j .agent.server)" --token-file /run/fleet/enroll-token \
      --ca-fingerprint "$(j .agent.caFingerprint)" --state-dir /var/lib/fleet-agent >>"$LOG" 2>&1
    rc=$?
    rm -rf $T/run/fleet
    [ "$rc" = 0 ] || fail "agent enrolment failed (fleet-agent enroll exit $rc)"
  else
    log "the image has no /usr/local/bin/fleet-agent: no enrolment (the node will not report to fleet)"
  fi
fi
rm -f /tmp/enroll-token

# 6. Bootloader for the firmware this machine booted with.
progress bootloader 0 0 0
KIMG=$(j .image.kernel)
[ -n "$KIMG" ] || KIMG=$(cd $T && ls boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1)
[ -n "$KIMG" ] && [ -f "$T/$KIMG" ] || fail "the image has no kernel under /boot"
KV=${KIMG##*/vmlinuz-}
if [ "$FIRMWARE" = uefi ]; then
  mkdir -p $T/boot/efi && run mount -t vfat "$ESP" $T/boot/efi
  run grub-install --target=x86_64-efi --efi-directory=$T/boot/efi --boot-directory=$T/boot --removable --bootloader-id=fleet --no-nvram --directory=/usr/lib/grub/x86_64-efi
else
  run grub-install --target=i386-pc --boot-directory=$T/boot --directory=/usr/lib/grub/i386-pc "/dev/$DISK"
fi
INITRD=''; [ -f "$T/boot/initrd.img-$KV" ] && INITRD="/boot/initrd.img-$KV"
cat > $T/boot/grub/grub.cfg <<CFG
# written by the fleet boot environment
set timeout=1
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root $UUID
menuentry "$HOSTNAME_ (fleet image)" {
  linux /boot/vmlinuz-$KV root=UUID=$UUID ro console=tty0 console=ttyS0,115200
  ${INITRD:+initrd $INITRD}
}
CFG
umount $T/boot/efi 2>/dev/null; umount $T/dev $T/proc $T/sys 2>/dev/null
sync
run umount $T
post install-finished '{}'
log "installed; rebooting"
reboot -f
