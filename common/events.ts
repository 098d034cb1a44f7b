/**
 * The catalogue of event kinds: every row of the event log has one of these
 * kinds, and each kind is spelled here once. The store writes some itself
 * (with the change they record, in the same transaction), the services
 * record the facts the outside world reports (a script fetch, an install
 * callback, an agent's boot report), and the conductor writes its steps.
 *
 * A fact is an event kind the lifecycle may act on: `server/lifecycle/facts.ts`
 * holds the rules (fact seen in a state → lifecycle event) as a table.
 *
 * The kinds are part of the REST contract (`GET /api/v1/events?kind=`), which
 * is why they live in common/: the CLI reads them back.
 */

export const EVENT = {
  // --- the store, with the change it records
  nodeAdded: 'node.added',
  nodeChanged: 'node.changed',
  nodeRemoved: 'node.removed',
  nodeArmed: 'node.armed',
  nodeDisarmed: 'node.disarmed',
  stateChanged: 'state.changed',
  profileAdded: 'profile.added',
  profileChanged: 'profile.changed',
  profileRemoved: 'profile.removed',
  credentialAdded: 'credential.added',
  credentialChanged: 'credential.changed',
  credentialRemoved: 'credential.removed',
  settingsChanged: 'settings.changed',
  machineDiscovered: 'machine.discovered',
  /** A discovered machine became a node through a discovery rule (fleet discover --accept, or policy auto). */
  machineAccepted: 'machine.accepted',
  /** An operator set a discovered machine aside (fleet discover --reject): plans skip it. */
  machineRejected: 'machine.rejected',
  /** An operator took a rejected machine back (fleet discover --unreject): plans consider it again. */
  machineUnrejected: 'machine.unrejected',
  /** A discovered machine's inspection report was kept (fleet boot environment, inspect mode): serial, model, NICs, disks, its BMC. */
  machineInspected: 'machine.inspected',
  /** An inspection report or poll was refused (no inspect token, a wrong or used one). */
  inspectionRefused: 'machine.inspection_refused',
  /** A BMC answered a scan for the first time (fleet discover bmc): its address and identity, no credential. */
  bmcDiscovered: 'bmc.discovered',
  /** One BMC scan: subnet, protocols, counts (answered, silent, BMCs, new). */
  bmcScanned: 'bmc.scanned',
  tokenIssued: 'token.issued',
  tokenUsed: 'token.used',
  tokenRevoked: 'token.revoked',
  bmcTlsTrusted: 'bmc.tls_trusted',
  /** A secret fleet generated (the munge key): its name only, never its value. */
  secretCreated: 'secret.created',
  secretReplaced: 'secret.replaced',

  // --- BMC audit: one row per node and operation, written as each result lands
  bmcPower: 'bmc.power',
  bmcBootdev: 'bmc.bootdev',
  /** fleet bmc rotate: a new BMC account was verified out of band and recorded (slot and account names, never the password). */
  bmcCredentialRotated: 'bmc.credential_rotated',
  /** A rotation that did not complete: why, and which credential stays in use (unchanged). */
  bmcRotateFailed: 'bmc.rotate_failed',
  /** An accepted machine's BMC will be set up in band by the boot environment (discovery rule bmc.setup): the job, never the password. */
  bmcSetupPlanned: 'bmc.setup_planned',
  /** What the boot environment reported of the in-band set-up (ok or not, its log tail). */
  bmcSetupReported: 'bmc.setup_reported',
  /** The in-band set-up did not end with a verified credential: why; the factory credential stays in use. */
  bmcSetupFailed: 'bmc.setup_failed',

  // --- facts from the boot endpoints (the installer and iPXE)
  scriptFetched: 'boot.script_fetched',
  loopSuspect: 'boot.loop_suspect',
  kickstartFetched: 'boot.kickstart_fetched',
  kickstartRefused: 'boot.kickstart_refused',
  planFetched: 'boot.plan_fetched',
  planRefused: 'boot.plan_refused',
  installStarted: 'install.started',
  installFailed: 'install.failed',
  installFinished: 'install.finished',
  installProgress: 'install.progress',
  callbackRefused: 'install.callback_refused',

  // --- facts from the agent service
  agentEnrolled: 'agent.enrolled',
  agentEnrollRefused: 'agent.enroll_refused',
  agentIdentityChanged: 'agent.identity_changed',
  agentBoot: 'agent.boot',
  agentApplied: 'agent.applied',
  agentApplyFailed: 'agent.apply_failed',
  agentInventory: 'agent.inventory',
  agentCommand: 'agent.command',

  // --- the agent's inventory compared with the node's BMC (server/inventory/reconcile.ts)
  inventoryReconciled: 'inventory.reconciled',

  // --- the conductor's own record of its steps
  stepStarted: 'lifecycle.step_started',
  stepDone: 'lifecycle.step_done',
  stepFailed: 'lifecycle.step_failed',
  recovered: 'lifecycle.recovered',
  cleanupFailed: 'lifecycle.cleanup_failed',

  // --- API users (issue 17): names, roles and token ids only, never a token
  userAdded: 'user.added',
  userRemoved: 'user.removed',
  userDisabled: 'user.disabled',
  userEnabled: 'user.enabled',
  /** A new token for a user (its id only); details.revoked: how many of the user's other tokens went with it. */
  userTokenIssued: 'user.token_issued',
  // --- serial consoles (server/console): who attached, and where a node's console output is logged
  consoleAttached: 'console.attached',
  consoleDetached: 'console.detached',
  /** The server logs the node's serial console (install/boot phase) to details.file. */
  consoleLogging: 'console.logging',
} as const;

export type EventKind = (typeof EVENT)[keyof typeof EVENT];

export const EVENT_KINDS: readonly EventKind[] = Object.values(EVENT);

export function isEventKind(k: string): k is EventKind {
  return (EVENT_KINDS as readonly string[]).includes(k);
}
