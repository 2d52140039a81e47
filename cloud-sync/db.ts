/**
 * The one storage interface of cloud-sync: SQL in, rows out, transactions. Two
 * implementations run the same SQL: PGlite (PostgreSQL compiled to WebAssembly, embedded,
 * the default: no server to run) and a `pg` pool on a real PostgreSQL (DATABASE_URL).
 *
 * The drivers disagree on types (pg returns int8 and numeric as strings, PGlite int8 as a
 * number and timestamptz as Date), so queries cast what they read: counts to int, money
 * and sequence numbers to text, times through {@link isoOf}. Rows then look the same
 * whichever database answered.
 */
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

export interface SqlDb {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  /** Runs `fn` in one transaction (BEGIN … COMMIT, ROLLBACK when it throws); inside one, runs it as part of it. */
  transaction<T>(fn: (tx: SqlDb) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A timestamptz column as ISO 8601 UTC text with milliseconds, the same from both drivers. */
export const isoOf = (column: string): string => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

export interface PgliteOptions {
  /** A folder for the database files; undefined keeps it in memory (gone at close). */
  dataDir?: string;
}

/**
 * PGlite runs one backend in this process: its own mutex makes each transaction exclusive
 * and queues plain queries behind it, so uploads are serialised here anyway. The row locks
 * the ingest takes are then free, and the same SQL serialises a gateway across instances
 * on PostgreSQL.
 */
export async function openPglite(options: PgliteOptions = {}): Promise<SqlDb> {
  const db = await PGlite.create(options.dataDir === undefined ? {} : { dataDir: options.dataDir });
  type Queryable = Pick<PGlite, 'query'>;
  const wrap = (runner: Queryable, inTransaction: boolean): SqlDb => ({
    query: async <T>(sql: string, params: unknown[] = []) => ({ rows: (await runner.query<T>(sql, params)).rows }),
    transaction: async <T>(fn: (tx: SqlDb) => Promise<T>): Promise<T> => {
      if (inTransaction) return fn(wrap(runner, true));
      return db.transaction((tx) => fn(wrap(tx, true)));
    },
    close: async () => {
      if (inTransaction) throw new Error('Cannot close the database from inside a transaction');
      await db.close();
    },
  });
  return wrap(db, false);
}

export interface PostgresOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections in the pool; each upload holds one for its transaction. */
  connectionsMax?: number;
  /** Reports errors of idle connections (a restarted server); without a listener pg would crash the process. */
  onIdleError?: (error: Error) => void;
}

export function openPostgres(options: PostgresOptions): SqlDb {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.connectionsMax ?? 10,
    // Bounds on waiting: an upload stuck behind a lock, or a connection left in a transaction
    // by a hung instance, fails (503, the gateway retries) instead of holding the gateway's row.
    connectionTimeoutMillis: 30_000,
    statement_timeout: 60_000,
    idle_in_transaction_session_timeout: 60_000,
  });
  pool.on('error', (error) => options.onIdleError?.(error));
  const wrap = (client: pg.Pool | pg.PoolClient, inTransaction: boolean): SqlDb => ({
    query: async <T>(sql: string, params: unknown[] = []) => ({ rows: (await client.query(sql, params)).rows as T[] }),
    transaction: async <T>(fn: (tx: SqlDb) => Promise<T>): Promise<T> => {
      if (inTransaction) return fn(wrap(client, true));
      const connection = await pool.connect();
      let broken: Error | undefined;
      try {
        await connection.query('BEGIN');
        const result = await fn(wrap(connection, true));
        await connection.query('COMMIT');
        return result;
      } catch (error) {
        try {
          await connection.query('ROLLBACK');
        } catch (rollbackError) {
          // The connection is unusable: drop it from the pool rather than hand it out again.
          broken = rollbackError as Error;
        }
        throw error;
      } finally {
        connection.release(broken);
      }
    },
    close: async () => {
      if (inTransaction) throw new Error('Cannot close the database from inside a transaction');
      await pool.end();
    },
  });
  return wrap(pool, false);
}
