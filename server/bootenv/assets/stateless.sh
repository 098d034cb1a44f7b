#!/bin/sh
# fleet boot environment: the stateless job (fleet.job=stateless, docs/stateless.md),
# "stage 1" of seed 001. Runs under the image's own kernel (its modules come in
# the image's module layer). Fetches the plan, then the image's squashfs into
# RAM, checks its sha256 against the plan (a mismatch stops here: install-failed
# with the reason, power off; a corrupt image is never booted), mounts it
# read-only under a RAM overlay (or copies it into a tmpfs: plan "root"),
# writes the node's identity and agent enrolment into that root, reports
# install-finished and leaves /run/fleet-switch-root for /init, which hands
# over to the image's systemd. Nothing is written to a disk: every boot
# starts from the image.
#
# A diskless node (plan install: diskless, docs/diskless.md, seed 004) runs
# the same stage 1 but takes its root over NFS instead: the node's own
# address in place of the stage-1 lease (the exports name it), the image's
# tree read-only under a RAM overlay, the node's /var read-write, and an
# optional local scratch disk on /tmp, formatted (ext4, label fleet-scratch)
# only when it is blank; a disk holding anything else stops the boot.
. /run/fleet.env
. /usr/share/fleet/lib.sh
LOG=/run/fleet.log
N=/newroot
F=/run/fleet
API="$FLEET_SERVER/api/v1/boot-events/$FLEET_NODE"
Q="token=$FLEET_TOKEN"
log() { echo "fleet-stateless: $*" | tee -a "$LOG" >/dev/console; }

post() { # post EVENT JSON
  printf '%s' "$2" > /tmp/body.json
  curl -fsS -m 20 --retry 3 --retry-connrefused -X POST -H 'Content-Type: application/json' \
    --data-binary @/tmp/body.json -o /dev/null "$API/$1?$Q" 2>>"$LOG" || log "callback $1 failed"
}

fail() { # fail "one-line reason": install-failed with the log tail, then power off (never boots on)
  log "FAILED: $1"
  msg=$(printf '%s' "$1" | head -n1 | json_str)
  tail_=$(tail -c 4096 "$LOG" | json_str)
  post install-failed "{\"message\":$msg,\"log\":$tail_}"
  sync
  poweroff -f
  while :; do sleep 3600; done
}

run() { # run CMD...: logged; a failure fails the boot
  echo "+ $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1 || fail "$1 failed (exit $?): $*"
}

# 1. The plan.
curl -fsS -m 30 --retry 5 --retry-connrefused -o /tmp/plan.json "$FLEET_SERVER/stateless/$FLEET_NODE/plan?$Q" 2>>"$LOG" \
  || fail "cannot fetch the stateless plan from $FLEET_SERVER/stateless/$FLEET_NODE/plan"
j() { jq -r "$1 // empty" /tmp/plan.json; }
jq -e . /tmp/plan.json >/dev/null 2>&1 || fail "the stateless plan is not JSON"
HOSTNAME_=$(j .hostname); [ -n "$HOSTNAME_" ] || HOSTNAME_=$FLEET_NODE
URL=$(j .image.squashfs.url); SHA=$(j .image.squashfs.sha256); SIZE=$(j .image.squashfs.size)
ROOTMODE=$(j .root); [ -n "$ROOTMODE" ] || ROOTMODE=overlay
INSTALL=$(j .install); [ -n "$INSTALL" ] || INSTALL=stateless
IP=$(j .network.ip); PREFIX=$(j .network.prefix); GW=$(j .network.gateway); DOMAIN=$(j .network.domain); MAC=$(j .network.mac)
case "$INSTALL" in
  stateless) [ -n "$URL" ] && [ -n "$SHA" ] || fail "the stateless plan names no image squashfs url and sha256" ;;
  diskless)
    NFS_SRV=$(j .nfs.server); NFS_VERS=$(j .nfs.vers); NFS_ROOT=$(j .nfs.root); NFS_VAR=$(j .nfs.var); SCRATCH=$(j .scratch)
    [ -n "$NFS_SRV" ] && [ -n "$NFS_ROOT" ] && [ -n "$NFS_VAR" ] || fail "the diskless plan names no NFS server, root and /var"
    [ -n "$IP" ] || fail "the diskless plan gives no address for this node (the NFS exports name it by address)"
    [ -n "$NFS_VERS" ] || NFS_VERS=4.1
    ROOTMODE=overlay ;;
  *) fail "install $INSTALL is not stateless or diskless" ;;
esac
case "$ROOTMODE" in overlay|tmpfs) ;; *) fail "root $ROOTMODE is not overlay or tmpfs" ;; esac
case "$SIZE" in ''|*[!0-9]*) SIZE=0 ;; esac
post install-started '{}'
mkdir -p $F/image $F/ro $F/rw $N

if [ "$INSTALL" = diskless ]; then
  # 2d. The node's own address (stage 1's lease goes: the exports name the node by its address),
  #     then the image's tree over NFS, read-only, under a RAM overlay (so /etc can take the identity).
  nic=$(nic_by_mac /sys/class/net "${FLEET_MAC:-}") || fail "no NIC with MAC ${FLEET_MAC:-?}"
  ip -4 addr flush dev "$nic" 2>/dev/null
  # No default route here: the NFS server is on this link, and the image's networkd adds the plan's gateway.
  run ip addr add "$IP/${PREFIX:-24}" dev "$nic"
  grep -qw nfs4 /proc/filesystems || fail "this kernel has no NFSv4 client (the image's module layer lacks nfsv4)"
  NFSOPT="vers=$NFS_VERS,proto=tcp,hard,timeo=600"
  log "mounting the image's tree $NFS_SRV:$NFS_ROOT (NFS $NFS_VERS, read-only)"
  T0=$(cut -d' ' -f1 /proc/uptime)
  ok=
  for try in 1 2 3 4 5 6; do
    if mount -t nfs4 -o "ro,$NFSOPT" "$NFS_SRV:$NFS_ROOT" $F/ro >>"$LOG" 2>&1; then ok=1; break; fi
    sleep 5
  done
  [ -n "$ok" ] || fail "cannot mount the image's tree $NFS_SRV:$NFS_ROOT over NFS $NFS_VERS"
  [ -x $F/ro/sbin/init ] || [ -L $F/ro/sbin/init ] || fail "the NFS root $NFS_SRV:$NFS_ROOT has no /sbin/init"
  run mount -t tmpfs -o mode=0755 tmpfs $F/rw
  mkdir -p $F/rw/upper $F/rw/work
  run mount -t overlay overlay -o "lowerdir=$F/ro,upperdir=$F/rw/upper,workdir=$F/rw/work" $N
  log "mounting this node's /var $NFS_SRV:$NFS_VAR (read-write)"
  run mount -t nfs4 -o "rw,$NFSOPT" "$NFS_SRV:$NFS_VAR" $N/var
  log "NFS root and /var mounted in $(awk -v a="$T0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN{printf "%.1f", b-a}') s"
  # 3d. The scratch disk on /tmp (seed 004: "mount /dev/sda /tmp, else mkfs"): formatted only when blank.
  if [ -n "$SCRATCH" ]; then
    i=0; while [ ! -b "$SCRATCH" ] && [ $i -lt 10 ]; do sleep 1; i=$((i+1)); done
    [ -b "$SCRATCH" ] || fail "scratch disk $SCRATCH not found"
    SIG=$(blkid -p -o export "$SCRATCH" 2>/dev/null)
    if printf '%s\n' "$SIG" | grep -qx 'LABEL=fleet-scratch' && printf '%s\n' "$SIG" | grep -qx 'TYPE=ext4'; then
      log "scratch disk $SCRATCH: fleet-scratch, kept"
    elif [ -z "$SIG" ]; then
      log "scratch disk $SCRATCH is blank: formatting it ext4 (label fleet-scratch)"
      run mkfs.ext4 -q -F -L fleet-scratch "$SCRATCH"
    else
      fail "scratch disk $SCRATCH holds something fleet did not make ($(printf '%s' "$SIG" | grep -E '^(TYPE|PTTYPE|LABEL)=' | tr '\n' ' ')): not formatted; wipe it (wipefs -a $SCRATCH) or change the profile's scratch"
    fi
    run mount -t ext4 "$SCRATCH" $N/tmp
    chmod 1777 $N/tmp
  fi
else

# 2. The image into RAM, checked before anything mounts it.
MEM_KIB=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
if [ "$SIZE" -gt 0 ] && [ $(( SIZE / 1024 )) -gt $(( MEM_KIB * 3 / 4 )) ]; then
  fail "the image's squashfs ($(( SIZE / 1048576 )) MiB) does not fit in RAM ($(( MEM_KIB / 1024 )) MiB): stateless needs more memory"
fi
run mount -t tmpfs -o mode=0700 tmpfs $F/image
log "fetching $URL ($(( SIZE / 1048576 )) MiB) into RAM"
post install-progress "{\"phase\":\"write\",\"bytes\":0,\"total\":$SIZE,\"percent\":0}"
T0=$(cut -d' ' -f1 /proc/uptime)
curl -fsS -C - --retry 10 --retry-connrefused --retry-delay 3 -o $F/image/rootfs.squashfs "$URL" 2>>"$LOG" \
  || fail "image download failed (curl exit $?): $URL"
GOT=$(sha256sum $F/image/rootfs.squashfs | cut -d' ' -f1)
[ "$GOT" = "$SHA" ] || { rm -f $F/image/rootfs.squashfs; fail "image digest mismatch (expected $SHA, got $GOT)"; }
log "image verified (sha256 $GOT; fetched and checked in $(awk -v a="$T0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN{printf "%.1f", b-a}') s)"
post install-progress "{\"phase\":\"write\",\"bytes\":$SIZE,\"total\":$SIZE,\"percent\":100}"

# 3. The node's root: the squashfs read-only under a tmpfs overlay (writes live in RAM and
#    die with the boot), or copied whole into a tmpfs (root: tmpfs; the squashfs is then freed).
run mount -t squashfs -o ro,loop $F/image/rootfs.squashfs $F/ro
if [ "$ROOTMODE" = overlay ]; then
  run mount -t tmpfs -o mode=0755 tmpfs $F/rw
  mkdir -p $F/rw/upper $F/rw/work
  run mount -t overlay overlay -o "lowerdir=$F/ro,upperdir=$F/rw/upper,workdir=$F/rw/work" $N
else
  run mount -t tmpfs -o mode=0755 tmpfs $N
  log "copying the image into a tmpfs"
  run cp -a $F/ro/. $N/
  umount $F/ro; rm -f $F/image/rootfs.squashfs; umount $F/image
fi
fi

# 4. Identity, as the install job writes it (no disk: no fstab entries, no bootloader).
post install-progress '{"phase":"identity","bytes":0,"total":0,"percent":0}'
mkdir -p $N/etc $N/root $N/etc/systemd/network
echo "${HOSTNAME_%%.*}" > $N/etc/hostname
{
  echo "127.0.0.1 localhost"
  [ -n "$IP" ] && echo "$IP $HOSTNAME_ ${HOSTNAME_%%.*}"
} > $N/etc/hosts
if [ -n "$IP" ]; then
  {
    echo "# written by fleet stage 1 ($INSTALL): the provisioning NIC"
    echo "[Match]"; echo "MACAddress=${MAC:-$FLEET_MAC}"
    echo "[Network]"; echo "Address=$IP/${PREFIX:-24}"
    # A diskless node's root and /var are on this link: networkd never takes its address away.
    [ "$INSTALL" = diskless ] && echo "KeepConfiguration=yes"
    [ -n "$GW" ] && echo "Gateway=$GW"
    jq -r '.network.dns[]? | "DNS=" + .' /tmp/plan.json
    [ -n "$DOMAIN" ] && echo "Domains=$DOMAIN"
  } > $N/etc/systemd/network/10-fleet-provisioning.network
  if [ "$INSTALL" = diskless ] && [ -n "${nic:-}" ]; then
    # The NIC is up (the root is on it) before udev runs, and udev cannot rename a link that is up:
    # a failed rename leaves the device uninitialised and networkd never configures it. Keep its name.
    { echo "# written by fleet stage 1 (diskless): the root is on this NIC; keep the name it has"
      echo "[Match]"; echo "MACAddress=${MAC:-$FLEET_MAC}"
      echo "[Link]"; echo "NamePolicy="; echo "Name=$nic"
    } > $N/etc/systemd/network/10-fleet-provisioning.link
  fi
fi
if [ "$INSTALL" = diskless ]; then
  {
    echo "# diskless: / is the image $(j .image.digest) over NFS ($NFS_SRV:$NFS_ROOT, read-only) under a RAM overlay;"
    echo "# /var is this node's own, over NFS; mounted by fleet stage 1"
    echo "$NFS_SRV:$NFS_VAR /var nfs4 rw,$NFSOPT,_netdev 0 0"
    [ -n "$SCRATCH" ] && echo "$SCRATCH /tmp ext4 defaults,nofail 0 2"
  } > $N/etc/fstab
else
  echo "# stateless: / is the image $(j .image.digest) in RAM; nothing to mount from a disk" > $N/etc/fstab
fi
# A diskless node keeps its machine id and SSH host keys in its own /var; a stateless one gets new ones each boot.
KEEP=$N/var/lib/fleet-node
if [ "$INSTALL" = diskless ] && [ -s $KEEP/machine-id ]; then
  cp $KEEP/machine-id $N/etc/machine-id
else
  head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > $N/etc/machine-id; echo >> $N/etc/machine-id
fi
rm -f $N/etc/ssh/ssh_host_*
[ "$INSTALL" = diskless ] || rm -f $N/var/lib/dbus/machine-id
if [ "$INSTALL" = diskless ] && ls $KEEP/ssh/ssh_host_*_key >/dev/null 2>&1; then cp -p $KEEP/ssh/ssh_host_* $N/etc/ssh/; fi
PW=$(j .rootPasswordHash)
if [ -n "$PW" ] && [ -f $N/etc/shadow ]; then
  awk -v pw="$PW" 'BEGIN{FS=OFS=":"} $1=="root"{$2=pw} {print}' $N/etc/shadow > /tmp/shadow && cat /tmp/shadow > $N/etc/shadow
fi
mkdir -p $N/root/.ssh && chmod 700 $N/root/.ssh
jq -r '.sshKeys[]?' /tmp/plan.json > $N/root/.ssh/authorized_keys
chmod 600 $N/root/.ssh/authorized_keys
mount --bind /dev $N/dev 2>/dev/null; mount -t proc proc $N/proc 2>/dev/null; mount -t sysfs sys $N/sys 2>/dev/null
if [ -x $N/usr/bin/ssh-keygen ]; then run chroot $N /usr/bin/ssh-keygen -A; fi
if [ "$INSTALL" = diskless ]; then
  mkdir -p $KEEP/ssh && chmod 700 $KEEP && cp $N/etc/machine-id $KEEP/machine-id
  cp -p $N/etc/ssh/ssh_host_* $KEEP/ssh/ 2>/dev/null
fi
if [ -n "$IP" ] && [ -x $N/usr/bin/systemctl ] && [ -f $N/lib/systemd/system/systemd-networkd.service ]; then
  run chroot $N /usr/bin/systemctl enable systemd-networkd.service
fi

# 5. What this boot runs, and the agent (enrolled again at every boot: nothing survives a reboot).
post install-progress '{"phase":"agent","bytes":0,"total":0,"percent":0}'
mkdir -p $N/etc/fleet && chmod 755 $N/etc/fleet
jq -c --arg install "$INSTALL" '{name: .image.name, digest: .image.digest, squashfsSha256: .image.squashfs.sha256, node: .node, install: $install, root: (.root // "overlay")} + (if .nfs then {nfs: .nfs} else {} end)' /tmp/plan.json > $N/etc/fleet/image.json
chmod 644 $N/etc/fleet/image.json
if jq -e '.agent.enrolToken' /tmp/plan.json >/dev/null 2>&1; then
  ( umask 077
    { echo "FLEET_SERVER=$(j .agent.server)"
      echo "FLEET_CA_FINGERPRINT=$(j .agent.caFingerprint)"
    } > $N/etc/fleet/agent.env
    j .agent.enrolToken > /tmp/enroll-token )
  chmod 600 $N/etc/fleet/agent.env
  if [ -x $N/usr/local/bin/fleet-agent ]; then
    log "enrolling the agent with $(j .agent.server)"
    mkdir -p $N/run/fleet && cp /tmp/enroll-token $N/run/fleet/enroll-token && chmod 600 $N/run/fleet/enroll-token
    echo "+ chroot fleet-agent enroll --force --server $(j .agent.server)" >>"$LOG"
    # --force: a diskless node keeps /var/lib/fleet-agent from its last boot; every boot enrols afresh with its plan's token.
    chroot $N /usr/local/bin/fleet-agent enroll --force --server "$(j .agent.server)" --token-file /run/fleet/enroll-token \
      --ca-fingerprint "$(j .agent.caFingerprint)" --state-dir /var/lib/fleet-agent >>"$LOG" 2>&1
    rc=$?
    rm -rf $N/run/fleet
    [ "$rc" = 0 ] || fail "agent enrolment failed (fleet-agent enroll exit $rc)"
  else
    log "the image has no /usr/local/bin/fleet-agent: no enrolment (the node will not report to fleet)"
  fi
fi
rm -f /tmp/enroll-token
umount $N/dev $N/proc $N/sys 2>/dev/null

# 6. Done: the image's systemd brings the provisioning NIC up with the plan's address;
#    stage 1's DHCP address goes and the link goes down, so the node has only its own address
#    and udev can give the NIC its predictable name (it cannot rename a link that is up).
post install-finished '{}'
if [ "$INSTALL" = diskless ]; then
  # The root is on this link: it stays up with the node's address (networkd keeps it).
  log "booting the image (NFS root from $NFS_SRV, /var $NFS_VAR)"
else
  if nic=$(nic_by_mac /sys/class/net "${FLEET_MAC:-}"); then ip -4 addr flush dev "$nic" 2>/dev/null; ip link set "$nic" down 2>/dev/null; fi
  log "booting the image ($ROOTMODE root in RAM)"
fi
: > /run/fleet-switch-root
