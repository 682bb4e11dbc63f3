import { randomUUID } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import type { ApiCommand, Decider, Decision, Idempotency, Reply } from '../core/decider.ts';
import { uuidV7 } from '../core/ids.ts';
import { mutations } from '../core/mutations.ts';
import { envelopesFrom, type Cause, type Envelope, type Message, type Parsed } from '../core/message.ts';
import type { CommandOptions } from '../ports/service.ts';
import { Undeliverable } from '../ports/bus.ts';
import type { Snapshot, Store } from '../ports/store.ts';
import type { Logger } from '../ports/log.ts';
import { metrics } from '../observability/metrics.ts';
import { aboutMessage, commandSpan, endSpan, messageSpan, storeSpan, traceIdOf, tracingOn, type Traced } from '../observability/tracing.ts';
import type { Relay } from './relay.ts';

/** A document a commit changed: what it was when read, and what the commit made it (null: deleted). */
export type Change = Readonly<{ key: string; before: unknown; after: unknown }>;
/** Told of every commit: the messages it sent and the documents it changed. */
export type CommitListener = (messages: readonly Envelope[], changes: readonly Change[]) => void;

export type ServiceOptions = Readonly<{
  /** Most messages decided and committed in one transaction. */
  maxBatch: number;
  now: () => number;
  log: Logger;
  /** A new command id (default: a UUID v7 of the time now); the simulator's come from its seed. */
  newId?: () => string;
  /** Waits for the work ready now to join a batch (default: the next turn of the event loop); the simulator's is its scheduler's. */
  gather?: () => Promise<void>;
}>;

const newCommandId = () => uuidV7(Date.now(), randomUUID());

/**
 * command: from the API; consume: from the bus, deduplicated through the inbox; call: a
 * synchronous call, whose messages go back to the caller instead of into the outbox.
 */
type Input<M extends Message, C extends ApiCommand> =
  | Readonly<{ kind: 'command'; command: C; cause: Cause }>
  | Readonly<{ kind: 'consume' | 'call'; message: Envelope<M> }>;

type Work<M extends Message, C extends ApiCommand> = Readonly<{
  input: Input<M, C>;
  idempotency?: Idempotency;
  /** Its span, when tracing is on (and, for a message, when it came with a traceparent). */
  span?: Traced | undefined;
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
export class ServiceRuntime<M extends Message = Message, C extends ApiCommand = ApiCommand> {
  readonly name: string;
  readonly store: Store;
  readonly #decider: Decider<M, C>;
  readonly #relay: Relay;
  readonly #options: ServiceOptions;
  readonly #listeners: CommitListener[] = [];
  #queue: Work<M, C>[] = [];
  #busy = false;

  constructor(name: string, decider: Decider<M, C>, store: Store, relay: Relay, options: ServiceOptions) {
    this.name = name;
    this.#decider = decider;
    this.store = store;
    this.#relay = relay;
    this.#options = options;
  }

  get consumes(): readonly string[] {
    return this.#decider.consumes;
  }

  /** Checks a message this service would consume: the typed message, or what is wrong with it. */
  parse(message: Envelope): Parsed<M> {
    return this.#decider.parse(message);
  }

  /**
   * Runs a command of the service's API; resolves with its reply once committed. Messages it
   * sends carry `correlationId` (the business transaction) and no saga unless they name one.
   */
  command(command: C, options: CommandOptions = {}): Promise<Reply | undefined> {
    const correlationId = options.correlationId ?? '';
    // A child of the HTTP request's span; the messages the command sends carry it.
    const span = commandSpan(this.name, command.type, correlationId);
    const cause: Cause = { id: `cmd:${(this.#options.newId ?? newCommandId)()}`, correlationId, traceparent: span?.traceparent };
    const input: Input<M, C> = { kind: 'command', command, cause };
    const idempotency = options.idempotency;
    return new Promise((resolve, reject) => {
      const done = (answer: Answer) => resolve(answer.reply);
      this.#enqueue(idempotency === undefined ? { input, span, resolve: done, reject } : { input, idempotency, span, resolve: done, reject });
    });
  }

  /** A consumed or called message, with the span that handles it as its traceparent (which what it causes inherits). */
  #traced(message: Envelope<M>, how: 'consume' | 'call'): { message: Envelope<M>; span: Traced | undefined } {
    const span = messageSpan(this.name, message, how);
    // Untraced, or a trace that is not recorded: the message goes on as it came.
    return span === undefined || span.traceparent === message.traceparent ? { message, span } : { message: { ...message, traceparent: span.traceparent }, span };
  }

  /**
   * Consumes a message from the bus; resolves once committed (then the bus may acknowledge it).
   * A malformed message is checked here, once, and refused as `Undeliverable` with what is wrong
   * with it: the bus dead-letters it at once, since redelivering it would not make it right.
   */
  async consume(envelope: Envelope): Promise<void> {
    const parsed = this.#decider.parse(envelope);
    if (!parsed.ok) {
      this.#options.log.error({ service: this.name, ...aboutMessage(envelope), problem: parsed.problem }, 'malformed message refused');
      throw new Undeliverable(`malformed: ${parsed.problem}`);
    }
    const { message, span } = this.#traced(parsed.message, 'consume');
    return new Promise((resolve, reject) => {
      this.#enqueue({ input: { kind: 'consume', message }, span, resolve: () => resolve(), reject });
      if (mutations.ackBeforeCommit) resolve(); // a bug the simulator's tests put back: the bus acknowledges before the commit
    });
  }

  /**
   * Runs a saga command called synchronously (the synchronous saga style) and resolves, once
   * committed, with the messages it answers, which the caller takes instead of the outbox.
   * There is no inbox mark: a repeated call must answer again, and the saga steps are
   * idempotent by saga id, so the repeat changes nothing and gets the same answer.
   */
  call(envelope: Envelope): Promise<readonly Envelope[]> {
    const parsed = this.#decider.parse(envelope);
    // The caller (the order service) checked what it sends: a malformed call is a bug there.
    if (!parsed.ok) return Promise.reject(new Error(`${this.name}: malformed call: ${parsed.problem}`));
    const { message, span } = this.#traced(parsed.message, 'call');
    return new Promise((resolve, reject) => {
      this.#enqueue({ input: { kind: 'call', message }, span, resolve: (answer) => resolve(answer.sent), reject });
    });
  }

  /** The transaction's span, linked to each traced work of the batch (nothing when tracing is off). */
  #storeSpans(batch: readonly Work<M, C>[], started: number, error?: unknown): void {
    if (!tracingOn()) return;
    storeSpan(this.name, batch.map((w) => w.span), performance.timeOrigin + started, performance.timeOrigin + performance.now(), error);
  }

  /** Calls `listener` with the messages of every transaction once it committed. */
  onCommitted(listener: CommitListener): void {
    this.#listeners.push(listener);
  }

  #enqueue(work: Work<M, C>): void {
    this.#queue.push(work);
    if (!this.#busy) void this.#pump();
  }

  async #pump(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#queue.length > 0) {
        // Let every request and delivery that is ready join this batch: an embedded store can
        // run a whole transaction in microtasks, which would otherwise commit one item at a time.
        await (this.#options.gather?.() ?? setImmediate());
        const batch = this.#queue.slice(0, this.#options.maxBatch);
        this.#queue = this.#queue.slice(batch.length);
        try {
          await this.#run(batch);
        } catch (error) {
          this.#options.log.error({ err: error, service: this.name, batch: batch.length, ...sagasIn(batch) }, 'transaction failed');
          for (const work of batch) {
            endSpan(work.span, error);
            work.reject(error);
          }
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  #keys(input: Input<M, C>): readonly string[] {
    return input.kind === 'command' ? this.#decider.api.keys(input.command) : this.#decider.keys(input.message);
  }

  #decide(input: Input<M, C>, read: <T>(key: string) => T | undefined, now: number): Decision {
    return input.kind === 'command' ? this.#decider.api.decide(input.command, read, now) : this.#decider.decide(input.message, read, now);
  }

  async #run(batch: readonly Work<M, C>[]): Promise<void> {
    const declared = batch.map((work) => {
      const keys = [...this.#keys(work.input)];
      if (work.idempotency !== undefined) keys.push(idempotencyDoc(work.idempotency.key));
      return new Set(keys);
    });
    const keys = new Set(declared.flatMap((set) => [...set]));
    const messageIds = batch.flatMap((w) => (w.input.kind === 'consume' ? [w.input.message.id] : []));
    const now = this.#options.now();

    const started = performance.now();
    let first: Snapshot | undefined;
    const { outcomes, outbox, cancel, changes, consumed: committed, duplicates } = await this.store.transact([...keys], messageIds, (fresh) => {
      // A transaction that lost a race is decided again on fresh data (`staleRetry`, a bug the simulator's tests put back: on what it read first).
      const snapshot = mutations.staleRetry ? (first ??= fresh) : fresh;
      const view = new Map(snapshot.docs);
      const seen = new Set(snapshot.seen);
      const writes = new Map<string, unknown>();
      const outbox: Envelope[] = [];
      const cancel: string[] = [];
      const consumed: string[] = [];
      let duplicates = 0;
      const outcomes: Outcome[] = batch.map((work, i) => {
        const input = work.input;
        if (input.kind === 'consume' && seen.has(input.message.id) && !mutations.noInboxDedup) {
          duplicates++;
          return { kind: 'answer', reply: undefined, sent: [] };
        }
        const idempotency = work.idempotency;
        const idemKey = idempotency === undefined ? undefined : idempotencyDoc(idempotency.key);
        if (idemKey !== undefined) {
          const stored = view.get(idemKey) as Stored | undefined;
          if (stored) return { kind: 'answer', reply: stored.request === idempotency?.request ? stored.reply : reusedKey(stored.request, idempotency?.request ?? ''), sent: [] };
        }
        const allowed = declared[i] ?? new Set<string>();
        let decision: Decision;
        try {
          decision = this.#decide(input, <T>(key: string) => {
            if (!allowed.has(key)) throw new Error(`${this.name}: ${typeOf(input)} read ${key}, which its keys() did not name`);
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
        const sent = envelopesFrom(input.kind === 'command' ? input.cause : input.message, decision.send ?? [], now);
        if (input.kind !== 'call') for (const message of sent) outbox.push(message);
        for (const id of decision.cancel ?? []) cancel.push(id);
        if (input.kind === 'consume') {
          consumed.push(input.message.id);
          seen.add(input.message.id);
        }
        return { kind: 'answer', reply: decision.reply, sent: input.kind === 'call' ? sent : [] };
      });
      const changes = [...writes].map(([key, after]) => ({ key, before: snapshot.docs.get(key), after }));
      const done = new Set(consumed);
      const types = batch.flatMap((w) => (w.input.kind === 'consume' && done.has(w.input.message.id) ? [w.input.message.type] : []));
      return { writes, consumed, outbox, cancel, result: { outcomes, outbox, cancel, changes, consumed: types, duplicates } };
    }).catch((error: unknown) => {
      this.#storeSpans(batch, started, error);
      throw error;
    });
    this.#storeSpans(batch, started);

    metrics.transaction.observe({ service: this.name }, (performance.now() - started) / 1000);
    for (const type of committed) metrics.consumed.inc({ service: this.name, type });
    if (duplicates > 0) metrics.duplicates.inc({ service: this.name }, duplicates);
    this.#relay.committed(outbox, cancel);
    for (const listener of this.#listeners) listener(outbox, changes);
    batch.forEach((work, i) => {
      const outcome = outcomes[i] ?? { kind: 'error', error: new Error(`${this.name}: no outcome for work ${i}`) };
      if (outcome.kind === 'answer') {
        endSpan(work.span);
        work.resolve(outcome);
      } else {
        const input = work.input;
        const about = input.kind === 'command'
          ? { messageId: input.cause.id, type: input.command.type, correlationId: input.cause.correlationId, traceId: traceIdOf(input.cause.traceparent) }
          : aboutMessage(input.message);
        this.#options.log.error({ err: outcome.error, service: this.name, ...about }, 'decide failed');
        endSpan(work.span, outcome.error);
        work.reject(outcome.error);
      }
    });
  }
}

/** The sagas and business transactions of a batch's work, for its log line. */
function sagasIn(batch: readonly Work<Message, ApiCommand>[]): Readonly<{ sagaIds: string[]; correlationIds: string[]; traceIds: string[] }> {
  const sagaIds = new Set<string>();
  const correlationIds = new Set<string>();
  const traceIds = new Set<string>();
  for (const { input } of batch) {
    if (input.kind !== 'command' && input.message.sagaId !== '') sagaIds.add(input.message.sagaId);
    const correlationId = input.kind === 'command' ? input.cause.correlationId : input.message.correlationId;
    if (correlationId !== '') correlationIds.add(correlationId);
    const traceId = traceIdOf(input.kind === 'command' ? input.cause.traceparent : input.message.traceparent);
    if (traceId !== undefined) traceIds.add(traceId);
  }
  return { sagaIds: [...sagaIds], correlationIds: [...correlationIds], traceIds: [...traceIds] };
}

const typeOf = (input: Input<Message, ApiCommand>): string => (input.kind === 'command' ? input.command.type : input.message.type);

function reusedKey(first: string, now: string): Reply {
  const route = (request: string) => request.replace(/ \(body [^)]*\)$/, '');
  const what = route(first) === route(now) ? `${route(first)} with another body` : first;
  return { ok: false, code: 'idempotency-key-reused', detail: `This Idempotency-Key was already used for ${what}; use a new key for a different request.` };
}
