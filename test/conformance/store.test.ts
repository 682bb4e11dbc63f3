import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { openPglite } from '../../src/adapters/pglite/client.ts';
import { openPostgres } from '../../src/adapters/postgres/client.ts';
import { openSqlStore, type SqlClient } from '../../src/adapters/sql/store.ts';
import type { Commit, Store } from '../../src/ports/store.ts';
import { envelope, randomName, sleep } from './helpers.ts';

const POSTGRES = process.env.ORDERLY_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432';

/** One database for a whole run; each test works in its own service (schema) of it. */
type Database = Readonly<{
  client(): Promise<SqlClient>;
  /** Another client on the same data, as a second replica of a service would have. */
  replica(): Promise<SqlClient>;
  /** Closes every client, as a process restart does; the data stays. */
  restart(): Promise<void>;
  destroy(): Promise<void>;
}>;

type Backend = Readonly<{ name: string; open(): Promise<Database> }>;

function commit<T = undefined>(parts: Partial<Commit<T>>): Commit<T> {
  return { writes: new Map(), consumed: [], outbox: [], cancel: [], result: undefined as T, ...parts };
}

const ids = (messages: readonly { id: string }[]) => messages.map((m) => m.id);

function storeConformance(backend: Backend): void {
  void describe(`Store on ${backend.name}`, () => {
    let db: Database;
    const opened: Store[] = [];
    before(async () => {
      db = await backend.open();
    });
    after(async () => {
      for (const store of opened) await store.close();
      await db.destroy();
    });

    async function open(service = randomName('s'), client?: SqlClient): Promise<Store> {
      const store = await openSqlStore(client ?? (await db.client()), service);
      opened.push(store);
      return store;
    }

    async function counter(store: Store, key: string): Promise<unknown> {
      return (await store.read([key])).get(key);
    }

    void test('commits documents, consumed ids and outbox together', async () => {
      const store = await open();
      const result = await store.transact(['a'], ['m1'], (snapshot) => {
        assert.equal(snapshot.docs.size, 0);
        assert.equal(snapshot.seen.size, 0);
        return commit({ writes: new Map<string, unknown>([['a', { n: 1 }], ['b', 'x']]), consumed: ['m1'], outbox: [envelope('e1'), envelope('e2')], result: 42 });
      });
      assert.equal(result, 42);
      assert.deepEqual(await store.read(['a', 'b', 'missing']), new Map<string, unknown>([['a', { n: 1 }], ['b', 'x']]));
      assert.deepEqual(ids(await store.outbox()), ['e1', 'e2']);
      const seen = await store.transact([], ['m1', 'm2'], (snapshot) => commit({ result: [...snapshot.seen] }));
      assert.deepEqual(seen, ['m1']);
    });

    void test('a throw inside decide commits nothing', async () => {
      const store = await open();
      await store.transact(['a'], [], () => commit({ writes: new Map([['a', 1]]), outbox: [envelope('e1')] }));
      const boom = new Error('boom');
      await assert.rejects(
        store.transact(['a'], ['m1'], () => {
          throw boom;
        }),
        (error) => error === boom,
      );
      assert.equal(await counter(store, 'a'), 1);
      assert.deepEqual(ids(await store.outbox()), ['e1']);
      assert.deepEqual(await store.transact([], ['m1'], (s) => commit({ result: s.seen.size })), 0);
    });

    void test('a statement failing late rolls back the writes before it', async () => {
      const store = await open();
      await store.transact(['a'], [], () => commit({ writes: new Map([['a', 1]]) }));
      // PostgreSQL refuses \u0000 in jsonb; the outbox is written last, after docs and inbox.
      const poisoned = envelope('bad', 'Tested', { payload: 'nul \u0000' });
      await assert.rejects(store.transact(['a'], ['m1'], () => commit({ writes: new Map([['a', 2], ['b', 3]]), consumed: ['m1'], outbox: [poisoned] })));
      assert.deepEqual(await store.read(['a', 'b']), new Map([['a', 1]]));
      assert.deepEqual(await store.outbox(), []);
      assert.deepEqual(await store.transact([], ['m1'], (s) => commit({ result: s.seen.size })), 0);
    });

    void test('concurrent transactions from two replicas lose no update and consume each message once', async () => {
      const service = randomName('s');
      // Both replicas start at once on a new schema: their migrations must not collide.
      const replicas = await Promise.all([open(service), db.replica().then((client) => open(service, client))]);
      const messages = Array.from({ length: 30 }, (_, i) => `m${i}`);
      let decisions = 0;
      // Every message reaches both replicas at once, as a redelivery to a competing consumer would.
      const runs = messages.flatMap((id) =>
        replicas.map((store) =>
          store.transact(['counter'], [id], (snapshot) => {
            decisions++;
            if (snapshot.seen.has(id)) return commit<number | undefined>({ result: undefined });
            const next = ((snapshot.docs.get('counter') as number | undefined) ?? 0) + 1;
            return commit({ writes: new Map([['counter', next]]), consumed: [id], result: next });
          }),
        ),
      );
      const results = await Promise.all(runs);
      const applied = results.filter((r) => r !== undefined).sort((x, y) => x - y);
      assert.deepEqual(applied, Array.from({ length: messages.length }, (_, i) => i + 1), 'each increment saw the one before it');
      assert.equal(await counter(replicas[0]!, 'counter'), messages.length);
      assert.ok(decisions >= runs.length);
    });

    void test('blind writes replace whatever is there; null deletes a read document', async () => {
      const store = await open();
      await store.transact(['x'], [], () => commit({ writes: new Map([['x', 1]]) }));
      await store.transact([], [], () => commit({ writes: new Map([['x', 2], ['y', 3]]) }));
      assert.deepEqual(await store.read(['x', 'y']), new Map([['x', 2], ['y', 3]]));
      await store.transact(['x'], [], () => commit({ writes: new Map([['x', null]]) }));
      assert.deepEqual(await store.read(['x', 'y']), new Map([['y', 3]]));
    });

    void test('null deletes a document that was not read', async () => {
      const store = await open();
      await store.transact([], [], () => commit({ writes: new Map([['y', 3]]) }));
      await store.transact([], [], () => commit({ writes: new Map([['y', null]]) }));
      assert.deepEqual(await store.read(['y']), new Map());
    });

    void test('the outbox keeps committed messages in order until delivered or cancelled', async () => {
      const store = await open();
      await store.transact([], [], () => commit({ outbox: [envelope('e1'), envelope('timer', 'Timer', { deliverAt: 1_800_000_000_000 })] }));
      await store.transact([], [], () => commit({ outbox: [envelope('e2'), envelope('e3')] }));
      const outbox = await store.outbox();
      assert.deepEqual(ids(outbox), ['e1', 'timer', 'e2', 'e3']);
      assert.deepEqual(outbox[1], envelope('timer', 'Timer', { deliverAt: 1_800_000_000_000 }), 'an envelope comes back as it went in');
      await store.delivered(['e1', 'e3']);
      assert.deepEqual(ids(await store.outbox()), ['timer', 'e2']);
      await store.transact([], [], () => commit({ cancel: ['timer'] }));
      assert.deepEqual(ids(await store.outbox()), ['e2']);
    });

    void test('deadLetter keeps the message with its consumer and the error', async () => {
      const service = randomName('s');
      const store = await open(service);
      const message = envelope('poison', 'Tested', { payload: { amount: 1250 } });
      await store.deadLetter(message, 'stock', 'Error: out of luck');
      await store.deadLetter(message, 'stock', 'Error: out of luck');
      const { rows } = await (await db.client()).query<{ consumer: string; error: string; envelope: unknown }>(
        `select consumer, error, envelope from ${service}.dead_letters`,
      );
      assert.deepEqual(rows, [{ consumer: 'stock', error: 'Error: out of luck', envelope: message }]);
    });

    void test('pruneInbox forgets only entries older than asked', async () => {
      const store = await open();
      await store.transact([], [], () => commit({ consumed: ['m1', 'm2'] }));
      assert.equal(await store.pruneInbox(60_000), 0);
      await sleep(30);
      assert.equal(await store.pruneInbox(10), 2);
      assert.equal(await store.transact([], ['m1', 'm2'], (s) => commit({ result: s.seen.size })), 0);
    });

    void test('scan pages through documents by prefix in key order', async () => {
      const store = await open();
      const docs = new Map<string, unknown>([['a:2', 2], ['a:1', 1], ['a:3', 3], ['b:1', 'b'], ['x_1', 'x'], ['xa1', 'not x_']]);
      await store.transact([], [], () => commit({ writes: docs }));
      assert.deepEqual(await store.scan('a:', 2), [['a:1', 1], ['a:2', 2]]);
      assert.deepEqual(await store.scan('a:', 2, 'a:2'), [['a:3', 3]]);
      assert.deepEqual(await store.scan('x_', 10), [['x_1', 'x']], 'a prefix is literal, not a LIKE pattern');
      assert.deepEqual(await store.scan('c:', 10), []);
    });

    void test('a store reopened on the same data keeps everything; migrations run once', async () => {
      const service = randomName('s');
      const first = await open(service);
      await first.transact(['a'], ['m1'], () => commit({ writes: new Map([['a', 'kept']]), consumed: ['m1'], outbox: [envelope('e1')] }));
      await first.close();
      await db.restart();
      const [again] = await Promise.all([open(service), db.replica().then((client) => open(service, client))]);
      assert.equal(await counter(again, 'a'), 'kept');
      assert.deepEqual(ids(await again.outbox()), ['e1']);
      assert.equal(await again.transact([], ['m1'], (s) => commit({ result: s.seen.size })), 1);
      const { rows } = await (await db.client()).query<{ version: number }>(`select version from ${service}.migrations order by version`);
      assert.deepEqual(rows.map((r) => r.version), rows.map((_, i) => i + 1));
      assert.ok(rows.length >= 1);
    });
  });
}

const pglite: Backend = {
  name: 'PGlite',
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'orderly-store-'));
    // The promise is kept, not the client: two callers at once must not open the directory twice.
    let client: Promise<SqlClient & { close(): Promise<void> }> | undefined;
    const get = () => (client ??= openPglite(dir));
    const close = async () => {
      const closing = client;
      client = undefined;
      await (await closing)?.close();
    };
    return {
      client: get,
      // PGlite is one connection in this process; a second store on the same data shares it.
      replica: get,
      restart: close,
      async destroy() {
        await close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

const postgres: Backend = {
  name: 'PostgreSQL',
  async open() {
    const name = randomName('orderly_test');
    const admin = new pg.Client({ connectionString: `${POSTGRES}/postgres` });
    await admin.connect();
    await admin.query(`create database ${name}`);
    const url = `${POSTGRES}/${name}`;
    let pools: (SqlClient & { close(): Promise<void> })[] = [];
    const connect = async () => {
      const pool = await openPostgres(url, { max: 5 });
      pools.push(pool);
      return pool;
    };
    const closeAll = async () => {
      const closing = pools;
      pools = [];
      for (const pool of closing) await pool.close();
    };
    return {
      client: async () => pools[0] ?? connect(),
      replica: connect,
      restart: closeAll,
      async destroy() {
        await closeAll();
        await admin.query(`drop database if exists ${name} with (force)`);
        await admin.end();
      },
    };
  },
};

storeConformance(pglite);
storeConformance(postgres);
