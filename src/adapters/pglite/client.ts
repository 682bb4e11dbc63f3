import { mkdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { SqlClient } from '../sql/client.ts';

type Reply = Readonly<{ id: number; rows: unknown[]; rowCount: number } | { id: number; error: { message: string; code?: string } }>;

class SqlError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code: string | undefined) {
    super(message);
    this.code = code;
  }
}

/**
 * The embedded PostgreSQL (PGlite, WebAssembly) with its data in `dataDir`, running in a
 * worker thread of this process. Transactions are exclusive: while one is open, every other
 * statement on this database waits.
 */
export async function openPglite(dataDir: string): Promise<SqlClient & { close(): Promise<void> }> {
  mkdirSync(dataDir, { recursive: true });
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: { dataDir } });
  const pending = new Map<number, (reply: Reply) => void>();
  let nextId = 1;
  let failure: Error | undefined;

  await new Promise<void>((resolve, reject) => {
    const onMessage = (message: { ready?: boolean }) => {
      if (!message.ready) return;
      worker.off('error', reject);
      resolve();
    };
    worker.once('message', onMessage);
    worker.once('error', reject);
  });
  worker.on('message', (reply: Reply) => {
    pending.get(reply.id)?.(reply);
    pending.delete(reply.id);
  });
  worker.on('error', (error) => {
    failure = error;
    for (const resolve of pending.values()) resolve({ id: 0, error: { message: `PGlite worker failed: ${error.message}` } });
    pending.clear();
  });

  function send(request: { sql: string; params?: readonly unknown[]; exec?: boolean } | { close: true }): Promise<{ rows: never[]; rowCount: number }> {
    if (failure) return Promise.reject(failure);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, (reply) => ('error' in reply ? reject(new SqlError(reply.error.message, reply.error.code)) : resolve({ rows: reply.rows as never[], rowCount: reply.rowCount })));
      worker.postMessage({ id, ...request });
    });
  }

  // One transaction at a time; statements outside transactions wait for it too.
  let lock: Promise<void> = Promise.resolve();
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = lock.then(fn);
    lock = run.then(() => undefined, () => undefined);
    return run;
  }

  // PGlite runs no autovacuum: reclaim dead rows (outbox and inbox churn, document updates) now and then.
  const vacuum = setInterval(() => {
    exclusive(() => send({ sql: 'vacuum' })).catch(() => undefined);
  }, 60_000);
  vacuum.unref();

  const inTransaction: SqlClient = {
    query: (sql, params) => send(params === undefined ? { sql } : { sql, params }),
    transaction: (fn) => fn(inTransaction),
    exec: async (sql) => {
      await send({ sql, exec: true });
    },
  };

  return {
    query: (sql, params) => exclusive(() => inTransaction.query(sql, params)),
    exec: (sql) => exclusive(() => inTransaction.exec(sql)),
    transaction: (fn) => exclusive(async () => {
      // The worker runs requests in order: no need to wait for BEGIN before the first statement.
      const begun = send({ sql: 'begin' });
      begun.catch(() => undefined);
      try {
        const result = await fn(inTransaction);
        await begun;
        await send({ sql: 'commit' });
        return result;
      } catch (error) {
        await send({ sql: 'rollback' }).catch(() => undefined);
        throw error;
      }
    }),
    async close() {
      clearInterval(vacuum);
      await exclusive(() => send({ close: true }));
      await worker.terminate();
    },
  };
}
