import type { Envelope } from '../core/message.ts';
import type { Bus } from '../ports/bus.ts';
import type { Store } from '../ports/store.ts';
import { metrics, type OutboxState } from '../observability/metrics.ts';
import { aboutMessages, publishSpan } from '../observability/tracing.ts';
import type { Logger } from '../ports/log.ts';

export type RelayOptions = Readonly<{
  /** Messages per publish call. */
  chunk: number;
  /** Timer resolution for delayed messages. */
  tickMs: number;
  now: () => number;
  log: Logger;
  /** The timers it sets (default: Node's, unref'd); the simulator's run on its virtual clock. */
  timers?: Timers;
}>;

/** Repeating and one-off timers, as the engine sets them. */
export type Timers = Readonly<{
  /** Calls `fn` every `ms` until the returned function is called. */
  every(ms: number, fn: () => void): () => void;
  after(ms: number, fn: () => void): void;
}>;

export const nodeTimers: Timers = {
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
  after(ms, fn) {
    setTimeout(fn, ms).unref();
  },
};

/**
 * The outbox relay of one store: publishes each committed message right after its
 * transaction, holds delayed ones (timers) until they are due, and deletes a message from the
 * outbox once the bus has it. At start it loads whatever the outbox still holds (what a crash
 * left behind), so nothing committed is ever left unsent.
 */
export class Relay {
  readonly #store: Store;
  readonly #bus: Bus;
  readonly #options: RelayOptions;
  /** Delayed messages by outbox id, until due or cancelled; the heap orders them by due time. */
  readonly #delayed = new Map<string, Envelope>();
  #heap = new MinHeap<Envelope>(byDue);
  readonly #inFlight = new Set<Promise<void>>();
  /** Messages published by this relay and not yet dropped from the outbox, by id, with when they became due. */
  readonly #sending = new Map<string, number>();
  #stopTimer: (() => void) | undefined;
  #stopped = false;

  constructor(store: Store, bus: Bus, options: RelayOptions) {
    this.#store = store;
    this.#bus = bus;
    this.#options = options;
  }

  /** What the outbox holds that this relay knows of (for metrics). */
  state(): OutboxState {
    let oldestDueAt: number | undefined;
    for (const at of this.#sending.values()) if (oldestDueAt === undefined || at < oldestDueAt) oldestDueAt = at;
    return { due: this.#sending.size, delayed: this.#delayed.size, oldestDueAt };
  }

  /** Loads the outbox left by an earlier run and starts the timer clock. */
  async start(): Promise<number> {
    const pending = await this.#store.outbox();
    this.#schedule(pending, []);
    this.#stopTimer = (this.#options.timers ?? nodeTimers).every(this.#options.tickMs, () => this.#releaseDue());
    return pending.length;
  }

  /** Takes the messages of a transaction that just committed. */
  committed(messages: readonly Envelope[], cancelled: readonly string[]): void {
    this.#schedule(this.#store.sendsOnCommit ? messages.filter((m) => m.deliverAt !== undefined) : messages, cancelled);
  }

  #schedule(messages: readonly Envelope[], cancelled: readonly string[]): void {
    for (const id of cancelled) this.#delayed.delete(id);
    // A cancelled timer stays in the heap until due; when those outnumber the live ones, the
    // heap is made again from the live ones (each checkout cancels a 15-minute timer).
    if (cancelled.length > 0 && this.#heap.size > 2 * this.#delayed.size + 1024) this.#heap = MinHeap.of(this.#delayed.values(), byDue);
    const now = this.#options.now();
    const due: Envelope[] = [];
    for (const message of messages) {
      if (message.deliverAt !== undefined && message.deliverAt > now) {
        this.#delayed.set(message.id, message);
        this.#heap.push(message);
      } else due.push(message);
    }
    for (let i = 0; i < due.length; i += this.#options.chunk) this.#publish(due.slice(i, i + this.#options.chunk));
  }

  /**
   * Publishes what another run left in the outbox (a replica that died, or this one before a
   * restart): messages due for longer than `graceMs` that this relay is not sending. A message
   * still being sent elsewhere may go out twice; consumers deduplicate.
   */
  async sweep(graceMs: number): Promise<number> {
    const cutoff = this.#options.now() - graceMs;
    const orphans = (await this.#store.outbox()).filter((m) =>
      !this.#sending.has(m.id) && !this.#delayed.has(m.id) && (m.deliverAt ?? m.at) < cutoff);
    this.#schedule(orphans, []);
    return orphans.length;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopTimer?.();
    await Promise.allSettled([...this.#inFlight]);
  }

  #releaseDue(): void {
    const now = this.#options.now();
    const due: Envelope[] = [];
    for (let next = this.#heap.peek(); next && (next.deliverAt ?? 0) <= now; next = this.#heap.peek()) {
      this.#heap.pop();
      // A cancelled timer is no longer in the map (or was replaced by a newer message).
      if (this.#delayed.get(next.id) === next) {
        this.#delayed.delete(next.id);
        due.push(next);
      }
    }
    if (due.length > 0) this.#schedule(due, []);
  }

  #publish(messages: Envelope[]): void {
    if (this.#stopped) return;
    for (const m of messages) this.#sending.set(m.id, m.deliverAt ?? m.at);
    const done = () => {
      for (const m of messages) this.#sending.delete(m.id);
    };
    const span = publishSpan(this.#store.service, messages);
    const run = this.#bus.publish(messages).then(
      () => {
        span?.();
        for (const m of messages) metrics.published.inc({ service: this.#store.service, type: m.type });
        return this.#store.delivered(messages.map((m) => m.id)).finally(done).catch((error: unknown) => {
          // Still in the outbox: sent again at the next start, and consumers deduplicate.
          this.#options.log.warn({ err: error, count: messages.length, ...aboutMessages(messages) }, 'relay: could not drop delivered messages from the outbox');
        });
      },
      (error: unknown) => {
        span?.(error);
        done();
        if (this.#stopped) return;
        // Still in the outbox, so nothing is lost; try again shortly.
        this.#options.log.warn({ err: error, count: messages.length, ...aboutMessages(messages) }, 'relay: publish failed; retrying in 1 s');
        (this.#options.timers ?? nodeTimers).after(1000, () => this.#schedule(messages, []));
      },
    );
    const tracked: Promise<void> = run.finally(() => this.#inFlight.delete(tracked));
    this.#inFlight.add(tracked);
  }
}

/** Delayed messages come out of the heap in the order they are due. */
const byDue = (m: Envelope): number => m.deliverAt ?? 0;

/** A binary min-heap. */
class MinHeap<T> {
  readonly #items: T[] = [];
  readonly #score: (item: T) => number;

  constructor(score: (item: T) => number) {
    this.#score = score;
  }

  static of<T>(items: Iterable<T>, score: (item: T) => number): MinHeap<T> {
    const heap = new MinHeap(score);
    for (const item of items) heap.push(item);
    return heap;
  }

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const items = this.#items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#score(items[parent]!) <= this.#score(item)) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && this.#score(items[right]!) < this.#score(items[left]!) ? right : left;
      if (this.#score(items[child]!) >= this.#score(last)) break;
      items[i] = items[child]!;
      i = child;
    }
    items[i] = last;
    return top;
  }
}
