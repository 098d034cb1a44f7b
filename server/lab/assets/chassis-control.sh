#!/bin/bash
# fleet lab: chassis_control program of one ipmi_sim BMC (lan.conf:
#   chassis_control "/bin/bash .../chassis-control.sh VMDIR").
#
#   chassis-control.sh VMDIR get power|boot ...   -> "power:0|1", "boot:VALUE" lines
#   chassis-control.sh VMDIR set NAME VALUE ...   -> power 0|1, reset 1, shutdown 1,
#                                                    boot none|pxe|default|cdrom|bios
#
# The VM is one QEMU process described by VMDIR/vm.env (FIRMWARE, QEMU,
# QEMU_ARGS, NIC_DEVICE, DISK_DEVICE, written by server/lab/vm.ts). Power on
# starts it detached (-daemonize: its own session, stdio on a log file, every
# other inherited fd closed first). The next-boot device pxe is consumed by
# that start; on legacy BIOS (SeaBIOS) it becomes
#   -boot once=n,order=c   when the next-boot device is pxe,
#   -boot order=c          otherwise;
# on UEFI (OVMF, which ignores -boot and follows bootindex) the NIC gets
# bootindex 1 and the disk 2 when it is pxe, the other way round otherwise,
# for the life of that QEMU process.
# Power off kills it by the PID in VMDIR/qemu.pid (checked against its command
# line). reset/cycle = off + on. shutdown (soft) = off: the lab guests have no
# ACPI daemon. ipmi_sim blocks while this runs and ipmitool resends after 1 s,
# so every call returns well within a second.
set -u
vmdir="$1"
shift
state="$vmdir/chassis.state"
pidfile="$vmdir/qemu.pid"
echo "$(date +%s.%N | cut -c1-14) $*" >> "$vmdir/chassis.log"

boot=default
[ -f "$state" ] && read -r boot < "$state"

# PID of the running QEMU of this VM, or nothing.
qemu_pid() {
  local pid
  [ -f "$pidfile" ] || return 0
  read -r pid < "$pidfile" || return 0
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ -r "/proc/$pid/cmdline" ] || return 0
  # Guard against PID reuse: it must be our QEMU (its command line names VMDIR).
  if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$vmdir/"; then
    # A zombie is not running.
    if ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then echo "$pid"; fi
  fi
}

set_boot() {
  boot="$1"
  echo "$boot" > "$state.tmp" && mv "$state.tmp" "$state"
}

start_vm() {
  [ -n "$(qemu_pid)" ] && return 0
  # shellcheck disable=SC1091
  . "$vmdir/vm.env"
  local order="order=c" nic=2 disk=1
  local -a bootargs
  if [ "$boot" = pxe ]; then
    order="once=n,order=c"
    nic=1
    disk=2
    set_boot none
  fi
  if [ "${FIRMWARE:-bios}" = uefi ]; then
    bootargs=(-device "$NIC_DEVICE,bootindex=$nic")
    [ -n "${DISK_DEVICE:-}" ] && bootargs+=(-device "$DISK_DEVICE,bootindex=$disk")
    order="bootindex nic=$nic disk=$disk"
  else
    bootargs=(-device "$NIC_DEVICE")
    [ -n "${DISK_DEVICE:-}" ] && bootargs+=(-device "$DISK_DEVICE")
    bootargs+=(-boot "$order")
  fi
  rm -f "$pidfile"
  (
    # Close every inherited descriptor (ipmi_sim's sockets, the pipe it reads us from).
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"
      [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-" 2>/dev/null
    done
    exec "$QEMU" "${QEMU_ARGS[@]}" "${bootargs[@]}" -daemonize -pidfile "$pidfile" < /dev/null >> "$vmdir/qemu.log" 2>&1
  )
  local rc=$?
  echo "$(date +%s.%N | cut -c1-14) started qemu (${FIRMWARE:-bios}, $order): exit $rc, pid $(cat "$pidfile" 2>/dev/null)" >> "$vmdir/chassis.log"
}

stop_vm() {
  local pid i
  pid="$(qemu_pid)"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    [ -n "$(qemu_pid)" ] || break
    sleep 0.02
  done
  [ -n "$(qemu_pid)" ] && kill -KILL "$pid" 2>/dev/null
  for i in 1 2 3 4 5 6 7 8 9 10; do
    [ -d "/proc/$pid" ] || break
    sleep 0.02
  done
  rm -f "$pidfile"
}

op="${1:-}"
shift || true
case "$op" in
  get)
    for n in "$@"; do
      case "$n" in
        power) if [ -n "$(qemu_pid)" ]; then echo "power:1"; else echo "power:0"; fi ;;
        boot) echo "boot:$boot" ;;
      esac
    done
    ;;
  set)
    while [ $# -ge 2 ]; do
      case "$1" in
        power) if [ "$2" = 1 ]; then start_vm; else stop_vm; fi ;;
        reset) if [ -n "$(qemu_pid)" ]; then stop_vm; start_vm; fi ;;
        shutdown) stop_vm ;;
        boot) set_boot "$2" ;;
      esac
      shift 2
    done
    ;;
esac
exit 0
