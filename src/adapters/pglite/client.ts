import { PGlite, type Transaction } from '@electric-sql/pglite';
import { mkdirSync } from 'node:fs';
import type { SqlClient } from '../sql/store.ts';

/**
 * The embedded PostgreSQL (PGlite, WebAssembly, in this process), with its data in `dataDir`.
 * One instance serves every service of the process, each in its own schema.
 */
export async function openPglite(dataDir: string): Promise<SqlClient & { close(): Promise<void> }> {
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create({ dataDir });
  const wrap = (q: PGlite | Transaction): SqlClient => ({
    async query(sql, params) {
      const result = await q.query<never>(sql, params as unknown[] | undefined);
      return { rows: result.rows, rowCount: result.affectedRows ?? 0 };
    },
    // Inside a transaction, a nested one is the same transaction.
    transaction: (fn) => (q instanceof PGlite ? q.transaction((tx) => fn(wrap(tx))) : fn(wrap(q))),
    async exec(sql) {
      await q.exec(sql);
    },
  });
  const client = wrap(db);
  return {
    ...client,
    async close() {
      await db.close();
    },
  };
}
