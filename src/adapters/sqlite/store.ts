import { fdatasync, fsyncSync, openSync, closeSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import type { Envelope } from '../../core/message.ts';
import type { Commit, Snapshot, Store } from '../../ports/store.ts';
import { deliveredBatcher } from '../storeKit.ts';

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

/** Most rows one statement loop touches before the store lets other work run (pruning). */
const SLICE = 10_000;

type Queued = { run: () => unknown; resolve: (value: unknown) => void; reject: (error: unknown) => void };

/** A store that owns its SQLite connection: `close` closes it. */
export type SqliteStore = Store & { readonly file: string };

/**
 * The store on SQLite (`node:sqlite`, built into Node): one database file per service, in WAL
 * mode. A transaction is answered only once it is on disk: its WAL frames fsynced.
 *
 * node:sqlite is synchronous, and so is `decide`: a whole transaction — read the documents and
 * the inbox, decide, write documents, inbox marks and outbox, drop cancelled timers — runs
 * without yielding, holding the database's write lock from the first read, so nothing can
 * change what it read before it commits: the versions PostgreSQL and Redis check at commit
 * cannot differ here, and no transaction ever has to be retried.
 *
 * Group commit, as databases do it: the transactions asked for while the event loop runs one
 * phase (the requests and deliveries of one poll) are queued and run together at its end, each
 * in a savepoint of one `BEGIN IMMEDIATE … COMMIT` (a throw rolls back its own savepoint; the
 * others go on), each seeing what the earlier ones wrote. The commit writes the WAL without
 * syncing it (`synchronous=NORMAL`); the WAL is then fdatasynced on a libuv thread while the
 * main thread goes on, and the group is answered when that sync is done. Queries wait for the
 * syncs in flight too, so nobody sees what is not yet on disk. (`synchronous=FULL` instead
 * fsyncs inside every commit, on the main thread: 1 to 1.5 ms a commit, a third of that
 * thread's time under load.) SQLite syncs the WAL before a checkpoint and the database after
 * one itself.
 */
export function openSqliteStore(file: string, service: string): SqliteStore {
  // A busy database (another connection in a write transaction) is waited for, up to 5 s.
  const db = new DatabaseSync(file, { timeout: 5000 });
  db.exec('pragma journal_mode = wal; pragma synchronous = normal; pragma journal_size_limit = 67108864; pragma wal_autocheckpoint = 10000');
  migrate(db);
  // Our own handle on the WAL, to sync it (SQLite keeps it while the database is open).
  const wal = openSync(`${file}-wal`, 'a');
  fsyncSync(wal);

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

  const disk = sharedSyncs(() => new Promise<void>((resolve, reject) => fdatasync(wal, (error) => (error ? reject(error) : resolve()))));
  let queue: Queued[] = [];

  /** Runs `fn` in a write transaction of the next group; answers once it is on disk. */
  function inTransaction<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (queue.length === 0) setImmediate(commitQueued);
      queue.push({ run: fn, resolve: resolve as (value: unknown) => void, reject });
    });
  }

  function commitQueued(): void {
    const group = queue;
    queue = [];
    if (group.length === 0) return;
    const ran: (readonly [Queued, unknown])[] = [];
    try {
      db.exec('begin immediate');
      for (const item of group) {
        db.exec('savepoint one');
        try {
          ran.push([item, item.run()]);
          db.exec('release one');
        } catch (error) {
          db.exec('rollback to one; release one');
          item.reject(error);
        }
      }
      db.exec('commit');
    } catch (error) {
      if (db.isOpen && db.isTransaction) db.exec('rollback');
      // None of the group committed (a promise already settled ignores this).
      for (const item of group) item.reject(error);
      return;
    }
    disk.sync().then(
      () => { for (const [item, result] of ran) item.resolve(result); },
      (error: unknown) => { for (const [item] of ran) item.reject(error); },
    );
  }

  /** Runs a query once what it may see is on disk. */
  async function query<T>(fn: () => T): Promise<T> {
    const result = fn();
    await disk.synced();
    return result;
  }

  const delivered = deliveredBatcher((ids) =>
    inTransaction(() => {
      for (const id of ids) q.unsend.run(id);
    }));

  function transact<T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>): Promise<T> {
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

    transact,

    read: (keys) => query(() => {
      const docs = new Map<string, unknown>();
      for (const key of keys) {
        const row = q.doc.get(key) as { doc: string } | undefined;
        if (row) docs.set(key, JSON.parse(row.doc));
      }
      return docs;
    }),

    scan: (prefix, limit, after = '') => query(() => {
      const page: (readonly [string, unknown])[] = [];
      if (limit <= 0) return page;
      for (const row of q.scan.iterate(prefix, after) as Iterable<{ key: string; doc: string }>) {
        if (!row.key.startsWith(prefix)) break;
        page.push([row.key, JSON.parse(row.doc)]);
        if (page.length >= limit) break;
      }
      return page;
    }),

    outbox: () => query(() => (q.outbox.all() as { envelope: string }[]).map((row) => JSON.parse(row.envelope) as Envelope)),

    delivered: (ids) => delivered.add(ids),

    deadLetter: async (message, consumer, error) => {
      await inTransaction(() => q.deadLetter.run(message.id, consumer, JSON.stringify(message), error, Date.now()));
    },

    deadLetters: (consumer, max, id) => query(() => {
      const rows = q.deadLetters.all(consumer, id ?? null, id ?? null, max) as { consumer: string; envelope: string; error: string; at: number }[];
      return rows.map((r) => ({ consumer: r.consumer, message: JSON.parse(r.envelope) as Envelope, error: r.error, at: r.at }));
    }),

    dropDeadLetter: (consumer, id) => inTransaction(() => Number(q.dropDeadLetter.run(consumer, id).changes) > 0),

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
      await delivered.drain();
      commitQueued();
      await disk.synced();
      db.close();
      closeSync(wal);
    },
  };
}

/**
 * Shares syncs of a file among those who wait for one (`run`: one fdatasync). `sync()`
 * resolves once everything written before it was called is on disk: a call while a sync runs
 * waits for the next one, which serves every call made meanwhile. `synced()` resolves once the
 * syncs asked for so far are done.
 */
export function sharedSyncs(run: () => Promise<void>) {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  function sync(): Promise<void> {
    if (!running) {
      running = run().finally(() => { running = undefined; });
      return running;
    }
    next ??= running.catch(() => undefined).then(() => {
      next = undefined;
      return sync();
    });
    return next;
  }
  return {
    sync,
    async synced(): Promise<void> {
      await next;
      await running;
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
