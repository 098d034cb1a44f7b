import type { ClusterSpec } from '../../model.js';
import { appendEvent, type StoreContext } from '../context.js';
import { canonicalJson } from '../json.js';
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

/**
 * Key/value settings (JSON values). Key 'cluster' holds the last applied
 * cluster settings: the ClusterSpec minus nodes, profiles and credentials
 * (cluster, networks, and sections such as netboot and server as they come).
 * Values must not contain secrets: they are echoed by events only as key and
 * section names, but the API may show them.
 */
export class SettingsRepository {
  constructor(private readonly ctx: StoreContext) {}

  async get<T = unknown>(key: string): Promise<T | null> {
    const row = await this.ctx.q.selectFrom('settings').select('value').where('key', '=', key).executeTakeFirst();
    return row ? (JSON.parse(row.value) as T) : null;
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
        .onConflict((oc) => oc.column('key').doUpdateSet({ value: json, updated_at: now }))
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
