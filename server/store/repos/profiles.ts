import { FleetError } from '../../../common/errors.js';
import type { ProfileSpec } from '../../model.js';
import { appendEvent, naturalCompare, type StoreContext } from '../context.js';
import { canonicalJson } from '../json.js';
import type { WriteContext } from '../types.js';
import { EVENT } from '../../../common/events.js';

export interface ProfileUpsertResult {
  action: 'added' | 'changed' | 'unchanged';
  /** Top-level ProfileSpec fields that changed ('changed' only). */
  fields: string[];
}

/** Top-level fields whose canonical JSON differs. */
export function profileFieldChanges(a: ProfileSpec, b: ProfileSpec): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of keys) {
    const va = (a as unknown as Record<string, unknown>)[k];
    const vb = (b as unknown as Record<string, unknown>)[k];
    if (canonicalJson(va ?? null) !== canonicalJson(vb ?? null)) out.push(k);
  }
  return out.sort();
}

export class ProfileRepository {
  constructor(private readonly ctx: StoreContext) {}

  async list(): Promise<ProfileSpec[]> {
    const rows = await this.ctx.q.selectFrom('profiles').select(['name', 'spec']).execute();
    return rows.sort((a, b) => naturalCompare(a.name, b.name)).map((r) => JSON.parse(r.spec) as ProfileSpec);
  }

  async get(name: string): Promise<ProfileSpec | null> {
    const row = await this.ctx.q.selectFrom('profiles').select('spec').where('name', '=', name).executeTakeFirst();
    return row ? (JSON.parse(row.spec) as ProfileSpec) : null;
  }

  /** Adds or replaces a profile; writes profile.added / profile.changed, nothing when unchanged. */
  async upsert(spec: ProfileSpec, wc: WriteContext): Promise<ProfileUpsertResult> {
    if (typeof spec.name !== 'string' || spec.name === '') throw new FleetError('request.invalid', 'profile name is empty');
    return this.ctx.write(async (trx) => {
      const now = this.ctx.nowIso();
      const row = await trx.selectFrom('profiles').select('spec').where('name', '=', spec.name).executeTakeFirst();
      const json = canonicalJson(spec);
      if (!row) {
        await trx.insertInto('profiles').values({ name: spec.name, spec: json, created_at: now, updated_at: now }).execute();
        await appendEvent(trx, now, { kind: EVENT.profileAdded, actor: wc.actor, cause: wc.cause ?? null, details: { profile: spec.name } });
        return { action: 'added', fields: [] };
      }
      const fields = profileFieldChanges(JSON.parse(row.spec) as ProfileSpec, spec);
      if (fields.length === 0) return { action: 'unchanged', fields: [] };
      await trx.updateTable('profiles').set({ spec: json, updated_at: now }).where('name', '=', spec.name).execute();
      await appendEvent(trx, now, { kind: EVENT.profileChanged, actor: wc.actor, cause: wc.cause ?? null, details: { profile: spec.name, fields } });
      return { action: 'changed', fields };
    });
  }

  /** Removes a profile; FleetError('conflict') while nodes use it, 'not_found' when absent. */
  async remove(name: string, wc: WriteContext): Promise<void> {
    await this.ctx.write(async (trx) => {
      const users = await trx.selectFrom('nodes').select('name').where('profile', '=', name).limit(5).execute();
      if (users.length > 0) {
        throw new FleetError('conflict', `profile ${name} is still used by ${users.map((u) => u.name).join(', ')}${users.length === 5 ? ', ...' : ''}`, {
          profile: name,
        });
      }
      const res = await trx.deleteFrom('profiles').where('name', '=', name).executeTakeFirst();
      if (Number(res.numDeletedRows) === 0) throw new FleetError('not_found', `no profile named ${name}`, { profile: name });
      await appendEvent(trx, this.ctx.nowIso(), { kind: EVENT.profileRemoved, actor: wc.actor, cause: wc.cause ?? null, details: { profile: name } });
    });
  }
}
