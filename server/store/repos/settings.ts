import type { ClusterSpec } from '../../model.js';
import { appendEvent, type StoreContext } from '../context.js';
import { canonicalJson } from '../json.js';
import { prepared } from '../prepared.js';
import type { ClusterSettings, WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

export const CLUSTER_SETTINGS_KEY = 'cluster';
const SPEC_TABLE_KEYS = new Set(['nodes', 'profiles', 'credentials']);

/** A ClusterSpec without the parts that have their own tables (nodes, profiles, credentials). */
export function clusterSettingsOf(spec: ClusterSpec | ClusterSettings): ClusterSettings {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(spec)) if (!SPEC_TABLE_KEYS.has(k) && v !== undefined) out[k] = v;
  return out as ClusterSettings;
}

/** Top-level sections whose canonical JSON differs. */
export function settingsSectionChanges(a: ClusterSettings | null, b: ClusterSettings): string[] {
  const ra = (a ?? {}) as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  return [...keys].filter((k) => canonicalJson(ra[k] ?? null) !== canonicalJson(rb[k] ?? null)).sort();
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    for (const x of Object.values(v as Record<string, unknown>)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/**
 * Key/value settings (JSON values). Key 'cluster' holds the last applied
 * cluster settings: the ClusterSpec minus nodes, profiles and credentials
 * (cluster, networks, and sections such as netboot and server as they come).
 * Values must not contain secrets: they are echoed by events only as key and
 * section names, but the API may show them.
 */
export class SettingsRepository {
  /**
   * The last parse of each key, by its version (015). The cluster settings are read on hot paths
   * (every iPXE script fetch, inspection report and policy-auto batch), and with a discovery rule
   * of a thousand serials reading and parsing their ~100 KB of JSON dominated a report's CPU
   * (bench discovery-inspection). A read asks for the version only; the document is read and
   * parsed again when it moved, so a value another process wrote is seen at once. Values handed
   * out are deep-frozen: callers share them.
   */
  private readonly parsed = new Map<string, { version: number; value: unknown }>();
  /** The version alone: the query of every cached read, compiled once. */
  private readonly versionQuery = prepared<{ key: string }, { version: number }>((db, p) => db.selectFrom('settings').select('version').where('key', '=', p('key')));

  constructor(private readonly ctx: StoreContext) {}

  async get<T = unknown>(key: string): Promise<T | null> {
    const hit = this.parsed.get(key);
    if (hit) {
      const v = await this.versionQuery.first(this.ctx.q, { key });
      if (v && Number(v.version) === hit.version) return hit.value as T;
    }
    const row = await this.ctx.q.selectFrom('settings').select(['value', 'version']).where('key', '=', key).executeTakeFirst();
    if (!row) {
      this.parsed.delete(key);
      return null;
    }
    const value = deepFreeze(JSON.parse(row.value) as unknown);
    this.parsed.set(key, { version: Number(row.version), value });
    return value as T;
  }

  /** Sets a value; writes settings.changed (key and changed sections, not values). Returns false when unchanged. */
  async set(key: string, value: unknown, wc: WriteContext): Promise<boolean> {
    return this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      const json = canonicalJson(value);
      const row = await trx.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
      if (row && row.value === json) return false;
      await trx
        .insertInto('settings')
        .values({ key, value: json, updated_at: now })
        .onConflict((oc) => oc.column('key').doUpdateSet((eb) => ({ value: json, updated_at: now, version: eb('settings.version', '+', 1) })))
        .execute();
      const before = row ? (JSON.parse(row.value) as unknown) : null;
      const isObj = (v: unknown): v is ClusterSettings => v !== null && typeof v === 'object' && !Array.isArray(v);
      const sections = isObj(value) && (before === null || isObj(before)) ? settingsSectionChanges(before, value) : undefined;
      await appendEvent(trx, now, {
        kind: EVENT.settingsChanged,
        actor: wc.actor,
        cause: wc.cause ?? null,
        details: { key, ...(sections ? { sections } : {}) },
      });
      return true;
    });
  }

  /** The last applied cluster settings, or null before the first `fleet apply`. */
  async getCluster(): Promise<ClusterSettings | null> {
    return this.get<ClusterSettings>(CLUSTER_SETTINGS_KEY);
  }

  /** Stores the cluster settings of a spec (nodes, profiles and credentials are dropped). */
  async setCluster(spec: ClusterSpec | ClusterSettings, wc: WriteContext): Promise<boolean> {
    return this.set(CLUSTER_SETTINGS_KEY, clusterSettingsOf(spec), wc);
  }
}
