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
  /**
   * command: from the API; consume: from the bus, deduplicated through the inbox; call: a
   * synchronous call, whose messages go back to the caller instead of into the outbox.
   */
  kind: 'command' | 'consume' | 'call';
  idempotency?: Idempotency;
  resolve: (answer: Answer) => void;
  reject: (error: unknown) => void;
}>;

type Answer = Readonly<{ reply: Reply | undefined; sent: readonly Envelope[] }>;
type Outcome = ({ kind: 'answer' } & Answer) | { kind: 'error'; error: unknown };

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
      const done = (answer: Answer) => resolve(answer.reply);
      this.#enqueue(idempotency === undefined
        ? { message, kind: 'command', resolve: done, reject }
        : { message, kind: 'command', idempotency, resolve: done, reject });
    });
  }

  /** Consumes a message from the bus; resolves once committed (then the bus may acknowledge it). */
  consume(message: Envelope): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#enqueue({ message, kind: 'consume', resolve: () => resolve(), reject });
    });
  }

  /**
   * Runs a saga command called synchronously (the synchronous saga style) and resolves, once
   * committed, with the messages it answers, which the caller takes instead of the outbox.
   * There is no inbox mark: a repeated call must answer again, and the saga steps are
   * idempotent by saga id, so the repeat changes nothing and gets the same answer.
   */
  call(message: Envelope): Promise<readonly Envelope[]> {
    return new Promise((resolve, reject) => {
      this.#enqueue({ message, kind: 'call', resolve: (answer) => resolve(answer.sent), reject });
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
    const messageIds = batch.filter((w) => w.kind === 'consume').map((w) => w.message.id);
    const now = this.#options.now();

    const { outcomes, outbox, cancel } = await this.store.transact([...keys], messageIds, (snapshot) => {
      const view = new Map(snapshot.docs);
      const seen = new Set(snapshot.seen);
      const writes = new Map<string, unknown>();
      const outbox: Envelope[] = [];
      const cancel: string[] = [];
      const consumed: string[] = [];
      const outcomes: Outcome[] = batch.map((work, i) => {
        if (work.kind === 'consume' && seen.has(work.message.id)) return { kind: 'answer', reply: undefined, sent: [] };
        const idempotency = work.idempotency;
        const idemKey = idempotency === undefined ? undefined : idempotencyDoc(idempotency.key);
        if (idemKey !== undefined) {
          const stored = view.get(idemKey) as Stored | undefined;
          if (stored) return { kind: 'answer', reply: stored.request === idempotency?.request ? stored.reply : reusedKey(stored.request), sent: [] };
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
        const sent = envelopesFrom(work.message, decision.send ?? [], now);
        if (work.kind !== 'call') for (const message of sent) outbox.push(message);
        for (const id of decision.cancel ?? []) cancel.push(id);
        if (work.kind === 'consume') {
          consumed.push(work.message.id);
          seen.add(work.message.id);
        }
        return { kind: 'answer', reply: decision.reply, sent: work.kind === 'call' ? sent : [] };
      });
      return { writes, consumed, outbox, cancel, result: { outcomes, outbox, cancel } };
    });

    this.#relay.committed(outbox, cancel);
    for (const listener of this.#listeners) listener(outbox);
    batch.forEach((work, i) => {
      const outcome = outcomes[i]!;
      if (outcome.kind === 'answer') work.resolve(outcome);
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
