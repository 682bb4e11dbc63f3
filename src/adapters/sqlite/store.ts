import { DatabaseSync } from 'node:sqlite';
import type { Envelope } from '../../core/message.ts';
import type { Commit, Snapshot, Store } from '../../ports/store.ts';

/**
 * Versioned migrations of a service's database, applied in order at start-up; each runs once,
 * in a transaction, and is recorded in `migrations`. Keys and ids compare as bytes (BINARY),
 * the order PostgreSQL's "C" collation and Redis keep too.
 */
const migrations: readonly string[] = [
  `
    create table docs (key text primary key, doc text not null) without rowid;
    create table inbox (id text primary key, at integer not null) without rowid;
    create index inbox_at on inbox (at);
    create table outbox (seq integer primary key, id text not null unique, envelope text not null);
    create table dead_letters (id text not null, consumer text not null, envelope text not null, error text not null, at integer not null, primary key (id, consumer)) without rowid;
  `,
];

/** How long delivered messages wait for a transaction to leave the outbox with, before one of their own. */
const DROP_IDLE_MS = 100;

/** Most rows one statement loop touches before the store lets other work run (pruning). */
const SLICE = 10_000;

/** A store that owns its SQLite connection: `close` closes it. */
export type SqliteStore = Store & { readonly file: string };

/**
 * The store on SQLite (`node:sqlite`, built into Node): one database file per service, in WAL
 * mode with `synchronous=FULL`, so a commit is on disk (the WAL fsynced) before it returns.
 *
 * node:sqlite is synchronous, and so is `decide`: a whole transaction — read the documents and
 * the inbox, decide, write documents, inbox marks and outbox, drop cancelled timers — runs as
 * one `BEGIN IMMEDIATE … COMMIT` without yielding. It holds the database's write lock from the
 * first read, so nothing can change what it read before it commits: the versions PostgreSQL
 * and Redis check at commit cannot differ here, and no transaction ever has to be retried.
 * It runs on the main thread, and under load that thread is busy computing, not waiting for
 * fsyncs (CPU time per checkout is its wall time). Two ways to take the fsyncs off it were
 * tried and measured side by side (README), and dropped: a connection per store in a worker
 * thread (8–11% more checkouts/s, but 60 MB more idle and 250–450 MB more under load), and
 * group commit with the WAL synced on a libuv thread (no more checkouts/s, 20% more CPU).
 */
export function openSqliteStore(file: string, service: string): SqliteStore {
  // A busy database (another connection in a write transaction) is waited for, up to 5 s.
  const db = new DatabaseSync(file, { timeout: 5000 });
  // The WAL is copied into the database every 10,000 pages (40 MB) rather than SQLite's 1,000:
  // a page written many times between two checkpoints is copied once (15% more checkouts/s, README).
  db.exec('pragma journal_mode = wal; pragma synchronous = full; pragma journal_size_limit = 67108864; pragma wal_autocheckpoint = 10000');
  migrate(db);

  const q = {
    doc: db.prepare('select doc from docs where key = ?'),
    seen: db.prepare('select 1 from inbox where id = ?'),
    put: db.prepare('insert into docs (key, doc) values (?, ?) on conflict (key) do update set doc = excluded.doc'),
    drop: db.prepare('delete from docs where key = ?'),
    consume: db.prepare('insert into inbox (id, at) values (?, ?) on conflict do nothing'),
    send: db.prepare('insert into outbox (id, envelope) values (?, ?) on conflict do nothing'),
    unsend: db.prepare('delete from outbox where id = ?'),
    // From `from` on in key order; the caller stops at the first key without the prefix.
    scan: db.prepare('select key, doc from docs where key >= ? and key > ? order by key'),
    outbox: db.prepare('select envelope from outbox order by seq'),
    deadLetter: db.prepare('insert into dead_letters (id, consumer, envelope, error, at) values (?, ?, ?, ?, ?) on conflict (id, consumer) do update set error = excluded.error, at = excluded.at'),
    deadLetters: db.prepare('select consumer, envelope, error, at from dead_letters where consumer = ? and (? is null or id = ?) order by at, id limit ?'),
    dropDeadLetter: db.prepare('delete from dead_letters where consumer = ? and id = ?'),
    prune: db.prepare(`delete from inbox where id in (select id from inbox where at < ? limit ${SLICE})`),
  };

  // Delivered messages leave the outbox in the store's next transaction rather than in one of
  // their own (every commit is an fsync, and a third of them were these): under load that is
  // milliseconds later, and an idle store drops them after DROP_IDLE_MS. Until then `outbox()`
  // leaves them out; a crash before only means they are sent again (consumers deduplicate).
  let toDrop = new Set<string>();
  let dropTimer: NodeJS.Timeout | undefined;

  /** Runs `fn` in one write transaction, with the drops of delivered messages: all of it commits, or none of it. */
  function inTransaction<T>(fn: () => T): T {
    const dropping = toDrop;
    toDrop = new Set();
    clearTimeout(dropTimer);
    dropTimer = undefined;
    db.exec('begin immediate');
    try {
      for (const id of dropping) q.unsend.run(id);
      const result = fn();
      db.exec('commit');
      return result;
    } catch (error) {
      if (db.isTransaction) db.exec('rollback');
      for (const id of dropping) toDrop.add(id);
      throw error;
    }
  }

  const dropDelivered = () => {
    if (toDrop.size === 0) return;
    try {
      inTransaction(() => undefined);
    } catch {
      // Still to drop (inTransaction put them back): the next transaction takes them along.
    }
  };

  function transact<T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>): T {
    return inTransaction(() => {
      const docs = new Map<string, unknown>();
      for (const key of keys) {
        const row = q.doc.get(key) as { doc: string } | undefined;
        if (row) docs.set(key, JSON.parse(row.doc));
      }
      const seen = new Set<string>();
      for (const id of messageIds) if (q.seen.get(id)) seen.add(id);
      const commit = decide({ docs, seen });
      for (const [key, doc] of commit.writes) {
        if (doc === null) q.drop.run(key);
        else q.put.run(key, JSON.stringify(doc));
      }
      const now = Date.now();
      for (const id of commit.consumed) q.consume.run(id, now);
      for (const message of commit.outbox) q.send.run(message.id, JSON.stringify(message));
      for (const id of commit.cancel) q.unsend.run(id);
      return commit.result;
    });
  }

  let closed = false;
  return {
    service,
    file,
    sendsOnCommit: false,

    // Async for the port: a throw (in `decide` or in SQLite) becomes a rejection.
    transact: async (keys, messageIds, decide) => transact(keys, messageIds, decide),

    async read(keys) {
      const docs = new Map<string, unknown>();
      for (const key of keys) {
        const row = q.doc.get(key) as { doc: string } | undefined;
        if (row) docs.set(key, JSON.parse(row.doc));
      }
      return docs;
    },

    async scan(prefix, limit, after = '') {
      const page: (readonly [string, unknown])[] = [];
      if (limit <= 0) return page;
      for (const row of q.scan.iterate(prefix, after) as Iterable<{ key: string; doc: string }>) {
        if (!row.key.startsWith(prefix)) break;
        page.push([row.key, JSON.parse(row.doc)]);
        if (page.length >= limit) break;
      }
      return page;
    },

    async outbox() {
      return (q.outbox.all() as { envelope: string }[]).map((row) => JSON.parse(row.envelope) as Envelope).filter((m) => !toDrop.has(m.id));
    },

    async delivered(ids) {
      for (const id of ids) toDrop.add(id);
      dropTimer ??= setTimeout(dropDelivered, DROP_IDLE_MS).unref();
    },

    async deadLetter(message, consumer, error) {
      q.deadLetter.run(message.id, consumer, JSON.stringify(message), error, Date.now());
    },

    async deadLetters(consumer, max, id) {
      const rows = q.deadLetters.all(consumer, id ?? null, id ?? null, max) as { consumer: string; envelope: string; error: string; at: number }[];
      return rows.map((r) => ({ consumer: r.consumer, message: JSON.parse(r.envelope) as Envelope, error: r.error, at: r.at }));
    },

    async dropDeadLetter(consumer, id) {
      return Number(q.dropDeadLetter.run(consumer, id).changes) > 0;
    },

    async pruneInbox(olderThanMs) {
      const before = Date.now() - olderThanMs;
      let pruned = 0;
      // In slices, letting other work run in between: a long-idle service may have many.
      for (;;) {
        const { changes } = q.prune.run(before);
        pruned += Number(changes);
        if (Number(changes) < SLICE) return pruned;
        await new Promise((resolve) => setImmediate(resolve));
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      dropDelivered();
      clearTimeout(dropTimer);
      db.close();
    },
  };
}

function migrate(db: DatabaseSync): void {
  db.exec('begin immediate');
  try {
    db.exec('create table if not exists migrations (version integer primary key, at integer not null)');
    const { version } = db.prepare('select coalesce(max(version), 0) as version from migrations').get() as { version: number };
    const record = db.prepare('insert into migrations (version, at) values (?, ?)');
    for (let v = version; v < migrations.length; v++) {
      db.exec(migrations[v] ?? '');
      record.run(v + 1, Date.now());
    }
    db.exec('commit');
  } catch (error) {
    if (db.isTransaction) db.exec('rollback');
    throw error;
  }
}
