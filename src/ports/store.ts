import type { Envelope } from '../core/message.ts';

/** What a transaction saw: the documents read (absent keys are missing) and the message ids already consumed. */
export type Snapshot = Readonly<{ docs: ReadonlyMap<string, unknown>; seen: ReadonlySet<string> }>;

/** What a transaction commits, all together or not at all. */
export type Commit<T> = Readonly<{
  /** New document values; null deletes. A write to a key that was read only succeeds if that
   *  document is unchanged since it was read (or still missing); a write to a key that was
   *  not read replaces whatever is there. */
  writes: ReadonlyMap<string, unknown>;
  /** Ids of the consumed messages (the inbox: a redelivered message is seen and skipped). */
  consumed: readonly string[];
  /** Messages to send (the outbox), including delayed ones. */
  outbox: readonly Envelope[];
  /** Outbox ids to drop unsent (cancelled timers). */
  cancel: readonly string[];
  result: T;
}>;

/**
 * A service's own durable state: documents with versions, an inbox of consumed message ids
 * and an outbox of messages to send. Each service owns one store; no two services share one.
 */
export interface Store {
  readonly service: string;
  /**
   * True when the store puts outgoing messages due now on the bus itself, inside the commit
   * (a Redis store whose bus is Redis Streams on the same server): the relay then only sends
   * delayed ones and what an earlier run left in the outbox.
   */
  readonly sendsOnCommit: boolean;
  /**
   * Reads `keys` and whether `messageIds` were consumed, calls `decide`, and commits its
   * result atomically. When another writer changed a read document in between, the whole
   * transaction is retried with fresh data, so `decide` must be a pure function of its input.
   */
  transact<T>(keys: readonly string[], messageIds: readonly string[], decide: (snapshot: Snapshot) => Commit<T>): Promise<T>;
  /** Reads documents outside any transaction (queries). */
  read(keys: readonly string[]): Promise<ReadonlyMap<string, unknown>>;
  /** Documents whose key starts with `prefix`, in key order (admin and consistency checks). */
  scan(prefix: string, limit: number, after?: string): Promise<ReadonlyArray<readonly [string, unknown]>>;
  /** Every message still in the outbox, oldest first (start-up and sweeps). */
  outbox(): Promise<Envelope[]>;
  /** Drops delivered messages from the outbox. May be batched; a crash before it only causes a redelivery. */
  delivered(ids: readonly string[]): Promise<void>;
  /**
   * Keeps a message `consumer` gave up on, with why: one per message and consumer, kept again
   * with the newer reason (for the buses that keep no dead letters themselves, see `DeadLetterShelf`).
   */
  deadLetter(message: Envelope, consumer: string, error: string): Promise<void>;
  /** The dead letters kept for `consumer` (only message `id`'s, when given), oldest first, at most `max`. */
  deadLetters(consumer: string, max: number, id?: string): Promise<KeptLetter[]>;
  /** Forgets a dead letter; false when there was none. */
  dropDeadLetter(consumer: string, id: string): Promise<boolean>;
  /** Forgets inbox entries older than `ms` (they must outlive any redelivery). */
  pruneInbox(olderThanMs: number): Promise<number>;
  close(): Promise<void>;
}

/** A dead letter as a store keeps it. */
export type KeptLetter = Readonly<{ consumer: string; message: Envelope; error: string; at: number }>;

/** One document, outside any transaction (queries). */
export async function readDoc<T>(store: Store, key: string): Promise<T | undefined> {
  return (await store.read([key])).get(key) as T | undefined;
}

/** Every document whose key starts with `prefix`, in pages (admin queries and audits). */
export async function* scanAll<T>(store: Store, prefix: string, after = ''): AsyncGenerator<readonly [string, T]> {
  for (;;) {
    const page = await store.scan(prefix, 5000, after);
    for (const [key, doc] of page) yield [key, doc as T];
    const last = page.at(-1);
    if (!last || page.length < 5000) return;
    after = last[0];
  }
}

/** Thrown when a transaction keeps conflicting; a fault, not a business outcome. */
export class ConflictError extends Error {
  constructor(service: string, attempts: number) {
    super(`Store of ${service}: transaction still conflicting after ${attempts} attempts`);
  }
}
