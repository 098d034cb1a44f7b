#!/bin/sh
# fleet lab: /init of the stand-in installer initramfs (docs/lab.md).
#
# Seen from outside it behaves like anaconda driven by a kickstart:
#   1. network up with DHCP on the NIC named by BOOTIF= (else the first one);
#   2. fetch the kickstart named by inst.ks= (busybox wget);
#   3. run the %pre sections (installer environment);
#   4. "install": partition and format the first virtio/SCSI disk with a fixed
#      recipe (the kickstart's clearpart/autopart/part lines are IGNORED),
#      copy a small busybox userland (the kickstart's %packages are IGNORED),
#      fetch the kernel from inst.repo (TREE/images/pxeboot/vmlinuz), add the
#      lab "OS" initramfs and an extlinux boot loader (with bootloader --append);
#   5. run the %post sections in order: chrooted into /mnt/sysroot unless
#      --nochroot, with /dev, /proc, /sys and the 9p node runtime mounted there;
#   6. on any failure: run %onerror, skip what is left, and power off
#      (anaconda stops at its error screen; fleet.lab.onerror=reboot|halt
#      changes that);
#   7. otherwise do what the kickstart's reboot/poweroff/halt line says
#      (default: reboot).
# Logs: console, /tmp/anaconda.log (steps) and /tmp/program.log (command
# output), as %onerror expects; both are copied to /mnt/sysroot/root/.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=linux LANG=C
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run /tmp /mnt/sysroot
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/fleet-lab /tmp/ks

LOG=/tmp/anaconda.log
PLOG=/tmp/program.log
SYSROOT=/mnt/sysroot
: > "$LOG"
: > "$PLOG"

up() { read -r u _ < /proc/uptime; echo "$u"; }
log() {
  line="[$(up)] fleet-installer: $*"
  echo "$line"
  echo "$line" >> "$LOG"
}
# run CMD...: logs the command, its output goes to program.log.
run() {
  log "+ $*"
  "$@" >> "$PLOG" 2>&1
}
is_mounted() { grep -q " $1 " /proc/mounts; }

ONERROR=poweroff
FAILED=0
FINAL=reboot

final_action() {
  log "final action: $1"
  sync
  case "$1" in
    reboot) reboot -f ;;
    halt) halt -f ;;
    *) poweroff -f ;;
  esac
  sleep 5
  poweroff -f
}

# ---------------------------------------------------------------- modules
KVER="$(uname -r)"
if [ -f /etc/fleet-lab/modules ]; then
  while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lib/modules/$KVER/$m" >> "$PLOG" 2>&1 || echo "insmod $m failed (ignored)" >> "$PLOG"
  done < /etc/fleet-lab/modules
fi
log "stand-in installer on kernel $KVER"

# ---------------------------------------------------------------- kernel command line
set -f
KS="" REPO="" BOOTIF="" BOOTED_URL="" CONSOLE_ARGS=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    inst.ks=*) KS="${arg#inst.ks=}" ;;
    ks=*) KS="${arg#ks=}" ;;
    inst.repo=*) REPO="${arg#inst.repo=}" ;;
    inst.stage2=*) [ -n "$REPO" ] || REPO="${arg#inst.stage2=}" ;;
    BOOTIF=*) BOOTIF="${arg#BOOTIF=}" ;;
    fleet.lab.booted=*) BOOTED_URL="${arg#fleet.lab.booted=}" ;;
    fleet.lab.onerror=*) ONERROR="${arg#fleet.lab.onerror=}" ;;
    console=*) CONSOLE_ARGS="$CONSOLE_ARGS $arg" ;;
  esac
done
set +f
REPO="${REPO%/}"

# ---------------------------------------------------------------- kickstart sections
# Runs the sections of one kind. $1: pre | post | onerror. Returns 1 when a
# section with --erroronfail failed.
run_sections() {
  want="$1"
  for head in /tmp/ks/*.head; do
    [ -f "$head" ] || continue
    idx="${head%.head}"
    idx="${idx##*/}"
    set -f
    # shellcheck disable=SC2046
    set -- $(cat "$head")
    set +f
    kind="${1#%}"
    shift
    [ "$kind" = "$want" ] || continue
    interp=/bin/sh logf="" nochroot=0 erroronfail=0
    while [ $# -gt 0 ]; do
      case "$1" in
        --interpreter=*) interp="${1#--interpreter=}" ;;
        --interpreter) interp="${2:-}"; shift ;;
        --log=*|--logfile=*) logf="${1#*=}" ;;
        --log|--logfile) logf="${2:-}"; shift ;;
        --nochroot) nochroot=1 ;;
        --erroronfail) erroronfail=1 ;;
        *) log "%$kind section $idx: option $1 ignored" ;;
      esac
      shift
    done
    [ "$kind" = post ] || nochroot=1
    body="/tmp/ks/$idx.body"
    if [ $nochroot = 1 ]; then
      root=""
      script="$body"
    else
      root="$SYSROOT"
      script="/tmp/ks-script-$idx"
      cp "$body" "$SYSROOT$script"
    fi
    if [ ! -x "$root$interp" ]; then
      log "%$kind section $idx: interpreter $interp not found${root:+ in $root}"
      rc=127
    else
      log "%$kind section $idx: running (interpreter $interp${root:+, chroot $root}${logf:+, log $logf})"
      if [ -n "$logf" ]; then
        mkdir -p "$(dirname "$root$logf")"
        if [ -n "$root" ]; then chroot "$root" "$interp" "$script" > "$root$logf" 2>&1
        else "$interp" "$script" > "$logf" 2>&1
        fi
        rc=$?
        { echo "== %$kind section $idx log ($logf)"; cat "$root$logf"; } >> "$PLOG" 2>/dev/null
      else
        if [ -n "$root" ]; then chroot "$root" "$interp" "$script" >> "$PLOG" 2>&1
        else "$interp" "$script" >> "$PLOG" 2>&1
        fi
        rc=$?
      fi
      [ -n "$root" ] && rm -f "$SYSROOT$script"
    fi
    log "%$kind section $idx: exit status $rc"
    if [ $rc -ne 0 ] && [ -n "$logf" ] && [ -f "$root$logf" ]; then
      tail -n 15 "$root$logf" | sed "s/^/[%$kind $idx] /"
    fi
    if [ $rc -ne 0 ] && [ $erroronfail = 1 ]; then
      log "%$kind section $idx failed and has --erroronfail"
      return 1
    fi
  done
  return 0
}

fail() {
  log "ERROR: $*"
  FAILED=1
  [ -f /tmp/ks/commands ] && run_sections onerror
  if is_mounted "$SYSROOT"; then
    cp "$LOG" "$PLOG" "$SYSROOT/root/" 2>/dev/null
  fi
  log "install failed; fleet.lab.onerror=$ONERROR"
  final_action "$ONERROR"
}

# ---------------------------------------------------------------- network
ip link set lo up
IFACE=""
if [ -n "$BOOTIF" ]; then
  want="$(echo "${BOOTIF#01-}" | tr 'A-F-' 'a-f:')"
fi
i=0
while [ $i -lt 100 ] && [ -z "$IFACE" ]; do
  for d in /sys/class/net/*; do
    n="${d##*/}"
    [ "$n" = lo ] && continue
    if [ -z "${want:-}" ] || [ "$(cat "$d/address" 2>/dev/null)" = "$want" ]; then IFACE="$n"; break; fi
  done
  [ -n "$IFACE" ] || { i=$((i + 1)); sleep 0.1; }
done
[ -n "$IFACE" ] || fail "no network interface${want:+ with MAC $want} appeared"
log "network: $IFACE${want:+ (BOOTIF $want)}"
ip link set "$IFACE" up
ok=0
for try in 1 2 3; do
  if udhcpc -i "$IFACE" -s /usr/share/udhcpc/default.script -n -q -t 5 -T 2 >> "$PLOG" 2>&1; then ok=1; break; fi
  log "DHCP attempt $try failed"
done
[ $ok = 1 ] || fail "no DHCP lease on $IFACE"
. /run/fleet-lab/net.env
log "network: $IFACE has $IP"

# fetch URL FILE: bounded retries.
fetch() {
  for try in 1 2 3 4 5; do
    timeout 120 wget -q -O "$2" "$1" >> "$PLOG" 2>&1 && return 0
    rm -f "$2"
    sleep 1
  done
  return 1
}

# ---------------------------------------------------------------- kickstart
[ -n "$KS" ] || fail "no inst.ks= on the kernel command line"
log "kickstart: $KS"
fetch "$KS" /tmp/ks.cfg || fail "cannot fetch the kickstart $KS"
# Split: one .head (the % line) and one .body per section, the rest in commands.
awk -v dir=/tmp/ks '
  BEGIN { n = 0; insec = 0; printf "" > (dir "/commands") }
  insec == 0 && /^%(pre|pre-install|post|onerror|packages|traceback|addon|anaconda)([ \t]|$)/ {
    n++; insec = 1; f = sprintf("%s/%02d", dir, n)
    print $0 > (f ".head"); printf "" > (f ".body"); close(f ".head"); next
  }
  insec == 1 && /^%end[ \t]*$/ { insec = 0; close(f ".body"); next }
  insec == 1 { print $0 >> (f ".body"); next }
  { print $0 >> (dir "/commands") }
' /tmp/ks.cfg || fail "cannot parse the kickstart"
NODE="${KS##*/}"
NODE="${NODE%%\?*}"
NODE="${NODE%.ks}"
case "$NODE" in *[!a-z0-9-]*|'') NODE=unknown ;; esac
HOSTNAME_KS="$(sed -n 's/^network .*--hostname=\([A-Za-z0-9.-]*\).*/\1/p' /tmp/ks/commands | head -n 1)"
APPEND_KS="$(sed -n 's/^bootloader .*--append="\([^"]*\)".*/\1/p' /tmp/ks/commands | head -n 1)"
[ -n "$HOSTNAME_KS" ] && hostname "$HOSTNAME_KS"
if grep -q '^poweroff\([ \t]\|$\)' /tmp/ks/commands || grep -q '^shutdown\([ \t]\|$\)' /tmp/ks/commands; then FINAL=poweroff
elif grep -q '^halt\([ \t]\|$\)' /tmp/ks/commands; then FINAL=halt
fi
for c in clearpart autopart part partition volgroup logvol raid ignoredisk zerombr reqpart; do
  grep -q "^$c\([ \t]\|$\)" /tmp/ks/commands && log "kickstart: '$c' ignored (the lab installer uses a fixed disk layout)"
done
ls /tmp/ks/*.head > /dev/null 2>&1 && grep -l '^%packages' /tmp/ks/*.head > /dev/null 2>&1 && log "kickstart: %packages ignored (the lab installs a fixed busybox userland)"

# ---------------------------------------------------------------- %pre
run_sections pre || fail "a %pre section failed"

# ---------------------------------------------------------------- disk
DISK=""
i=0
while [ $i -lt 50 ] && [ -z "$DISK" ]; do
  for d in vda sda xvda; do [ -b "/dev/$d" ] && { DISK="/dev/$d"; break; }; done
  [ -n "$DISK" ] || { i=$((i + 1)); sleep 0.1; }
done
[ -n "$DISK" ] || fail "no disk (vda, sda, xvda) found"
PART="${DISK}1"
log "disk: $DISK"
printf 'label: dos\nstart=2048, type=83, bootable\n' | run sfdisk -q --wipe always "$DISK" || fail "sfdisk $DISK failed"
i=0
while [ $i -lt 50 ] && [ ! -b "$PART" ]; do i=$((i + 1)); sleep 0.1; done
[ -b "$PART" ] || fail "$PART did not appear"
run mkfs.ext4 -F -q -L fleet-root -O ^64bit,^metadata_csum,^orphan_file "$PART" || fail "mkfs.ext4 $PART failed"
run mount -t ext4 "$PART" "$SYSROOT" || fail "cannot mount $PART"
log "disk: $PART formatted (ext4) and mounted on $SYSROOT"

# ---------------------------------------------------------------- "packages": the lab userland
for d in bin sbin lib lib64 usr etc; do
  [ -e "/$d" ] && { cp -a "/$d" "$SYSROOT/" || fail "cannot copy /$d"; }
done
rm -f "$SYSROOT/etc/resolv.conf"
mkdir -p "$SYSROOT/boot" "$SYSROOT/dev" "$SYSROOT/proc" "$SYSROOT/sys" "$SYSROOT/run" "$SYSROOT/tmp" \
  "$SYSROOT/root" "$SYSROOT/var/lib" "$SYSROOT/var/log" "$SYSROOT/usr/local/bin" "$SYSROOT/mnt" "$SYSROOT/etc/fleet-lab" \
  "$SYSROOT/etc/systemd/system"
chmod 1777 "$SYSROOT/tmp"
chmod 0700 "$SYSROOT/root"
cp /usr/share/fleet-lab/os-init "$SYSROOT/sbin/init" && chmod 0755 "$SYSROOT/sbin/init" || fail "cannot install /sbin/init"
cp /tmp/ks.cfg "$SYSROOT/root/anaconda-ks.cfg" && chmod 0600 "$SYSROOT/root/anaconda-ks.cfg"
echo "${HOSTNAME_KS:-$NODE}" > "$SYSROOT/etc/hostname"
# Only safe characters go into install.env (it is sourced by the OS init).
safe() { case "$1" in *[!A-Za-z0-9._~:/?@+,=%-]*) echo "" ;; *) echo "$1" ;; esac; }
SERVER="$(safe "$(echo "$KS" | sed -n 's|^\(https\{0,1\}://[^/]*\).*|\1|p')")"
{
  echo "FLEET_LAB_NODE=$NODE"
  echo "FLEET_LAB_MAC=$(cat "/sys/class/net/$IFACE/address")"
  echo "FLEET_LAB_SERVER=$SERVER"
  echo "FLEET_LAB_BOOTED_URL=$(safe "$BOOTED_URL")"
  echo "FLEET_LAB_INSTALLED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} > "$SYSROOT/etc/fleet-lab/install.env"
log "userland installed"

# ---------------------------------------------------------------- kernel, OS initramfs, boot loader
[ -n "$REPO" ] || fail "no inst.repo= (or inst.stage2=) on the kernel command line: cannot fetch the kernel"
fetch "$REPO/images/pxeboot/vmlinuz" "$SYSROOT/boot/vmlinuz" || fail "cannot fetch $REPO/images/pxeboot/vmlinuz"
cp /usr/share/fleet-lab/os-initrd.gz "$SYSROOT/boot/initrd.gz" || fail "cannot install the OS initramfs"
mkdir -p "$SYSROOT/boot/extlinux"
cat > "$SYSROOT/boot/extlinux/extlinux.conf" <<EXTLINUX
DEFAULT os
PROMPT 0
TIMEOUT 0
LABEL os
  KERNEL /boot/vmlinuz
  APPEND initrd=/boot/initrd.gz root=$PART rw${CONSOLE_ARGS}${APPEND_KS:+ $APPEND_KS}
EXTLINUX
run extlinux --install "$SYSROOT/boot/extlinux" || fail "extlinux --install failed"
run dd if=/usr/share/fleet-lab/mbr.bin of="$DISK" bs=440 count=1 conv=notrunc || fail "cannot write the MBR"
log "boot loader installed (extlinux, kernel from $REPO)"

# ---------------------------------------------------------------- %post environment
mount --bind /dev "$SYSROOT/dev"
mount -t proc proc "$SYSROOT/proc"
mount -t sysfs sysfs "$SYSROOT/sys"
mount -t tmpfs -o mode=0755 tmpfs "$SYSROOT/run"
[ -f /etc/resolv.conf ] && cp /etc/resolv.conf "$SYSROOT/etc/resolv.conf"
for share in fleetrt:/run/fleet-runtime fleetsrc:/run/fleet-src; do
  tag="${share%%:*}"
  dir="$SYSROOT${share#*:}"
  mkdir -p "$dir"
  if mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose "$tag" "$dir" >> "$PLOG" 2>&1; then
    log "9p share $tag mounted on ${share#*:}"
  else
    rmdir "$dir" 2>/dev/null
    log "9p share $tag not available"
  fi
done

# ---------------------------------------------------------------- %post
run_sections post || fail "a %post section failed"

# ---------------------------------------------------------------- done
cp "$LOG" "$PLOG" "$SYSROOT/root/" 2>/dev/null
for m in run/fleet-src run/fleet-runtime run sys proc dev; do
  is_mounted "$SYSROOT/$m" && umount "$SYSROOT/$m" >> "$PLOG" 2>&1
done
sync
umount "$SYSROOT" >> "$PLOG" 2>&1 || log "cannot unmount $SYSROOT (ignored)"
log "install complete"
final_action "$FINAL"
