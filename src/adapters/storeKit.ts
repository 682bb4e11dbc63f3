import { metrics } from '../observability/metrics.ts';
import { ConflictError } from '../ports/store.ts';

const MAX_ATTEMPTS = 50;

export type Attempt<T> = Readonly<{ committed: true; result: T } | { committed: false }>;

/**
 * Runs a store transaction until it commits: an attempt that lost a race with another writer
 * says so and is run again on fresh data, after a short random pause; after 50 the store gives up.
 * `attempt` is told which try it is (1 first: the only one that may use a `DocCache`).
 */
export async function untilCommitted<T>(service: string, attempt: (n: number) => Promise<Attempt<T>>): Promise<T> {
  for (let n = 1; ; n++) {
    const outcome = await attempt(n);
    if (outcome.committed) return outcome.result;
    if (n >= MAX_ATTEMPTS) throw new ConflictError(service, n);
    metrics.conflicts.inc({ service });
    await sleep(Math.min(50, n * n) * Math.random());
  }
}

/**
 * Collects the ids of delivered outbox messages for a few milliseconds and drops them in one
 * call. A crash before the drop only means the messages are sent again (consumers deduplicate).
 */
export function deliveredBatcher(drop: (ids: string[]) => Promise<void>, ms = 20) {
  let pending: string[] = [];
  let flushing: Promise<void> | undefined;
  const flush = async () => {
    if (pending.length === 0) return;
    const ids = pending;
    pending = [];
    await drop(ids);
  };
  return {
    add(ids: readonly string[]): Promise<void> {
      for (const id of ids) pending.push(id);
      flushing ??= sleep(ms).then(() => {
        flushing = undefined;
        return flush();
      });
      return flushing;
    },
    /** Drops what is still pending (at close). */
    async drain(): Promise<void> {
      await flushing;
      await flush();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A store's copy of the documents its own transactions read and wrote, with their versions, so
 * that a transaction whose every document is here commits without reading them first: one
 * round trip instead of two. It needs no lease or lock to be right, because the commit checks
 * every version it was given as it always does: a copy another writer made stale fails that
 * check, the transaction is run again on what the store reads then, and the copy is dropped.
 * What makes it pay is one writer per document: a partition's owner for its orders, or the one
 * replica of a service. Documents that still lose races (an item every order takes, with two
 * replicas) are not kept again for a while, so a contended document costs no more than before.
 *
 * It trusts that a document's version never comes back while it exists; the SQL stores number a
 * document deleted and written again from 1 (Orderly's deciders delete none), so a store forgets
 * what it deletes itself. The inbox is not kept: a cached transaction assumes its messages are
 * new, and the commit's inbox check sends a duplicate back to be read and skipped.
 */
export class DocCache<V> {
  readonly #max: number;
  /** Key → version and JSON, least recently used first. */
  readonly #entries = new Map<string, Readonly<{ version: V; json: string }>>();
  /** Keys that lost a race lately, and until when they are not kept. */
  readonly #contended = new Map<string, number>();
  /** Kinds of key guessed missing and found lately, and until when they are not guessed. */
  readonly #found = new Map<string, number>();

  /** `max` documents at most (0: keeps none). */
  constructor(max: number) {
    this.#max = max;
  }

  /**
   * Every key's document and version, or undefined when one can only be read. A key not kept
   * is guessed missing (a transaction's unread documents are mostly new ones: a saga, a
   * reservation, an idempotency key), unless it lost a race lately or a guess of its kind (the
   * key up to its first `:`, as in `order:42`) proved wrong lately: then the transaction reads.
   * The commit checks that a guessed key is still missing; a wrong guess costs that attempt.
   */
  lookup(keys: readonly string[], now = Date.now()): Kept<V> | undefined {
    if (this.#max === 0 || keys.length === 0) return undefined;
    const docs = new Map<string, unknown>();
    const versions = new Map<string, V>();
    const guessed: string[] = [];
    for (const key of keys) {
      const entry = this.#entries.get(key);
      if (entry === undefined) {
        if ((this.#contended.get(key) ?? 0) > now || (this.#found.get(kindOf(key)) ?? 0) > now) return undefined;
        guessed.push(key);
        continue;
      }
      // A fresh object for every transaction: a decision can never change the kept copy.
      docs.set(key, JSON.parse(entry.json));
      versions.set(key, entry.version);
      // Most recently used now.
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return { docs, versions, guessed };
  }

  /**
   * A commit made from `kept` failed, and `fresh` is what the store read for its retry: the kept
   * documents whose version changed meanwhile lost a race, and are not kept again for a while; a
   * key guessed missing and found there was no race (this store had not read it yet), but keys
   * of its kind are read rather than guessed for a while.
   */
  settle(kept: Kept<V>, fresh: ReadonlyMap<string, V>, now = Date.now()): void {
    this.contended([...kept.versions].filter(([key, version]) => fresh.get(key) !== version).map(([key]) => key), now);
    for (const key of kept.guessed) if (fresh.has(key)) this.#found.set(kindOf(key), now + CONTENDED_MS);
  }

  /** Keeps `key` at `version` (its JSON), unless it lost a race lately. */
  remember(key: string, version: V, json: string, now = Date.now()): void {
    if (this.#max === 0) return;
    const until = this.#contended.get(key);
    if (until !== undefined) {
      if (now < until) return;
      this.#contended.delete(key);
    }
    this.#entries.delete(key);
    this.#entries.set(key, { version, json });
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#max) break;
      this.#entries.delete(oldest);
    }
  }

  forget(keys: Iterable<string>): void {
    for (const key of keys) this.#entries.delete(key);
  }

  /** `keys` lost a race: dropped, and not kept again for `ms`. */
  contended(keys: Iterable<string>, now = Date.now(), ms = CONTENDED_MS): void {
    for (const key of keys) {
      this.#entries.delete(key);
      this.#contended.delete(key);
      this.#contended.set(key, now + ms);
    }
    for (const [key, until] of this.#contended) {
      if (this.#contended.size <= this.#max && until > now) break;
      this.#contended.delete(key);
    }
  }
}

/** What a `DocCache` holds of a transaction's keys, and the keys it guessed missing. */
export type Kept<V> = Readonly<{ docs: Map<string, unknown>; versions: Map<string, V>; guessed: readonly string[] }>;

/** The kind of a document by its key: `order` of `order:42`, the whole key without a `:`. */
function kindOf(key: string): string {
  const colon = key.indexOf(':');
  return colon < 0 ? key : key.slice(0, colon);
}

/** A transaction's tries so far: which one this is, and what the cache gave the last one. */
export type Tries<V> = { n: number; cached: Kept<V> | undefined };

type Read<V> = Readonly<{ docs: Map<string, unknown>; versions: Map<string, V>; seen: Set<string> }>;

/**
 * What try `tries.n` of a transaction decides on: the first takes its documents from the cache
 * when it can (then there is no read, and its messages are taken as new: the commit's inbox
 * check says otherwise); any other reads, and a read after a try from the cache settles what
 * that try was given (`DocCache.settle`). `cached` says whether the cache answered.
 */
export async function trySnapshot<V>(cache: DocCache<V>, keys: readonly string[], tries: Tries<V>, read: () => Promise<Read<V>>): Promise<Read<V> & { cached: boolean }> {
  const kept = tries.n === 1 ? cache.lookup(keys) : undefined;
  const last = tries.cached;
  tries.cached = kept;
  if (kept !== undefined) return { ...kept, seen: new Set<string>(), cached: true };
  const fresh = await read();
  if (last !== undefined) cache.settle(last, fresh.versions);
  return { ...fresh, cached: false };
}

/** How long a document that lost a race is read afresh each time instead of kept. */
const CONTENDED_MS = 30_000;
