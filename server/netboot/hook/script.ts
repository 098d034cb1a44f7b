/**
 * The dnsmasq `dhcp-script`: forwards lease events to the fleet server.
 * See docs/decisions/0005-dnsmasq.md for why it is a bash script writing one
 * line to a FIFO (and not a TCP or unix-socket client).
 *
 * The script is kept here as text and written by the supervisor into the
 * dnsmasq state directory at every start (0700), so that it always matches the
 * parser of this build (server/netboot/discovery/protocol.ts) and needs no
 * path lookup at run time (dist/ holds no .sh files).
 */
import { writeFileAtomic } from '../../../common/atomic-write.js';

/** Environment variables the supervisor gives dnsmasq (which passes its environment on to the script). */
export const HOOK_ENV = { fifo: 'FLEET_HOOK_FIFO', secret: 'FLEET_HOOK_SECRET' } as const;

/** First field of every line; bumped when the field list changes. */
export const HOOK_MAGIC = 'FLEET1';

/** Field order after the magic (tab-separated, one line per event). */
export const HOOK_FIELDS = [
  'secret',
  'action',
  'mac',
  'ip',
  'hostname',
  'vendorClass',
  'userClasses',
  'tags',
  'clientId',
  'interface',
  'suppliedHostname',
  'expires',
  'dataMissing',
] as const;

export const HOOK_SCRIPT = `#!/bin/bash
# fleet dhcp-script (server/netboot/hook). Written by fleet at every start: do not edit.
#
# dnsmasq runs it serially for each lease change: ACTION MAC IP [HOSTNAME], with
# DNSMASQ_* variables. add/old/del become ONE line written to the fleet server's
# FIFO; nothing is forked and no external command runs, so it takes ~1-2 ms.
#  - The FIFO is opened read-write, an open that never blocks even when the
#    server is not reading; the line is then dropped, and dnsmasq replays every
#    lease as "old" when it restarts, so the server reconciles.
#  - When the server reads slower than dnsmasq writes, the write blocks once the
#    pipe holds 64 KiB: backpressure, not loss.
#  - Each field is cut to a bounded length and non-printable bytes (tab and
#    newline included) become spaces: a line is ASCII and stays far below
#    PIPE_BUF (4096 bytes), so it is written atomically.
# Line: ${HOOK_MAGIC} secret action mac ip hostname vendor-class user-classes tags
#       client-id interface supplied-hostname lease-expires data-missing (TAB-separated)
LC_ALL=C
case "$1" in add|old|del) ;; *) exit 0 ;; esac
fifo=\${FLEET_HOOK_FIFO:-}
[[ -n $fifo && -p $fifo ]] || exit 0
f() { REPLY=\${1//[^[:print:]]/ }; REPLY=\${REPLY:0:$2}; line+=$'\\t'$REPLY; }
line=${HOOK_MAGIC}
f "\${FLEET_HOOK_SECRET:-}" 128
f "$1" 8
f "$2" 64
f "$3" 64
f "\${4:-}" 255
f "\${DNSMASQ_VENDOR_CLASS:-}" 255
f "\${DNSMASQ_USER_CLASS0:-}\${DNSMASQ_USER_CLASS1:+,$DNSMASQ_USER_CLASS1}\${DNSMASQ_USER_CLASS2:+,$DNSMASQ_USER_CLASS2}" 255
f "\${DNSMASQ_TAGS:-}" 512
f "\${DNSMASQ_CLIENT_ID:-}" 255
f "\${DNSMASQ_INTERFACE:-}" 32
f "\${DNSMASQ_SUPPLIED_HOSTNAME:-}" 255
f "\${DNSMASQ_LEASE_EXPIRES:-}" 20
f "\${DNSMASQ_DATA_MISSING:-}" 4
exec 3<>"$fifo" || exit 1
printf '%s\\n' "$line" >&3
exec 3>&-
exit 0
`;

/** Writes the script (0700, atomically). */
export async function writeHookScript(file: string): Promise<void> {
  await writeFileAtomic(file, HOOK_SCRIPT, { mode: 0o700 });
}
