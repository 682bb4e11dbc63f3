import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openPglite } from '../../src/adapters/pglite/client.ts';
import { openPostgres } from '../../src/adapters/postgres/client.ts';
import { openRedisStore } from '../../src/adapters/redis/store.ts';
import { storeKeys } from '../../src/adapters/redis/storeScripts.ts';
import { openSqlStore, type SqlClient } from '../../src/adapters/sql/store.ts';
import { openSqliteStore } from '../../src/adapters/sqlite/store.ts';
import type { Envelope } from '../../src/core/message.ts';
import type { Store } from '../../src/ports/store.ts';
import { envelope, randomName } from './helpers.ts';

const POSTGRES = process.env.ORDERLY_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432';
const REDIS = process.env.ORDERLY_TEST_REDIS ?? 'redis://127.0.0.1:6379';

/** The stores on PostgreSQL and Redis keep documents between transactions as a service does (ORDERLY_CACHE_DOCS), so every case runs against what a cache could make stale. */
const CACHE_DOCS = 1_000;

export type DeadLetter = Readonly<{ consumer: string; error: string; envelope: unknown }>;

/** One database for a whole run; each test works in its own service (schema, key prefix) of it. */
export type Database = Readonly<{
  /** The store of `service`; with `replica`, on a connection of its own, as a second replica of a service would have. */
  store(service: string, replica?: boolean): Promise<Store>;
  /** Closes every connection, as a process restart does; the data stays. */
  restart(): Promise<void>;
  /** The dead letters of `service`, as its database keeps them. */
  deadLetters(service: string): Promise<DeadLetter[]>;
  /** Makes the next commit of `service` fail part-way through writing; returns a message for its outbox. */
  failLate(service: string): Promise<Envelope>;
  /** The versions of the layout of `service`'s data applied so far (migrations), in order. */
  layout(service: string): Promise<number[]>;
  destroy(): Promise<void>;
}>;

/** What the store suite needs to know about one store adapter, beyond the Store port itself. */
export type StoreBackend = Readonly<{ name: string; open(): Promise<Database> }>;

/** Connections to one PostgreSQL database (PGlite or a server). */
type SqlConnections = Readonly<{
  client(): Promise<SqlClient>;
  /** Another client on the same data, as a second replica of a service would have. */
  replica(): Promise<SqlClient>;
  restart(): Promise<void>;
  destroy(): Promise<void>;
}>;

function sqlDatabase(c: SqlConnections): Database {
  return {
    store: async (service, replica) => openSqlStore(await (replica ? c.replica() : c.client()), service, { cacheDocs: CACHE_DOCS }),
    restart: c.restart,
    async deadLetters(service) {
      const { rows } = await (await c.client()).query<DeadLetter>(`select consumer, error, envelope from ${service}.dead_letters`);
      return rows;
    },
    // PostgreSQL refuses \u0000 in jsonb; the outbox is written last, after docs and inbox.
    failLate: async () => envelope('bad', 'Tested', { payload: 'nul \u0000' }),
    async layout(service) {
      const { rows } = await (await c.client()).query<{ version: number }>(`select version from ${service}.migrations order by version`);
      return rows.map((r) => r.version);
    },
    destroy: c.destroy,
  };
}

export const pgliteBackend: StoreBackend = {
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
    return sqlDatabase({
      client: get,
      // PGlite is one connection in this process; a second store on the same data shares it.
      replica: get,
      restart: close,
      async destroy() {
        await close();
        rmSync(dir, { recursive: true, force: true });
      },
    });
  },
};

export const postgresBackend: StoreBackend = {
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
    return sqlDatabase({
      client: async () => pools[0] ?? connect(),
      replica: connect,
      restart: closeAll,
      async destroy() {
        await closeAll();
        await admin.query(`drop database if exists ${name} with (force)`);
        await admin.end();
      },
    });
  },
};

/** Each service its own database file in a temporary directory; each store its own connection. */
export const sqliteBackend: StoreBackend = {
  name: 'SQLite',
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'orderly-store-'));
    const file = (service: string) => join(dir, `${service}.sqlite`);
    const query = <R>(service: string, sql: string): R[] => {
      const db = new DatabaseSync(file(service));
      try {
        return db.prepare(sql).all() as R[];
      } finally {
        db.close();
      }
    };
    return {
      // The store owns its connection (closed with it), so a restart has nothing else to close.
      store: async (service) => openSqliteStore(file(service), service),
      restart: async () => undefined,
      deadLetters: async (service) => query<{ consumer: string; error: string; envelope: string }>(service, 'select consumer, error, envelope from dead_letters')
        .map((row) => ({ consumer: row.consumer, error: row.error, envelope: JSON.parse(row.envelope) as unknown })),
      async failLate(service) {
        // The outbox is written after the documents and the inbox: a trigger fails the commit there.
        query(service, `create trigger fail_late before insert on outbox when new.id = 'late' begin select raise(abort, 'failing late, as the test asked'); end`);
        return envelope('late');
      },
      layout: async (service) => query<{ version: number }>(service, 'select version from migrations order by version').map((row) => row.version),
      destroy: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
};

/** Redis is shared with other runs: this run's stores live under a prefix of its own, deleted at the end. */
export const redisBackend: StoreBackend = {
  name: 'Redis',
  async open() {
    const run = randomName('orderly_test');
    const prefix = (service: string) => `${run}:${service}:`;
    let clients: Redis[] = [];
    const connect = () => {
      const client = new Redis(REDIS);
      clients.push(client);
      return client;
    };
    const first = () => clients[0] ?? connect();
    const closeAll = async () => {
      const closing = clients;
      clients = [];
      for (const client of closing) await client.quit();
    };
    return {
      store: (service, replica) => openRedisStore(replica ? connect() : first(), service, { prefix: prefix(service), cacheDocs: CACHE_DOCS }),
      restart: closeAll,
      async deadLetters(service) {
        return (await first().hvals(storeKeys(prefix(service)).dead)).map((entry) => {
          const { consumer, error, envelope: message } = JSON.parse(entry) as DeadLetter;
          return { consumer, error, envelope: message };
        });
      },
      async failLate(service) {
        // The scan index is written after the documents: a key of the wrong type fails the commit there.
        await first().set(storeKeys(prefix(service)).index, 'not a sorted set');
        return envelope('late');
      },
      async layout(service) {
        return [Number(await first().get(storeKeys(prefix(service)).layout))];
      },
      async destroy() {
        const client = first();
        for (let cursor = '0'; ;) {
          const [next, keys] = await client.scan(cursor, 'MATCH', `${run}:*`, 'COUNT', 1000);
          if (keys.length > 0) await client.unlink(...keys);
          cursor = next;
          if (cursor === '0') break;
        }
        await closeAll();
      },
    };
  },
};
