#!/bin/sh
# fleet lab: /sbin/init of the installed lab "OS" (written to the disk by the
# stand-in installer). Brings up the network with DHCP, mounts the host's node
# runtime over 9p, posts fleet.lab.booted= (when the install had it) and runs
# `fleet-agent run` (state in /var/lib/fleet-agent, on the disk, so enrolment
# survives reboots), restarting it a bounded number of times.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=linux LANG=C
umask 022
grep -q ' /proc ' /proc/mounts 2>/dev/null || mount -t proc proc /proc
grep -q ' /sys ' /proc/mounts || mount -t sysfs sysfs /sys
grep -q ' /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/fleet-lab /var/log
mount -o remount,rw / 2>/dev/null
OSLOG=/var/log/fleet-lab-os.log
up() { read -r u _ < /proc/uptime; echo "$u"; }
log() {
  line="[$(up)] fleet-os: $*"
  echo "$line"
  echo "$line" >> "$OSLOG"
}
[ -f /etc/hostname ] && hostname -F /etc/hostname
FLEET_LAB_NODE="" FLEET_LAB_MAC="" FLEET_LAB_BOOTED_URL=""
[ -f /etc/fleet-lab/install.env ] && . /etc/fleet-lab/install.env
log "booted from disk: $(hostname), kernel $(uname -r)"

ip link set lo up
IFACE=""
i=0
while [ $i -lt 100 ] && [ -z "$IFACE" ]; do
  for d in /sys/class/net/*; do
    n="${d##*/}"
    [ "$n" = lo ] && continue
    if [ -z "$FLEET_LAB_MAC" ] || [ "$(cat "$d/address" 2>/dev/null)" = "$FLEET_LAB_MAC" ]; then IFACE="$n"; break; fi
  done
  [ -n "$IFACE" ] || { i=$((i + 1)); sleep 0.1; }
done
if [ -n "$IFACE" ]; then
  ip link set "$IFACE" up
  for try in 1 2 3; do
    udhcpc -i "$IFACE" -s /usr/share/udhcpc/default.script -n -q -t 5 -T 2 > /dev/null 2>&1 && break
    log "DHCP attempt $try failed"
  done
  [ -f /run/fleet-lab/net.env ] && . /run/fleet-lab/net.env && log "network: $IFACE has ${IP:-no address}"
else
  log "no network interface"
fi

for share in fleetrt:/run/fleet-runtime fleetsrc:/run/fleet-src; do
  tag="${share%%:*}"
  dir="${share#*:}"
  mkdir -p "$dir"
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose "$tag" "$dir" 2>/dev/null || { rmdir "$dir"; log "9p share $tag not available"; }
done

if [ -n "$FLEET_LAB_BOOTED_URL" ]; then
  curl -fsS -m 10 --retry 3 -X POST "$FLEET_LAB_BOOTED_URL/$FLEET_LAB_NODE" > /dev/null && log "posted $FLEET_LAB_BOOTED_URL/$FLEET_LAB_NODE" || log "booted callback failed"
fi

AGENT=/usr/local/bin/fleet-agent
if [ -x "$AGENT" ]; then
  set -o pipefail
  n=0
  while [ $n -lt 720 ]; do
    log "starting fleet-agent run"
    "$AGENT" run 2>&1 | tee -a /var/log/fleet-agent.log
    log "fleet-agent exited with status $?"
    n=$((n + 1))
    sleep 5
  done
else
  log "no $AGENT (was the node installed by a kickstart that enrols it?)"
fi
log "nothing left to run: powering off"
sync
poweroff -f
