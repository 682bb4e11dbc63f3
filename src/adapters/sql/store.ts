import type { Envelope } from '../../core/message.ts';
import type { Commit, Snapshot, Store } from '../../ports/store.ts';
import { deliveredBatcher, untilCommitted } from '../storeKit.ts';
import { migrate } from './migrations.ts';

/** The little of a PostgreSQL driver the store needs; PGlite and node-postgres both fit. */
export interface SqlClient {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: R[]; rowCount: number }>;
  transaction<T>(fn: (tx: SqlClient) => Promise<T>): Promise<T>;
  /** Runs several statements (migrations). */
  exec(sql: string): Promise<void>;
}

class Conflict extends Error {}

/**
 * The store on PostgreSQL SQL: each service its own schema with `docs`, `inbox`, `outbox`
 * and `dead_letters`. Documents read in a transaction are locked (`FOR UPDATE`) and every
 * write checks the version it read, so no update is ever lost, whatever runs at once.
 */
export async function openSqlStore(client: SqlClient, service: string): Promise<Store> {
  if (!/^[a-z][a-z0-9_]*$/.test(service)) throw new Error(`Bad service name for a schema: ${service}`);
  const s = service;
  await migrate(client, s);
  const delivered = deliveredBatcher(async (ids) => {
    await client.query(`delete from ${s}.outbox where id = any($1::text[])`, [ids]);
  });

  async function attempt<T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>): Promise<T> {
    return client.transaction(async (tx) => {
      // One round trip: the documents (locked) and which messages were consumed already.
      const { rows } = await tx.query<{ key: string; version: number | null; doc: unknown }>(
        `with d as (select key, version, doc from ${s}.docs where key = any($1::text[]) order by key for update)
         select key, version, doc from d
         union all select id, null, null from ${s}.inbox where id = any($2::text[])`,
        [keys, messageIds],
      );
      const versions = new Map<string, number>();
      const docs = new Map<string, unknown>();
      const seen = new Set<string>();
      for (const row of rows) {
        if (row.version === null) seen.add(row.key);
        else {
          versions.set(row.key, row.version);
          docs.set(row.key, row.doc);
        }
      }
      const commit = decide({ docs, seen });
      await write(tx, s, commit, versions, new Set(keys));
      return commit.result;
    });
  }

  return {
    service,
    sendsOnCommit: false,

    transact: <T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>) => untilCommitted<T>(service, async () => {
      try {
        return { committed: true, result: await attempt(keys, messageIds, decide) };
      } catch (error) {
        if (error instanceof Conflict || isSerializationFailure(error)) return { committed: false };
        throw error;
      }
    }),

    async read(keys) {
      const { rows } = await client.query<{ key: string; doc: unknown }>(`select key, doc from ${s}.docs where key = any($1::text[])`, [keys]);
      return new Map(rows.map((r) => [r.key, r.doc]));
    },

    async scan(prefix, limit, after = '') {
      const { rows } = await client.query<{ key: string; doc: unknown }>(
        `select key, doc from ${s}.docs where starts_with(key, $1) and key > $2 order by key limit $3`,
        [prefix, after, limit],
      );
      return rows.map((r) => [r.key, r.doc] as const);
    },

    async outbox() {
      const { rows } = await client.query<{ envelope: Envelope }>(`select envelope from ${s}.outbox order by seq`);
      return rows.map((r) => r.envelope);
    },

    delivered: (ids) => delivered.add(ids),

    async deadLetter(message, consumer, error) {
      await client.transaction(async (tx) => {
        await tx.query(
          `insert into ${s}.dead_letters (id, consumer, envelope, error) values ($1, $2, $3::jsonb, $4) on conflict do nothing`,
          [message.id, consumer, JSON.stringify(message), error],
        );
      });
    },

    async pruneInbox(olderThanMs) {
      const { rowCount } = await client.query(`delete from ${s}.inbox where at < now() - make_interval(secs => $1::double precision / 1000)`, [olderThanMs]);
      return rowCount;
    },

    async close() {
      await delivered.drain();
    },
  };
}

/**
 * Writes a commit's documents, inbox marks and outbox messages in one statement; throws
 * Conflict (rolling the transaction back) if a document read changed or a message was
 * consumed meanwhile.
 */
async function write<T>(tx: SqlClient, s: string, commit: Commit<T>, versions: ReadonlyMap<string, number>, read: ReadonlySet<string>): Promise<void> {
  const updates: { key: string; version: number; doc: unknown }[] = [];
  const inserts: { key: string; doc: unknown }[] = [];
  const upserts: { key: string; doc: unknown }[] = [];
  const deletes: { key: string; version: number }[] = [];
  const blindDeletes: string[] = [];
  for (const [key, doc] of commit.writes) {
    const version = versions.get(key);
    if (doc === null) {
      if (version !== undefined) deletes.push({ key, version });
      else if (!read.has(key)) blindDeletes.push(key);
    } else if (version !== undefined) updates.push({ key, version, doc });
    else if (read.has(key)) inserts.push({ key, doc });
    else upserts.push({ key, doc });
  }
  // The document lists touch disjoint keys, so one statement can apply them all.
  const { rows } = await tx.query<{ updated: number; inserted: number; deleted: number; consumed: number }>(
    `with
       upd as (update ${s}.docs d set doc = x.doc, version = x.version + 1
               from jsonb_to_recordset($1::jsonb) as x(key text, version int, doc jsonb)
               where d.key = x.key and d.version = x.version returning 1),
       ins as (insert into ${s}.docs (key, version, doc) select key, 1, doc from jsonb_to_recordset($2::jsonb) as x(key text, doc jsonb)
               on conflict (key) do nothing returning 1),
       ups as (insert into ${s}.docs (key, version, doc) select key, 1, doc from jsonb_to_recordset($3::jsonb) as x(key text, doc jsonb)
               on conflict (key) do update set doc = excluded.doc, version = ${s}.docs.version + 1 returning 1),
       del as (delete from ${s}.docs d using jsonb_to_recordset($4::jsonb) as x(key text, version int)
               where d.key = x.key and d.version = x.version returning 1),
       inb as (insert into ${s}.inbox (id) select unnest($5::text[]) on conflict do nothing returning 1),
       outb as (insert into ${s}.outbox (id, envelope) select x->>'id', x from jsonb_array_elements($6::jsonb) as x
               on conflict (id) do nothing returning 1),
       can as (delete from ${s}.outbox where id = any($7::text[]) returning 1),
       bdel as (delete from ${s}.docs where key = any($8::text[]) returning 1)
     select (select count(*) from upd)::int as updated, (select count(*) from ins)::int as inserted,
            (select count(*) from del)::int as deleted, (select count(*) from inb)::int as consumed,
            (select count(*) from ups)::int + (select count(*) from outb)::int + (select count(*) from can)::int
              + (select count(*) from bdel)::int as other`,
    [
      JSON.stringify(updates), JSON.stringify(inserts), JSON.stringify(upserts), JSON.stringify(deletes),
      commit.consumed, JSON.stringify(commit.outbox), commit.cancel, blindDeletes,
    ],
  );
  const counts = rows[0];
  if (!counts || counts.updated !== updates.length || counts.inserted !== inserts.length
    || counts.deleted !== deletes.length || counts.consumed !== commit.consumed.length) {
    throw new Conflict();
  }
}

/** PostgreSQL's serialization failure and deadlock codes: retrying the transaction is right. */
function isSerializationFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40001' || code === '40P01';
}
