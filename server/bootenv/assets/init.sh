#!/bin/sh
# fleet boot environment: /init (PID 1 of the in-RAM Linux, docs/bootenv.md).
# Rendered at build time: @@KVER@@ and @@BUILD@@ are filled in by server/bootenv.
# Mounts proc/sys/dev, loads the modules listed in /etc/fleet/modules (in
# dependency order), reads fleet.* from the kernel command line, brings up the
# NIC whose MAC is fleet.mac with DHCP and runs the job (fleet.job=install,
# inspect or stateless). A stateless boot runs the image's kernel with the
# image's module layer as a second initrd (server/stateless): its
# /etc/fleet/kernel and /etc/fleet/modules replace the build's own, and after
# stateless.sh has built the node's root in RAM, /init switches to it.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
KVER='@@KVER@@'
BUILD='@@BUILD@@'

mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mount -t tmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs run /run
[ -d /sys/firmware/efi ] && mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null

LOG=/run/fleet.log
exec >/dev/console 2>&1
log() { echo "fleet-bootenv: $*" | tee -a "$LOG"; }
# The image's module layer names the kernel it was made for (the one running: the image's).
[ -s /etc/fleet/kernel ] && KVER=$(cat /etc/fleet/kernel)
log "boot environment $BUILD on kernel $KVER (uptime $(cut -d' ' -f1 /proc/uptime) s)"

# Modules, in dependency order; one that fails (e.g. crc32c-intel under TCG) is logged and skipped.
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/$KVER/$m" >>"$LOG" 2>&1 || echo "insmod $m failed" >>"$LOG"
done < /etc/fleet/modules
[ -d /sys/firmware/efi ] && ! grep -q efivarfs /proc/mounts && mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null

# fleet.KEY=VALUE from the command line become FLEET_KEY (dots become underscores).
. /usr/share/fleet/lib.sh
parse_cmdline "$(cat /proc/cmdline)" > /run/fleet.env
. /run/fleet.env

halt_forever() {
  log "halting"
  sync
  poweroff -f
  while :; do sleep 3600; done
}

# The NIC named by fleet.mac (or the first with a link if none is given).
nic=''
for i in 1 2 3 4 5 6 7 8 9 10; do
  nic=$(nic_by_mac /sys/class/net "${FLEET_MAC:-}")
  [ -n "$nic" ] && break
  sleep 0.5
done
if [ -z "$nic" ]; then
  log "no network interface with MAC ${FLEET_MAC:-?}"
  halt_forever
fi
ip link set lo up
ip link set "$nic" up
log "DHCP on $nic (${FLEET_MAC:-any MAC})"
if ! udhcpc -i "$nic" -s /usr/share/fleet/udhcpc.script -q -n -t 20 -T 1 >>"$LOG" 2>&1; then
  log "DHCP on $nic failed"
  halt_forever
fi
log "network up: $(ip -4 -o addr show dev "$nic" | awk '{print $4}') (uptime $(cut -d' ' -f1 /proc/uptime) s)"

case "${FLEET_JOB:-}" in
  install)
    /bin/sh /usr/share/fleet/install.sh
    ;;
  inspect)
    /bin/sh /usr/share/fleet/inspect.sh
    ;;
  stateless|diskless)
    # One stage 1 for both: the plan says whether the root comes into RAM or over NFS.
    /bin/sh /usr/share/fleet/stateless.sh
    if [ -f /run/fleet-switch-root ] && grep -q "^[^ ]* /newroot " /proc/mounts; then
      # The node's root is ready (stateless.sh said so): hand it /dev, /proc, /sys and /run
      # (with the image and the RAM overlay mounted under /run/fleet) and become its init.
      log "switching to the node's root (uptime $(cut -d' ' -f1 /proc/uptime) s)"
      for m in dev proc sys run; do mkdir -p "/newroot/$m"; mount --move "/$m" "/newroot/$m" || log "mount --move /$m failed"; done
      exec switch_root /newroot /sbin/init
    fi
    ;;
  shell)
    setsid cttyhack sh
    ;;
  *)
    log "unknown job '${FLEET_JOB:-}' (fleet.job=install, inspect, stateless or diskless)"
    ;;
esac
halt_forever
