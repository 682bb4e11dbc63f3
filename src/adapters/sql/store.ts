import type { Envelope } from '../../core/message.ts';
import type { Commit, Snapshot, Store } from '../../ports/store.ts';
import { DocCache, deliveredBatcher, trySnapshot, untilCommitted, type Tries } from '../storeKit.ts';
import type { SqlClient } from './client.ts';
import { migrate } from './migrations.ts';

// Who opens a store on their own client (the conformance suite) finds the client's type here too.
export type { SqlClient };

/**
 * The store on PostgreSQL SQL: each service its own schema with `docs`, `inbox`, `outbox`
 * and `dead_letters`. A transaction takes two round trips: it reads without locking, then
 * commits everything in one statement that checks every version it read (locking the
 * documents it only read until it ends) and fails as a whole if any changed, so no update is
 * ever lost, whatever runs at once; the store then runs it again on fresh data.
 */
export type SqlStoreOptions = Readonly<{
  /** Documents kept in memory between transactions (`DocCache`); 0 keeps none. */
  cacheDocs?: number;
}>;

export async function openSqlStore(client: SqlClient, service: string, options: SqlStoreOptions = {}): Promise<Store> {
  if (!/^[a-z][a-z0-9_]*$/.test(service)) throw new Error(`Bad service name for a schema: ${service}`);
  const s = service;
  await migrate(client, s);
  const delivered = deliveredBatcher(async (ids) => {
    await client.query(`delete from ${s}.outbox where id = any($1::text[])`, [ids]);
  });
  const cache = new DocCache<number>(options.cacheDocs ?? 0);

  /** What the store holds of `keys` now, and which of `messageIds` were consumed, in one round trip (nothing locked). */
  async function snapshot(keys: readonly string[], messageIds: readonly string[]) {
    // A part with nothing to look up is left out: PostgreSQL may plan `= any('{}')` as a scan of the whole table.
    const parts: string[] = [];
    const params: (readonly string[])[] = [];
    if (keys.length > 0) parts.push(`select key, version, doc::text as doc from ${s}.docs where key = any($${params.push(keys)}::text[])`);
    if (messageIds.length > 0) parts.push(`select id as key, null::int as version, null::text as doc from ${s}.inbox where id = any($${params.push(messageIds)}::text[])`);
    const { rows } = parts.length === 0
      ? { rows: [] }
      : await client.query<{ key: string; version: number | null; doc: string | null }>(parts.join(' union all '), params);
    const versions = new Map<string, number>();
    const docs = new Map<string, unknown>();
    const seen = new Set<string>();
    for (const row of rows) {
      if (row.version === null) seen.add(row.key);
      else {
        versions.set(row.key, row.version);
        docs.set(row.key, JSON.parse(row.doc!));
        cache.remember(row.key, row.version, row.doc!);
      }
    }
    return { docs, versions, seen };
  }

  /** One try of a transaction (`trySnapshot`: the first may take its documents from the cache). */
  async function attempt<T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>, tries: Tries<number>): Promise<T> {
    const { docs, versions, seen, cached } = await trySnapshot(cache, keys, tries, () => snapshot(keys, messageIds));
    const commit = decide({ docs, seen });
    // A second round trip (the only one when cached) commits it, checking what was read, as one statement.
    const written = await write(client, s, commit, versions, new Set(keys), cached);
    for (const { key, version, json } of written.kept) cache.remember(key, version, json);
    cache.forget(written.unknown);
    return commit.result;
  }

  return {
    service,
    sendsOnCommit: false,

    transact: <T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>) => {
      const tries: Tries<number> = { n: 0, cached: undefined };
      return untilCommitted<T>(service, async (n) => {
        try {
          return { committed: true, result: await attempt(keys, messageIds, decide, Object.assign(tries, { n })) };
        } catch (error) {
          // Read afresh and lost anyway: a race. From the cache: the next try's read tells (`settle`);
          // and a decision on a wrong guess may be refused outright (a counter of a document
          // taken to be missing is NaN, whose JSON is null), so it is made again on what is there.
          if (tries.cached === undefined ? !isSerializationFailure(error) : !isSerializationFailure(error) && !isRefusedData(error)) throw error;
          if (tries.cached === undefined) cache.contended(keys);
          return { committed: false };
        }
      });
    },

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
          `insert into ${s}.dead_letters (id, consumer, envelope, error) values ($1, $2, $3::jsonb, $4)
             on conflict (id, consumer) do update set error = excluded.error, at = now()`,
          [message.id, consumer, JSON.stringify(message), error],
        );
      });
    },

    async deadLetters(consumer, max, id) {
      const { rows } = await client.query<{ consumer: string; envelope: Envelope; error: string; at: number }>(
        `select consumer, envelope, error, (extract(epoch from at) * 1000)::float8 as at from ${s}.dead_letters
          where consumer = $1 and ($2::text is null or id = $2) order by at, id limit $3`,
        [consumer, id ?? null, max],
      );
      return rows.map((r) => ({ consumer: r.consumer, message: r.envelope, error: r.error, at: Math.round(Number(r.at)) }));
    },

    async dropDeadLetter(consumer, id) {
      const { rowCount } = await client.query(`delete from ${s}.dead_letters where consumer = $1 and id = $2`, [consumer, id]);
      return rowCount > 0;
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
 * Writes a commit's documents, inbox marks and outbox messages in one statement, which is a
 * transaction of its own. It fails as a whole, with a serialization failure, if a document
 * read changed or a message was consumed meanwhile. Documents read and not written are
 * locked (`FOR SHARE`) while it runs, so they cannot change before it commits; one read
 * missing and not written is checked to be missing still as the statement starts (no row to
 * lock: an insert committing while the statement runs goes unseen, as under any row locking).
 */
async function write<T>(client: SqlClient, s: string, commit: Commit<T>, versions: ReadonlyMap<string, number>, read: ReadonlySet<string>, cached: boolean): Promise<Written> {
  // Nothing to write: nothing to check either, unless the versions came from the cache rather than a read.
  if (commit.writes.size + commit.consumed.length + commit.outbox.length + commit.cancel.length === 0 && !cached) return { kept: [], unknown: [] };
  const updates: { key: string; version: number; json: string }[] = [];
  const inserts: { key: string; json: string }[] = [];
  const upserts: { key: string; json: string }[] = [];
  const deletes: { key: string; version: number }[] = [];
  const blindDeletes: string[] = [];
  for (const [key, doc] of commit.writes) {
    const version = versions.get(key);
    if (doc === null) {
      if (version !== undefined) deletes.push({ key, version });
      else if (!read.has(key)) blindDeletes.push(key);
    } else if (version !== undefined) updates.push({ key, version, json: json(doc, key) });
    else if (read.has(key)) inserts.push({ key, json: json(doc, key) });
    else upserts.push({ key, json: json(doc, key) });
  }
  const unchanged = [...versions].filter(([key]) => !commit.writes.has(key)).map(([key, version]) => ({ key, version }));
  // Read missing and not written, or deleted (a delete of nothing does nothing, so the key must still be missing).
  const stillMissing = [...read].filter((key) => !versions.has(key) && (commit.writes.get(key) ?? null) === null);
  // Keys in one order, so that two commits locking the same documents do not deadlock.
  const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  updates.sort(byKey);
  unchanged.sort(byKey);
  // One statement applies every list (they touch disjoint keys). Only the parts with something
  // to do are in it: planning a part costs about as much as running it. PostgreSQL runs every
  // part to completion whether or not the statement reads it; the checks count the rows of
  // those that must touch exactly one row per item.
  const params: unknown[] = [];
  const $ = (value: unknown) => `$${params.push(value)}`;
  const parts: string[] = [];
  const checks: string[] = [];
  const part = (name: string, sql: string, expected?: number) => {
    if (expected === undefined) parts.push(`${name} as (${sql})`);
    else {
      parts.push(`${name} as (${sql} returning 1)`);
      checks.push(`(select count(*) from ${name}) = ${expected}`);
    }
  };
  if (unchanged.length > 0) {
    // A locking select has no `returning`: its rows are counted as they are.
    parts.push(`kept as (select 1 from ${s}.docs d join jsonb_to_recordset(${$(JSON.stringify(unchanged))}::jsonb) as x(key text, version int)
      on d.key = x.key and d.version = x.version for share of d)`);
    checks.push(`(select count(*) from kept) = ${unchanged.length}`);
  }
  if (updates.length > 0) {
    part('upd', `update ${s}.docs d set doc = x.doc, version = x.version + 1
      from jsonb_to_recordset(${$(records(updates))}::jsonb) as x(key text, version int, doc jsonb)
      where d.key = x.key and d.version = x.version`, updates.length);
  }
  if (inserts.length > 0) {
    part('ins', `insert into ${s}.docs (key, version, doc) select key, 1, doc from jsonb_to_recordset(${$(records(inserts))}::jsonb) as x(key text, doc jsonb)
      on conflict (key) do nothing`, inserts.length);
  }
  if (upserts.length > 0) {
    part('ups', `insert into ${s}.docs (key, version, doc) select key, 1, doc from jsonb_to_recordset(${$(records(upserts))}::jsonb) as x(key text, doc jsonb)
      on conflict (key) do update set doc = excluded.doc, version = ${s}.docs.version + 1`);
  }
  if (deletes.length > 0) {
    part('del', `delete from ${s}.docs d using jsonb_to_recordset(${$(JSON.stringify(deletes))}::jsonb) as x(key text, version int)
      where d.key = x.key and d.version = x.version`, deletes.length);
  }
  if (blindDeletes.length > 0) part('bdel', `delete from ${s}.docs where key = any(${$(blindDeletes)}::text[])`);
  if (commit.consumed.length > 0) part('inb', `insert into ${s}.inbox (id) select unnest(${$(commit.consumed)}::text[]) on conflict do nothing`, commit.consumed.length);
  if (commit.outbox.length > 0) {
    part('outb', `insert into ${s}.outbox (id, envelope) select x->>'id', x from jsonb_array_elements(${$(JSON.stringify(commit.outbox))}::jsonb) as x
      on conflict (id) do nothing`);
  }
  if (commit.cancel.length > 0) part('can', `delete from ${s}.outbox where id = any(${$(commit.cancel)}::text[])`);
  if (stillMissing.length > 0) checks.push(`not exists (select 1 from ${s}.docs where key = any(${$(stillMissing)}::text[]))`);
  await client.query(
    `${parts.length > 0 ? `with ${parts.join(',\n')}` : ''}
     select ${s}.unless_changed(${checks.join(' and ') || 'true'})`,
    params,
  );
  // What the documents are now: an update's version is one more, an insert's 1; an upsert's is not known here.
  return {
    kept: [...updates.map(({ key, version, json }) => ({ key, version: version + 1, json })), ...inserts.map(({ key, json }) => ({ key, version: 1, json }))],
    unknown: [...upserts.map((u) => u.key), ...deletes.map((d) => d.key), ...blindDeletes],
  };
}

/** What a commit left in the store: documents whose version it knows, and keys it does not. */
type Written = Readonly<{ kept: readonly Readonly<{ key: string; version: number; json: string }>[]; unknown: readonly string[] }>;

function json(doc: unknown, key: string): string {
  const text = JSON.stringify(doc) as string | undefined;
  if (text === undefined) throw new TypeError(`Store: document ${key} has no JSON form`);
  return text;
}

/** A JSON array of records whose `json` is already a document's JSON, as `doc`. */
function records(items: readonly Readonly<{ key: string; version?: number; json: string }>[]): string {
  return `[${items.map(({ key, version, json }) => `{"key":${JSON.stringify(key)},${version === undefined ? '' : `"version":${version},`}"doc":${json}}`).join(',')}]`;
}

/** PostgreSQL refused the statement's data (classes 22 and 23: bad value, constraint): it changed nothing. */
function isRefusedData(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}

/** PostgreSQL's serialization failure and deadlock codes: retrying the transaction is right. */
function isSerializationFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '40001' || code === '40P01';
}
