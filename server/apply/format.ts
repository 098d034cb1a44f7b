/**
 * The human diff of an ApplyPlan. Prints names, addresses and field names,
 * never a secret or a digest.
 */
import type { BmcProtocol, NodeBmcSpec, NodeSpec } from '../model.js';
import type { ApplyPlan } from './plan.js';

const DEFAULT_PORT: Record<BmcProtocol, number> = { ipmi: 623, ipmitool: 623, redfish: 443 };

function bmcText(b: NodeBmcSpec | null | undefined, withCredentials = false): string {
  if (!b) return 'none';
  const port = b.port === DEFAULT_PORT[b.protocol] ? '' : `:${b.port}`;
  const redfish = [
    ...(b.system !== undefined ? [`system ${b.system}`] : []),
    ...(b.auth !== undefined && b.auth !== 'auto' ? [`auth ${b.auth}`] : []),
    ...(b.powerWait !== undefined ? [`power_wait ${b.powerWait}s`] : []),
  ];
  return `${b.address}${port} ${b.protocol}${redfish.length ? ' ' + redfish.join(' ') : ''}${withCredentials ? ` (${b.credentials})` : ''}`;
}

function nodeSummary(n: NodeSpec): string {
  const parts = [n.profile, n.ip ?? 'no ip'];
  if (n.bmc) parts.push(`bmc ${bmcText(n.bmc)}`);
  if (n.pet) parts.push('pet');
  return parts.join(', ');
}

const yesNo = (b: boolean) => (b ? 'yes' : 'no');
const macsText = (m: string[]) => (m.length === 0 ? 'none' : m.join(','));

/**
 * Lines, in order: settings, credentials, profiles, nodes (fleet.yaml order;
 * removals last), then `= N unchanged` counting unchanged nodes. An empty
 * plan starts with `No changes.`
 *
 *   + valkyrie03 (compute, 10.10.3.3, bmc 10.10.103.3 ipmi)
 *   ~ valkyrie01: ip 10.10.3.1 → 10.10.3.9
 *   - valkyrie09
 *   ! thor (pet): would remove (use --prune)
 *   = 5 unchanged
 */
export function formatPlan(plan: ApplyPlan): string {
  const lines: string[] = [];
  const { settings, credentials: c, profiles: p, nodes: n } = plan;
  const changes = c.added.length + c.changed.length + c.removed.length + p.added.length + p.changed.length + p.removed.length;
  if (!settings.changed && changes + n.added.length + n.changed.length + n.removed.length + n.adopted.length + n.held.length === 0) lines.push('No changes.');

  if (settings.changed) lines.push(`~ settings: ${settings.sections.join(', ')}`);

  for (const x of c.added) lines.push(`+ credential ${x.name} (user ${x.username})`);
  for (const x of c.changed) {
    const parts: string[] = [];
    if (x.usernameFrom !== undefined) parts.push(`username ${x.usernameFrom} → ${x.username}`);
    if (x.secretChanged) parts.push('secret changed');
    lines.push(`~ credential ${x.name}: ${parts.join(', ')}`);
  }
  for (const name of c.removed) lines.push(`- credential ${name}`);

  for (const x of p.added) lines.push(`+ profile ${x.name}`);
  for (const x of p.changed) lines.push(`~ profile ${x.name}: ${x.fields.join(', ')}`);
  for (const name of p.removed) lines.push(`- profile ${name}`);

  for (const x of n.added) lines.push(`+ ${x.name} (${nodeSummary(x)})`);
  for (const x of n.changed) {
    const ch = x.changes;
    const parts: string[] = [];
    if (ch.profile) parts.push(`profile ${ch.profile.from} → ${ch.profile.to}`);
    if (ch.ip) parts.push(`ip ${ch.ip.from ?? 'none'} → ${ch.ip.to ?? 'none'}`);
    if (ch.macs) parts.push(`macs ${macsText(ch.macs.from)} → ${macsText(ch.macs.to)}`);
    if (ch.bmc) {
      const creds = !!ch.bmc.from && !!ch.bmc.to && ch.bmc.from.credentials !== ch.bmc.to.credentials;
      parts.push(`bmc ${bmcText(ch.bmc.from, creds)} → ${bmcText(ch.bmc.to, creds)}`);
    }
    if (ch.pet) parts.push(`pet ${yesNo(ch.pet.from)} → ${yesNo(ch.pet.to)}`);
    lines.push(`~ ${x.name}: ${parts.join(', ')}`);
  }
  for (const x of n.adopted) lines.push(`~ ${x.name}: now declared in fleet.yaml (was ${x.from === 'enroll' ? 'enrolled' : x.from})`);
  for (const x of n.removed) lines.push(`- ${x.name}`);
  for (const x of n.held) {
    const why = x.reasons.map((r) => (r === 'pet' ? 'pet' : x.state)).join(', ');
    lines.push(`! ${x.name} (${why}): would remove (use --prune)`);
  }
  for (const x of p.kept) lines.push(`= profile ${x.name} kept: used by ${x.nodes.join(', ')}`);
  if (n.kept.length > 0) {
    lines.push(`= ${n.kept.length} not in fleet.yaml, kept (enrolled): ${n.kept.map((x) => x.name).join(', ')}`);
  }

  lines.push(`= ${n.unchanged.length} unchanged`);
  return lines.join('\n');
}
