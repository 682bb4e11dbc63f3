/**
 * The store on Redis.
 *
 * Durability is the server's configuration, not this code's. Run Redis with `appendonly yes`
 * (and `maxmemory-policy noeviction`, so that it never evicts a document or an outbox entry);
 * then `appendfsync` decides what a crash can take back of what Redis already acknowledged:
 *   - always:   nothing acknowledged is lost; every write waits for its fsync (slowest).
 *   - everysec: nothing on a crash of the Redis process; up to about one second of
 *               acknowledged writes on a crash of the machine (power, kernel).
 *   - no:       on a machine crash, whatever the operating system had not yet flushed
 *               (often tens of seconds).
 * RDB snapshots alone (`save …`) lose everything since the last snapshot. A lost commit is a
 * lost payment or stock movement, so `openRedisStore` checks the server's settings and warns
 * (on `log`, and in `warnings`) when they put acknowledged commits at risk.
 */
import type { Redis } from 'ioredis';
import type { Envelope } from '../../core/message.ts';
import type { Commit, KeptLetter, Snapshot, Store } from '../../ports/store.ts';
import { batchesBy } from '../broker/delivery.ts';
import { DocCache, deliveredBatcher, trySnapshot, untilCommitted, type Attempt, type Tries } from '../storeKit.ts';
import type { Logger } from '../../ports/log.ts';
import { checkDurability } from './durability.ts';
import { commitScript, COMMIT_KEYS, outboxScript, pruneScript, scanScript, snapshotScript, storeKeys } from './storeScripts.ts';

export type RedisStoreOptions = Readonly<{
  /** Prefix of every key of this store; default `orderly:<service>:`. */
  prefix?: string;
  log?: Logger;
  /**
   * The stream of each message (its type's, in its partition), when the bus is Redis Streams on
   * this same server: then the commit itself appends the messages due now to their streams, and
   * no relay is needed.
   */
  streams?: (message: Envelope) => string;
  /** Documents kept in memory between transactions (`DocCache`); 0 keeps none. */
  cacheDocs?: number;
}>;

/** A store on Redis, with what is wrong with the server's durability (empty when nothing). */
export type RedisStore = Store & { readonly warnings: readonly string[] };

/** Version of the key layout in `storeScripts.ts`; a store refuses keys written in another one. */
const LAYOUT = '1';

/**
 * The store on Redis: a service's documents, versions, inbox and outbox are a few keys under
 * its prefix (see `storeKeys`). A transaction reads the documents with their versions and the
 * inbox in one script, decides, and commits with one Lua script that writes only when every
 * document read still has the version read (or is still missing) and no consumed message is
 * in the inbox; otherwise it writes nothing and the transaction is retried with fresh data.
 * So no update is lost, optimistically rather than with locks. Versions are the numbers of
 * the commits that wrote them, so a document deleted and created again never shows a version
 * it had before. Inbox times are the Redis server's clock (TIME), for every replica alike.
 * The caller owns the connection: `close` flushes pending work but leaves it open.
 */
export async function openRedisStore(redis: Redis, service: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
  if (service === '') throw new Error('A store needs a service name');
  const prefix = options.prefix ?? `orderly:${service}:`;
  const k = storeKeys(prefix);
  const commitKeys = COMMIT_KEYS.map((name) => k[name]);
  const warnings = await checkDurability(redis, options.log, `store ${service}`);
  await redis.set(k.layout, LAYOUT, 'NX');
  const layout = await redis.get(k.layout);
  if (layout !== LAYOUT) throw new Error(`Redis keys under ${prefix} have layout ${layout}; this store knows layout ${LAYOUT}`);

  const delivered = deliveredBatcher(async (ids) => {
    check(await redis.multi().call('HDEL', [k.outbox, ...ids]).call('ZREM', [k.order, ...ids]).exec());
  });

  const cache = new DocCache<string>(options.cacheDocs ?? 0);

  /** The documents with their versions and the consumed ids, as of one moment. */
  async function snapshot(keys: readonly string[], messageIds: readonly string[]) {
    const docs = new Map<string, unknown>();
    const versions = new Map<string, string>();
    const seen = new Set<string>();
    if (keys.length === 0 && messageIds.length === 0) return { docs, versions, seen };
    const flat = (await snapshotScript.run(redis, [k.docs, k.versions, k.inbox], [keys.length, ...keys, ...messageIds])) as (string | null)[];
    keys.forEach((key, i) => {
      const value = flat[i];
      const version = flat[keys.length + i];
      // Both or neither: the commit script writes and deletes them together.
      if (value != null && version != null) {
        docs.set(key, JSON.parse(value));
        versions.set(key, version);
        cache.remember(key, version, value);
      }
    });
    messageIds.forEach((id, i) => {
      if (flat[2 * keys.length + i] != null) seen.add(id);
    });
    return { docs, versions, seen };
  }

  /** One try of a transaction (`trySnapshot`: the first may take its documents from the cache). */
  async function attempt<T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>, tries: Tries<string>): Promise<Attempt<T>> {
    const { docs, versions, seen, cached } = await trySnapshot(cache, keys, tries, () => snapshot(keys, messageIds));
    const commit = decide({ docs, seen });
    const args: (string | number)[] = [];
    // Pushed one by one: a batch_init commits 100,000 documents, and spreading their 200,000
    // arguments into one call overflows the stack.
    const list = (items: readonly (readonly string[])[]) => {
      args.push(items.length);
      for (const item of items) for (const value of item) args.push(value);
    };
    list([...new Set(keys)].map((key) => [key, versions.get(key) ?? '0']));
    const writes = [...commit.writes].map(([key, doc]) => [key, doc === null ? '' : json(doc, `document ${key}`)] as const);
    list(writes);
    list(commit.consumed.map((id) => [id]));
    const streams = options.streams;
    const direct = streams ? commit.outbox.filter((m) => m.deliverAt === undefined) : [];
    list(commit.outbox.filter((m) => !direct.includes(m)).map((m) => [m.id, json(m, `message ${m.id}`)]));
    list(commit.cancel.map((id) => [id]));
    list([...batchesBy(direct, streams!)].map(([stream, batch]) => [stream, json(batch, `messages ${batch[0]!.id}…`)]));
    // Nothing to write and read just now: nothing to check. Read from the cache: the script checks the versions.
    if (!cached && commit.writes.size + commit.consumed.length + commit.outbox.length + commit.cancel.length === 0) return { committed: true, result: commit.result };
    const version = Number(await commitScript.run(redis, commitKeys, args));
    if (version === 0) {
      // Read afresh and lost anyway: a race. From the cache: the next try's read tells (`settle`).
      if (!cached) cache.contended(keys);
      return { committed: false };
    }
    for (const [key, text] of writes) {
      if (text === '') cache.forget([key]);
      else cache.remember(key, String(version), text);
    }
    return { committed: true, result: commit.result };
  }

  return {
    service,
    warnings,
    sendsOnCommit: options.streams !== undefined,

    transact: (keys, messageIds, decide) => {
      const tries: Tries<string> = { n: 0, cached: undefined };
      return untilCommitted(service, (n) => attempt(keys, messageIds, decide, Object.assign(tries, { n })));
    },

    async read(keys) {
      if (keys.length === 0) return new Map();
      const values = (await redis.call('HMGET', [k.docs, ...keys])) as (string | null)[];
      const docs = new Map<string, unknown>();
      keys.forEach((key, i) => {
        const value = values[i];
        if (value != null) docs.set(key, JSON.parse(value));
      });
      return docs;
    },

    async scan(prefix, limit, after) {
      // The first key to look at, by byte order as Redis sorts: past `after`, or the prefix itself.
      const start = after !== undefined && Buffer.compare(Buffer.from(after), Buffer.from(prefix)) >= 0 ? `(${after}` : `[${prefix}`;
      const flat = (await scanScript.run(redis, [k.index, k.docs], [start, prefix, limit])) as string[];
      const docs: (readonly [string, unknown])[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) docs.push([flat[i]!, JSON.parse(flat[i + 1]!)] as const);
      return docs;
    },

    async outbox() {
      const envelopes = (await outboxScript.run(redis, [k.order, k.outbox], [])) as (string | null)[];
      return envelopes.filter((e) => e !== null).map((e) => JSON.parse(e) as Envelope);
    },

    delivered: (ids) => delivered.add(ids),

    async deadLetter(message, consumer, error) {
      // One per message and consumer (as the SQL store's primary key), kept again with the newer reason.
      const entry = JSON.stringify({ consumer, error, envelope: message, at: Date.now() });
      await redis.hset(k.dead, JSON.stringify([consumer, message.id]), entry);
    },

    async deadLetters(consumer, max, id) {
      const kept: KeptLetter[] = [];
      for (const [field, value] of Object.entries(await redis.hgetall(k.dead))) {
        const [who, messageId] = JSON.parse(field) as [string, string];
        if (who !== consumer || (id !== undefined && messageId !== id)) continue;
        const { error, envelope, at } = JSON.parse(value) as { error: string; envelope: Envelope; at: number };
        kept.push({ consumer, message: envelope, error, at });
      }
      return kept.sort((a, b) => a.at - b.at || (a.message.id < b.message.id ? -1 : 1)).slice(0, max);
    },

    async dropDeadLetter(consumer, id) {
      return (await redis.hdel(k.dead, JSON.stringify([consumer, id]))) > 0;
    },

    async pruneInbox(olderThanMs) {
      return Number(await pruneScript.run(redis, [k.inbox], [Math.max(0, Math.floor(olderThanMs))]));
    },

    async close() {
      await delivered.drain();
    },
  };
}

/** JSON of a value to store; undefined, functions and symbols have none and are refused here rather than stored as nothing. */
function json(value: unknown, what: string): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new TypeError(`Store: ${what} has no JSON form`);
  return text;
}

/** The replies of a MULTI; a failed command fails the whole call. */
function check(replies: [Error | null, unknown][] | null): unknown[] {
  if (replies === null) throw new Error('Redis: transaction aborted');
  return replies.map(([error, reply]) => {
    if (error) throw error;
    return reply;
  });
}

