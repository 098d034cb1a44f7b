#!/bin/sh
# fleet lab "OS": the few systemctl verbs the fleet agent uses, for a system
# without systemd.
case "${1:-}" in
  reboot) sync; exec reboot -f ;;
  # The lab OS has no systemd: its init starts the agent itself, so enabling a unit is a no-op.
  enable|disable|daemon-reload) exit 0 ;;
  poweroff|halt) sync; exec poweroff -f ;;
  *) echo "systemctl (fleet lab shim): $* is not supported" >&2; exit 1 ;;
esac
