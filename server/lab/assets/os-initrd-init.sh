#!/bin/sh
# fleet lab: /init of the "OS" initramfs the stand-in installer puts on the
# disk (/boot/initrd.gz). It loads the kernel modules the lab VM needs (disk,
# ext4, network, 9p: they stay loaded after switch_root), mounts root= and
# hands over to the installed system's /sbin/init (assets/os-init.sh).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
up() { read -r u _ < /proc/uptime; echo "$u"; }
log() { echo "[$(up)] fleet-os-initrd: $*"; }
KVER="$(uname -r)"
while read -r m; do
  [ -n "$m" ] && { insmod "/lib/modules/$KVER/$m" 2>/dev/null || true; }
done < /etc/fleet-lab/modules
ROOT=/dev/vda1
set -f
for arg in $(cat /proc/cmdline); do
  case "$arg" in root=/dev/*) ROOT="${arg#root=}" ;; esac
done
set +f
i=0
while [ $i -lt 100 ] && [ ! -b "$ROOT" ]; do i=$((i + 1)); sleep 0.1; done
mkdir -p /sysroot
if ! mount -t ext4 -o rw "$ROOT" /sysroot; then
  log "cannot mount root $ROOT: powering off"
  poweroff -f
fi
if [ ! -x /sysroot/sbin/init ]; then
  log "$ROOT has no /sbin/init: powering off"
  poweroff -f
fi
log "root $ROOT mounted, starting its /sbin/init"
mount --move /dev /sysroot/dev 2>/dev/null || umount /dev
umount /sys /proc
exec switch_root /sysroot /sbin/init
