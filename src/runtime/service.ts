import { setImmediate } from 'node:timers/promises';
import type { Decider, Decision, Reply } from '../core/decider.ts';
import { envelopesFrom, type Envelope } from '../core/message.ts';
import type { Idempotency } from '../http/validate.ts';
import type { Store } from '../ports/store.ts';
import type { Logger } from './log.ts';
import type { Relay } from './relay.ts';

export type ServiceOptions = Readonly<{
  /** Most messages decided and committed in one transaction. */
  maxBatch: number;
  now: () => number;
  log: Logger;
}>;

type Work = Readonly<{
  message: Envelope;
  /** From the bus: deduplicated through the inbox. */
  consumed: boolean;
  idempotency?: Idempotency;
  resolve: (reply: Reply | undefined) => void;
  reject: (error: unknown) => void;
}>;

type Outcome = { kind: 'reply'; reply: Reply | undefined } | { kind: 'error'; error: unknown };

/** The first answer to an Idempotency-Key, and the request it answered. */
type Stored = Readonly<{ request: string; reply: Reply }>;

const idempotencyDoc = (key: string) => `idempotency:${key}`;

/**
 * Runs one service: every message it consumes and every command of its API goes through
 * `decide` and is committed with its dedup mark and outgoing messages in one transaction.
 * Work that arrives while a transaction is open waits and is then committed together
 * (group commit), so a busy service makes few, large transactions.
 */
export class ServiceRuntime {
  readonly name: string;
  readonly store: Store;
  readonly #decider: Decider;
  readonly #relay: Relay;
  readonly #options: ServiceOptions;
  readonly #listeners: ((messages: readonly Envelope[]) => void)[] = [];
  #queue: Work[] = [];
  #busy = false;

  constructor(name: string, decider: Decider, store: Store, relay: Relay, options: ServiceOptions) {
    this.name = name;
    this.#decider = decider;
    this.store = store;
    this.#relay = relay;
    this.#options = options;
  }

  get consumes(): readonly string[] {
    return this.#decider.consumes;
  }

  /** Runs a command of the service's API; resolves with its reply once committed. */
  command(message: Envelope, idempotency?: Idempotency): Promise<Reply | undefined> {
    return new Promise((resolve, reject) => {
      this.#enqueue(idempotency === undefined
        ? { message, consumed: false, resolve, reject }
        : { message, consumed: false, idempotency, resolve, reject });
    });
  }

  /** Consumes a message from the bus; resolves once committed (then the bus may acknowledge it). */
  consume(message: Envelope): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#enqueue({ message, consumed: true, resolve: () => resolve(), reject });
    });
  }

  /** Calls `listener` with the messages of every transaction once it committed. */
  onCommitted(listener: (messages: readonly Envelope[]) => void): void {
    this.#listeners.push(listener);
  }

  #enqueue(work: Work): void {
    this.#queue.push(work);
    if (!this.#busy) void this.#pump();
  }

  async #pump(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#queue.length > 0) {
        // Let every request and delivery that is ready join this batch: an embedded store can
        // run a whole transaction in microtasks, which would otherwise commit one item at a time.
        await setImmediate();
        const batch = this.#queue.slice(0, this.#options.maxBatch);
        this.#queue = this.#queue.slice(batch.length);
        try {
          await this.#run(batch);
        } catch (error) {
          this.#options.log.error({ err: error, service: this.name, batch: batch.length }, 'transaction failed');
          for (const work of batch) work.reject(error);
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  async #run(batch: readonly Work[]): Promise<void> {
    const declared = batch.map((work) => {
      const keys = [...this.#decider.keys(work.message)];
      if (work.idempotency !== undefined) keys.push(idempotencyDoc(work.idempotency.key));
      return new Set(keys);
    });
    const keys = new Set(declared.flatMap((set) => [...set]));
    const messageIds = batch.filter((w) => w.consumed).map((w) => w.message.id);
    const now = this.#options.now();

    const { outcomes, outbox, cancel } = await this.store.transact([...keys], messageIds, (snapshot) => {
      const view = new Map(snapshot.docs);
      const seen = new Set(snapshot.seen);
      const writes = new Map<string, unknown>();
      const outbox: Envelope[] = [];
      const cancel: string[] = [];
      const consumed: string[] = [];
      const outcomes: Outcome[] = batch.map((work, i) => {
        if (work.consumed && seen.has(work.message.id)) return { kind: 'reply', reply: undefined };
        const idempotency = work.idempotency;
        const idemKey = idempotency === undefined ? undefined : idempotencyDoc(idempotency.key);
        if (idemKey !== undefined) {
          const stored = view.get(idemKey) as Stored | undefined;
          if (stored) return { kind: 'reply', reply: stored.request === idempotency?.request ? stored.reply : reusedKey(stored.request) };
        }
        const allowed = declared[i]!;
        let decision: Decision;
        try {
          decision = this.#decider.decide(work.message, <T>(key: string) => {
            if (!allowed.has(key)) throw new Error(`${this.name}: ${work.message.type} read ${key}, which its keys() did not name`);
            return view.get(key) as T | undefined;
          }, now);
        } catch (error) {
          return { kind: 'error', error };
        }
        for (const [key, doc] of Object.entries(decision.writes ?? {})) {
          if (doc === null) view.delete(key);
          else view.set(key, doc);
          writes.set(key, doc);
        }
        if (idempotency !== undefined && idemKey !== undefined && decision.reply !== undefined) {
          const stored: Stored = { request: idempotency.request, reply: decision.reply };
          view.set(idemKey, stored);
          writes.set(idemKey, stored);
        }
        outbox.push(...envelopesFrom(work.message, decision.send ?? [], now));
        cancel.push(...(decision.cancel ?? []));
        if (work.consumed) {
          consumed.push(work.message.id);
          seen.add(work.message.id);
        }
        return { kind: 'reply', reply: decision.reply };
      });
      return { writes, consumed, outbox, cancel, result: { outcomes, outbox, cancel } };
    });

    this.#relay.committed(outbox, cancel);
    for (const listener of this.#listeners) listener(outbox);
    batch.forEach((work, i) => {
      const outcome = outcomes[i]!;
      if (outcome.kind === 'reply') work.resolve(outcome.reply);
      else {
        this.#options.log.error({ err: outcome.error, service: this.name, type: work.message.type, messageId: work.message.id }, 'decide failed');
        work.reject(outcome.error);
      }
    });
  }
}

function reusedKey(request: string): Reply {
  return { ok: false, code: 'idempotency-key-reused', detail: `This Idempotency-Key was already used for ${request}; use a new key for a different request.` };
}
