/**
 * The schema, as numbered migrations recorded in `schema_migrations`. Several instances
 * may start at once on one database: each applies what is missing in one transaction that
 * first takes a transaction-scoped advisory lock, so one applies and the others wait, then
 * find nothing left to do. A migration is never edited once released: a change is a new one.
 *
 * Money columns are `numeric` (exact, any size) and are read back as text, never as a
 * JS number. Record texts are kept exactly as the gateway sent them (a JSON array of
 * strings in a text column), since the Merkle root is over those very bytes.
 */
import type { SqlDb } from './db.ts';

export interface Migration {
  version: number;
  name: string;
  /** One statement each: PGlite's extended protocol runs one statement per query. */
  statements: readonly string[];
}

/** Any constant works, as long as nothing else on the database uses it: "cloud-sync migrations". */
const MIGRATION_LOCK_KEY = 7_130_001;

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'gateways, keys, uploads, batches, settlements, health, alerts',
    statements: [
      `CREATE TABLE gateways (
        id text PRIMARY KEY,
        name text NOT NULL,
        registered_at timestamptz NOT NULL,
        last_seq bigint NOT NULL DEFAULT 0,
        last_seen_at timestamptz,
        last_created_at timestamptz,
        last_batch_no bigint NOT NULL DEFAULT 0,
        latest_health text,
        latest_health_at timestamptz,
        refusals bigint NOT NULL DEFAULT 0,
        last_refusal text,
        last_refusal_at timestamptz
      )`,
      `CREATE TABLE gateway_keys (
        gateway_id text NOT NULL REFERENCES gateways (id),
        key_id text NOT NULL,
        public_key text NOT NULL,
        valid_from timestamptz NOT NULL,
        endorsed_by text,
        added_at timestamptz NOT NULL,
        added_seq bigint,
        PRIMARY KEY (gateway_id, key_id)
      )`,
      `CREATE TABLE uploads (
        gateway_id text NOT NULL REFERENCES gateways (id),
        seq bigint NOT NULL,
        kind text NOT NULL,
        digest text NOT NULL,
        key_id text NOT NULL,
        created_at timestamptz NOT NULL,
        received_at timestamptz NOT NULL,
        PRIMARY KEY (gateway_id, seq)
      )`,
      `CREATE TABLE batches (
        gateway_id text NOT NULL REFERENCES gateways (id),
        batch_no bigint NOT NULL,
        batch_id text NOT NULL,
        header text NOT NULL,
        header_digest text NOT NULL,
        payer text NOT NULL,
        currency text NOT NULL,
        record_count bigint NOT NULL,
        first_index bigint NOT NULL,
        last_index bigint NOT NULL,
        total_nano numeric NOT NULL,
        carried_in_nano numeric NOT NULL,
        amount_minor numeric NOT NULL,
        carried_out_nano numeric NOT NULL,
        merkle_root text NOT NULL,
        chain_index bigint NOT NULL,
        chain_hash text NOT NULL,
        sealed_at timestamptz NOT NULL,
        parts integer NOT NULL,
        parts_received integer NOT NULL,
        records_received bigint NOT NULL,
        records_nano numeric NOT NULL,
        last_record_index bigint NOT NULL,
        complete boolean NOT NULL DEFAULT false,
        state text NOT NULL,
        state_at timestamptz NOT NULL,
        payment_id text,
        bank_status text,
        received_at timestamptz NOT NULL,
        completed_at timestamptz,
        PRIMARY KEY (gateway_id, batch_no)
      )`,
      'CREATE INDEX batches_by_payer ON batches (gateway_id, payer, currency, batch_no)',
      'CREATE INDEX batches_by_sealed_at ON batches (sealed_at)',
      `CREATE TABLE batch_parts (
        gateway_id text NOT NULL,
        batch_no bigint NOT NULL,
        part integer NOT NULL,
        first_record bigint NOT NULL,
        record_count integer NOT NULL,
        records text NOT NULL,
        digest text NOT NULL,
        PRIMARY KEY (gateway_id, batch_no, part),
        FOREIGN KEY (gateway_id, batch_no) REFERENCES batches (gateway_id, batch_no)
      )`,
      `CREATE TABLE settlements (
        gateway_id text NOT NULL REFERENCES gateways (id),
        seq bigint NOT NULL,
        batch_no bigint NOT NULL,
        state text NOT NULL,
        at timestamptz NOT NULL,
        payment_id text,
        bank_status text,
        amount_minor numeric NOT NULL,
        currency text NOT NULL,
        received_at timestamptz NOT NULL,
        PRIMARY KEY (gateway_id, seq)
      )`,
      `CREATE TABLE health_reports (
        gateway_id text NOT NULL REFERENCES gateways (id),
        seq bigint NOT NULL,
        at timestamptz NOT NULL,
        report text NOT NULL,
        received_at timestamptz NOT NULL,
        PRIMARY KEY (gateway_id, seq)
      )`,
      `CREATE TABLE alerts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        gateway_id text NOT NULL REFERENCES gateways (id),
        at timestamptz NOT NULL,
        kind text NOT NULL,
        detail text NOT NULL,
        seq bigint,
        batch_no bigint
      )`,
      'CREATE INDEX alerts_by_gateway ON alerts (gateway_id, id)',
    ],
  },
]);

/** Applies the migrations the database lacks; returns their versions. Refuses a database newer than this code. */
export async function migrate(db: SqlDb, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  return db.transaction(async (tx) => {
    // Held until COMMIT: a second instance starting now waits here, then sees our rows.
    await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
    await tx.query('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    const { rows } = await tx.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    const done = new Set(rows.map((row) => row.version));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...done].filter((version) => !known.has(version));
    if (unknown.length > 0) {
      throw new Error(`Cannot use this database: it has schema migration(s) ${unknown.join(', ')}, newer than this cloud-sync knows (up to ${Math.max(...known)}); upgrade cloud-sync`);
    }
    const applied: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(migration.version)) continue;
      for (const statement of migration.statements) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      applied.push(migration.version);
    }
    return applied;
  });
}
