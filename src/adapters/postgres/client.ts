import pg from 'pg';
import type { SqlClient } from '../sql/client.ts';

export type PostgresOptions = Readonly<{
  /** Most connections the pool opens (each open transaction holds one). */
  max?: number;
}>;

const INT8_OID = 20;

// PGlite returns bigint columns as numbers; so does this client, so that code written against
// SqlClient behaves the same on both (node-postgres would give strings).
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/**
 * A PostgreSQL server through a node-postgres pool. Statements outside a transaction run on
 * any pooled connection; a transaction holds one connection from BEGIN to COMMIT (ROLLBACK
 * when its function throws). READ COMMITTED is enough for openSqlStore: its commit is one
 * statement that checks every version it read (locking those it does not write), and it
 * retries on conflicts, serialization failures and deadlocks.
 */
export async function openPostgres(url: string, options: PostgresOptions = {}): Promise<SqlClient & { close(): Promise<void> }> {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, types });
  // An idle connection that breaks (server restart) is dropped from the pool; the error
  // surfaces on the next query instead of crashing the process as an unhandled 'error' event.
  pool.on('error', () => {});

  const wrap = (q: pg.Pool | pg.PoolClient, inTransaction: boolean): SqlClient => ({
    async query<R>(sql: string, params?: readonly unknown[]) {
      const result = await q.query(sql, params as unknown[] | undefined);
      return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
    },
    // Inside a transaction, a nested one is the same transaction (as with PGlite).
    transaction: (fn) => (inTransaction ? fn(wrap(q, true)) : inPooledTransaction(pool, fn)),
    async exec(sql) {
      // Without parameters node-postgres uses the simple protocol, which runs several statements.
      await q.query(sql);
    },
  });

  async function inPooledTransaction<T>(p: pg.Pool, fn: (tx: SqlClient) => Promise<T>): Promise<T> {
    const connection = await p.connect();
    let broken: Error | undefined;
    try {
      await connection.query('begin');
      const result = await fn(wrap(connection, true));
      await connection.query('commit');
      return result;
    } catch (error) {
      try {
        await connection.query('rollback');
      } catch (rollbackError) {
        // The connection is unusable (it died mid-transaction); the pool must not reuse it.
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      }
      throw error;
    } finally {
      connection.release(broken);
    }
  }

  // Fail at start-up, with the driver's message, if the server cannot be reached.
  try {
    await pool.query('select 1');
  } catch (error) {
    await pool.end();
    throw error;
  }
  return {
    ...wrap(pool, false),
    async close() {
      await pool.end();
    },
  };
}
