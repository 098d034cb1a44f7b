/**
 * Numbered schema migrations, as code (no files are read at runtime).
 *
 * Rules: a migration, once released, is never edited; a change is a new
 * entry (`002_...`). Names sort lexicographically, which is the order Kysely
 * runs them in. Each runs inside one transaction together with its record in
 * `kysely_migration`.
 */
import { PostgresAdapter, sql, type ColumnDataType, type Kysely, type Migration, type MigrationProvider } from 'kysely';

/*
 * One definition for both engines (docs/decisions/0019): Kysely's schema
 * builder writes each engine's DDL; the few types and statements that differ
 * go through the helpers below, which leave SQLite's DDL exactly as it was
 * released.
 */

/** Whether the migration runs on PostgreSQL (else SQLite). */
export function onPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** Bytes: SQLite's blob, PostgreSQL's bytea. */
function blob(db: Kysely<any>): ColumnDataType {
  return onPostgres(db) ? 'bytea' : 'blob';
}

/** An integer key numbered by the engine: SQLite's `integer primary key autoincrement`, PostgreSQL's serial. */
function addIdColumn<T extends { addColumn: (...args: any[]) => T }>(db: Kysely<any>, table: T): T {
  if (onPostgres(db)) return table.addColumn('id', 'serial', (c: any) => c.primaryKey());
  return table.addColumn('id', 'integer', (c: any) => c.primaryKey().autoIncrement());
}

/** The column names of a table (SQLite's pragma_table_info, PostgreSQL's information_schema). */
async function columnsOf(db: Kysely<any>, table: string): Promise<Set<string>> {
  const { rows } = onPostgres(db)
    ? await sql<{ name: string }>`select column_name as name from information_schema.columns where table_schema = current_schema() and table_name = ${table}`.execute(db)
    : await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(db);
  return new Set(rows.map((r) => r.name));
}

const m001: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('settings')
      .addColumn('key', 'text', (c) => c.primaryKey())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('profiles')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('spec', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('credentials')
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('username', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('secret_box', blob(db), (c) => c.notNull())
      .addColumn('secret_digest', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('nodes')
      .addColumn('name', 'text', (c) => c.primaryKey())
      // RESTRICT: a profile still used by a node cannot be removed.
      .addColumn('profile', 'text', (c) => c.notNull().references('profiles.name').onDelete('restrict'))
      .addColumn('ip', 'text', (c) => c.unique())
      .addColumn('pet', 'integer', (c) => c.notNull().defaultTo(0).check(sql`pet in (0, 1)`))
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('enrolled'))
      .addColumn('state_since', 'text', (c) => c.notNull())
      .addColumn('state_deadline', 'text')
      .addColumn('armed', 'integer', (c) => c.notNull().defaultTo(0).check(sql`armed in (0, 1)`))
      .addColumn('last_seen', 'text')
      .addColumn('generation', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('nodes_state').on('nodes').column('state').execute();
    await db.schema.createIndex('nodes_state_deadline').on('nodes').column('state_deadline').execute();
    await db.schema.createIndex('nodes_profile').on('nodes').column('profile').execute();

    await db.schema
      .createTable('interfaces')
      .addColumn('mac', 'text', (c) => c.primaryKey())
      .addColumn('node', 'text', (c) => c.notNull().references('nodes.name').onDelete('cascade'))
      .addColumn('is_primary', 'integer', (c) => c.notNull().defaultTo(0).check(sql`is_primary in (0, 1)`))
      .addColumn('position', 'integer', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('interfaces_node').on('interfaces').column('node').execute();

    await db.schema
      .createTable('bmc_endpoints')
      .addColumn('node', 'text', (c) => c.primaryKey().references('nodes.name').onDelete('cascade'))
      .addColumn('address', 'text', (c) => c.notNull())
      .addColumn('port', 'integer', (c) => c.notNull())
      // No CHECK on protocol: a new provider must not need a table rebuild; the code validates.
      .addColumn('protocol', 'text', (c) => c.notNull())
      .addColumn('credentials', 'text', (c) => c.notNull().references('credentials.name').onDelete('restrict'))
      .addColumn('tls_fingerprint', 'text')
      .addColumn('last_provider', 'text')
      .addColumn('last_answer_at', 'text')
      .execute();
    await db.schema.createIndex('bmc_endpoints_credentials').on('bmc_endpoints').column('credentials').execute();

    // Append-only. No foreign key on node: the history of a removed node stays.
    await addIdColumn(db, db.schema.createTable('events'))
      .addColumn('time', 'text', (c) => c.notNull())
      .addColumn('node', 'text')
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('from_state', 'text')
      .addColumn('to_state', 'text')
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('cause', 'text')
      .addColumn('details', 'text')
      .execute();
    await db.schema.createIndex('events_node_id').on('events').columns(['node', 'id']).execute();
    await db.schema.createIndex('events_time').on('events').column('time').execute();

    await db.schema
      .createTable('discovered')
      .addColumn('mac', 'text', (c) => c.primaryKey())
      .addColumn('ip', 'text')
      .addColumn('hostname', 'text')
      .addColumn('vendor_class', 'text')
      .addColumn('arch', 'text')
      .addColumn('pxe', 'integer', (c) => c.notNull().defaultTo(0).check(sql`pxe in (0, 1)`))
      .addColumn('first_seen', 'text', (c) => c.notNull())
      .addColumn('last_seen', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('discovered_last_seen').on('discovered').column('last_seen').execute();

    await db.schema
      .createTable('tokens')
      .addColumn('hash', 'text', (c) => c.primaryKey())
      .addColumn('node', 'text', (c) => c.notNull().references('nodes.name').onDelete('cascade'))
      .addColumn('purpose', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('used_at', 'text')
      .execute();
    await db.schema.createIndex('tokens_node').on('tokens').column('node').execute();
    await db.schema.createIndex('tokens_expires_at').on('tokens').column('expires_at').execute();

    // Per-node conductor locks with leases (DESIGN §6): a lock whose lease expired may be taken over.
    await db.schema
      .createTable('locks')
      .addColumn('node', 'text', (c) => c.primaryKey().references('nodes.name').onDelete('cascade'))
      .addColumn('owner', 'text', (c) => c.notNull())
      .addColumn('acquired_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('locks_owner').on('locks').column('owner').execute();
    await db.schema.createIndex('locks_expires_at').on('locks').column('expires_at').execute();
  },
};

/**
 * 002: the agent side (issue 5). `agents`: one row per enrolled node, the
 * current node certificate (a re-enrolment replaces it, which revokes the
 * old one) and the last boot/apply seen. `inventory_reports`: every inventory
 * an agent reported, with its time (history kept; removed with the node).
 */
const m002: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('agents')
      .addColumn('node', 'text', (c) => c.primaryKey().references('nodes.name').onDelete('cascade'))
      .addColumn('cert_serial', 'text', (c) => c.notNull())
      .addColumn('cert_fingerprint', 'text', (c) => c.notNull())
      .addColumn('cert_pem', 'text', (c) => c.notNull())
      .addColumn('cert_not_after', 'text', (c) => c.notNull())
      // SHA-256 (hex) of the node's public key (SPKI): lets a retried Enroll with the same key get the same certificate.
      .addColumn('key_sha256', 'text', (c) => c.notNull())
      .addColumn('enrolled_at', 'text', (c) => c.notNull())
      // MachineIdentity reported at enrolment, JSON.
      .addColumn('identity', 'text', (c) => c.notNull())
      .addColumn('agent_version', 'text')
      .addColumn('boot_id', 'text')
      .addColumn('booted_at', 'text')
      .addColumn('applied_version', 'text')
      .addColumn('applied_at', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('agents_cert_fingerprint').on('agents').column('cert_fingerprint').unique().execute();

    await addIdColumn(db, db.schema.createTable('inventory_reports'))
      .addColumn('node', 'text', (c) => c.notNull().references('nodes.name').onDelete('cascade'))
      .addColumn('reported_at', 'text', (c) => c.notNull())
      .addColumn('collected_at', 'text')
      // SHA-256 (hex) of the canonical JSON of the inventory: equal digests, equal inventories.
      .addColumn('digest', 'text', (c) => c.notNull())
      .addColumn('inventory', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('inventory_reports_node_id').on('inventory_reports').columns(['node', 'id']).execute();
  },
};

/**
 * 003: Redfish settings of a node's BMC (issue 9): the ComputerSystem it is
 * on a BMC that manages several (blade chassis), how to authenticate, and how
 * long to wait for a power change. NULL means the default (no system named,
 * auto, 30 s). Uniqueness of address:port[:system] is checked by the
 * fleet.yaml parser, not by an index (an apply that moves a BMC between nodes
 * passes through states an index would refuse).
 */
const m003: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('bmc_endpoints').addColumn('system', 'text').execute();
    await db.schema.alterTable('bmc_endpoints').addColumn('auth', 'text').execute();
    await db.schema.alterTable('bmc_endpoints').addColumn('power_wait', 'integer').execute();
  },
};

/**
 * 004: where each node came from (issue 9). `config`: declared in fleet.yaml
 * and applied; `enroll`: created by `fleet enroll` from a discovered machine.
 * Apply only ever removes `config` nodes: the others are not in fleet.yaml
 * and must survive every apply, including the one at each server start.
 * Nodes that existed before this migration are `config`, except those whose
 * latest node.added event was written by an enrolment.
 */
const m004: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .alterTable('nodes')
      .addColumn('origin', 'text', (c) => c.notNull().defaultTo('config'))
      .execute();
    await sql`
      update nodes set origin = 'enroll'
      where (select e.cause from events e where e.node = nodes.name and e.kind = 'node.added' order by e.id desc limit 1) = 'enroll'
    `.execute(db);
  },
};

/**
 * 005: install tokens (issue 9). At most one outstanding (unused, unrevoked)
 * token per node and purpose, enforced by a partial unique index; the
 * plaintext sealed with the data dir's key (AES-256-GCM, bound to the row's
 * hash) so that a repeated script or kickstart fetch is served the live
 * token again instead of a second one; revocation (install-finished, cancel,
 * a new reinstall) with its reason; the address of the token's last use.
 * Tokens of older data dirs have no sealed plaintext: they stay valid, and a
 * fetch that needs their plaintext revokes them and issues a new one.
 */
const m005: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema.alterTable('tokens').addColumn('sealed', blob(db)).execute();
    await db.schema.alterTable('tokens').addColumn('key_id', 'text').execute();
    await db.schema.alterTable('tokens').addColumn('revoked_at', 'text').execute();
    await db.schema.alterTable('tokens').addColumn('revoked_reason', 'text').execute();
    await db.schema.alterTable('tokens').addColumn('last_ip', 'text').execute();
    await db.schema.alterTable('tokens').addColumn('last_used_at', 'text').execute();
    // Older servers issued a token per fetch: keep the newest outstanding one per node and purpose.
    // SQLite only: a PostgreSQL store starts at a release after 005, so its tokens table is empty here.
    if (!onPostgres(db)) await sql`
      UPDATE tokens SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), revoked_reason = 'superseded (migration 005)'
      WHERE used_at IS NULL AND rowid NOT IN (
        SELECT (SELECT t2.rowid FROM tokens t2 WHERE t2.node = t1.node AND t2.purpose = t1.purpose AND t2.used_at IS NULL
                ORDER BY t2.created_at DESC, t2.rowid DESC LIMIT 1)
        FROM tokens t1 WHERE t1.used_at IS NULL GROUP BY t1.node, t1.purpose)
    `.execute(db);
    await sql`CREATE UNIQUE INDEX tokens_one_outstanding ON tokens (node, purpose) WHERE used_at IS NULL AND revoked_at IS NULL`.execute(db);
  },
};

/**
 * 006: node flags (issue 12 item 4). A flag is a condition someone must look
 * at, with its reason, kept until a later observation clears it; the first is
 * `bmc-mismatch` (the agent's machine is not the one its BMC describes,
 * server/inventory/reconcile.ts). One row per node and flag; removed with the
 * node. `details` is a secret-free JSON document (the checks that decided).
 */
const m006: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('node_flags')
      .addColumn('node', 'text', (c) => c.notNull().references('nodes.name').onDelete('cascade'))
      .addColumn('flag', 'text', (c) => c.notNull())
      .addColumn('reason', 'text', (c) => c.notNull())
      .addColumn('details', 'text')
      .addColumn('since', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('node_flags_pk', ['node', 'flag'])
      .execute();
  },
};

/**
 * 007: secrets fleet generates for the cluster (issue 12): the munge key of
 * the cluster's Slurm. Sealed with the data dir's key (AES-256-GCM, bound to
 * the secret's name) like BMC passwords; delivered only over the agent
 * channel (GetConfig), never returned by the admin API.
 */
const m007: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    // ifNotExists: a data dir rolled back to an older schema by deleting migration records keeps its sealed secrets.
    await db.schema
      .createTable('secrets')
      .ifNotExists()
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('box', blob(db), (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
  },
};

/**
 * 008: discovery rules (issue 13 item 2). An operator may reject a
 * discovered machine (`fleet discover --reject`): naming plans skip it and
 * list it as rejected. When and by whom; null: not rejected.
 */
const m008: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    // Only the columns missing: a data dir rolled back to an older schema by deleting migration records keeps them (as 007).
    const have = await columnsOf(db, 'discovered');
    for (const column of ['rejected_at', 'rejected_by']) {
      if (!have.has(column)) await db.schema.alterTable('discovered').addColumn(column, 'text').execute();
    }
  },
};

/**
 * 009: BMCs found by `fleet discover bmc` (issue 13 item 4), one row per
 * address: what IPMI said before any session (pong, Get Channel Auth Caps)
 * and what the anonymous Redfish service root said, each as a secret-free
 * JSON document with its port; the Redfish identity (UUID, Vendor, Product)
 * and the certificate's SHA-256 in columns of their own, for the naming
 * rules and for pinning. No credential: a scan uses none.
 */
const m009: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      // ifNotExists: a data dir rolled back by deleting migration records keeps the table (as 007, 008).
      .createTable('discovered_bmcs')
      .ifNotExists()
      .addColumn('address', 'text', (c) => c.primaryKey())
      .addColumn('ipmi_port', 'integer')
      .addColumn('ipmi', 'text')
      .addColumn('redfish_port', 'integer')
      .addColumn('redfish', 'text')
      .addColumn('uuid', 'text')
      .addColumn('vendor', 'text')
      .addColumn('product', 'text')
      .addColumn('tls_fingerprint', 'text')
      .addColumn('first_seen', 'text', (c) => c.notNull())
      .addColumn('last_seen', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('discovered_bmcs_uuid').ifNotExists().on('discovered_bmcs').column('uuid').execute();
  },
};

/**
 * 010: inspection (issue 13 item 1). The last report the fleet boot
 * environment posted in inspect mode (the checked JSON, secret-free) and
 * when; the inspect token its iPXE script carried (SHA-256 only), when it
 * expires and when a report used it (one report per boot).
 */
const m010: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    const have = await columnsOf(db, 'discovered');
    for (const column of ['inspection', 'inspected_at', 'inspect_token', 'inspect_token_expires_at', 'inspect_token_used_at']) {
      if (!have.has(column)) await db.schema.alterTable('discovered').addColumn(column, 'text').execute();
    }
  },
};

/**
 * 011: API users and their tokens (issue 17 item 1). A user has a name and a
 * role (read-only, operator, admin; server/auth/roles.ts) and may be
 * disabled. A token is stored as the SHA-256 of the token (hex) only, with
 * its short id (the first 8 hex digits of that hash) to look it up by;
 * last_used_at and an optional expiry. Removing a user removes its tokens.
 */
const m011: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('users')
      .ifNotExists()
      .addColumn('name', 'text', (c) => c.primaryKey())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0).check(sql`disabled in (0, 1)`))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('user_tokens')
      .ifNotExists()
      .addColumn('hash', 'text', (c) => c.primaryKey())
      .addColumn('id', 'text', (c) => c.notNull())
      .addColumn('user', 'text', (c) => c.notNull().references('users.name').onDelete('cascade'))
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('last_used_at', 'text')
      .addColumn('expires_at', 'text')
      .execute();
    await db.schema.createIndex('user_tokens_id').ifNotExists().on('user_tokens').column('id').execute();
    await db.schema.createIndex('user_tokens_user').ifNotExists().on('user_tokens').column('user').execute();
  },
};

/**
 * 013: the credential a node's BMC logs in with after `fleet bmc rotate`
 * (a per-node set, rotated.NODE); NULL: the set fleet.yaml names. Kept
 * apart from `credentials` so that apply, which compares nodes with
 * fleet.yaml, sees no change on a rotated node.
 */
const m013: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    if (!(await columnsOf(db, 'bmc_endpoints')).has('rotated_credentials')) await db.schema.alterTable('bmc_endpoints').addColumn('rotated_credentials', 'text').execute();
  },
};

/**
 * 014: BMC set-up on accept (issue 13 item 3). One row per node whose
 * discovery rule asks for `bmc.setup`: the job the boot environment runs in
 * band (JSON: channel, slot, account, address...), its password sealed like
 * every BMC secret, and how far it got (pending, sent, done, failed + why).
 */
const m014: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await db.schema
      .createTable('bmc_setups')
      .ifNotExists()
      .addColumn('node', 'text', (c) => c.primaryKey().references('nodes.name').onDelete('cascade'))
      .addColumn('mac', 'text', (c) => c.notNull())
      .addColumn('job', 'text', (c) => c.notNull())
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('secret_box', blob(db), (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      // The machine's inspect token (SHA-256) and expiry, carried over from its discovered row, which
      // accepting removes: the waiting boot environment keeps polling and reports with it.
      .addColumn('inspect_token', 'text')
      .addColumn('inspect_token_expires_at', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('bmc_setups_mac').ifNotExists().on('bmc_setups').column('mac').execute();
  },
};

/**
 * 015: a version per setting, bumped by every change. Readers parse a value
 * again only when its version moved (settings.get reads the small integer,
 * not the document: the cluster settings with a rule of a thousand serials
 * are ~100 KB, read on every script fetch and inspection report).
 */
const m015: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    // Idempotent, as 013: tests rebuild an older database by rolling the record of later migrations back.
    if (!(await columnsOf(db, 'settings')).has('version')) await db.schema.alterTable('settings').addColumn('version', 'integer', (c) => c.notNull().defaultTo(1)).execute();
  },
};

/** All migrations, by name. Add new ones at the end with the next number. */
export const MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '001_initial': m001,
  '002_agent': m002,
  '003_bmc_system': m003,
  '004_node_origin': m004,
  '005_install_tokens': m005,
  '006_node_flags': m006,
  '007_secrets': m007,
  '008_discovery': m008,
  '009_discovered_bmcs': m009,
  '010_inspection': m010,
  '011_users': m011,
  '013_bmc_rotation': m013,
  '014_bmc_setup': m014,
  '015_settings_version': m015,
});

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return { ...MIGRATIONS };
  },
};
