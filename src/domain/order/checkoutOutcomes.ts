import type { Envelope } from '../../core/message.ts';
import type { SagaOutcome } from '../../core/saga.ts';
import type { Logger } from '../../ports/log.ts';
import type { Service } from '../../ports/service.ts';
import type { Store } from '../../ports/store.ts';
import { isPaid, OrderEvents, orderKey, type Order, type OrderApiCommand } from './order.ts';

type Waiter = {
  /** Outcomes seen since the waiter was registered, by saga id. */
  readonly seen: Map<string, SagaOutcome>;
  sagaId?: string;
  resolve?: (outcome: SagaOutcome) => void;
  /** When it began to wait for its saga, and when its order was last read (performance.now()). */
  since?: number;
  polled?: number;
};

/** A waiting order is read first after this long, then each time its wait has doubled. */
const FIRST_POLL_MS = 20;

/**
 * Lets an HTTP request wait for the end of a checkout saga. A waiter is registered for the
 * order *before* the checkout command runs and keeps every outcome of that order it sees,
 * so an outcome that commits before the request learns its saga id is not missed, and one
 * of an earlier attempt is not taken for it.
 */
export class SagaOutcomes {
  readonly #waiters = new Map<string, Set<Waiter>>();
  /** Starts the polling timer if it is not running (it stops itself when nothing waits). */
  #wake: (() => void) | undefined;

  /** Feeds committed messages (the order service's outbox): a checkout ends when its order is confirmed, failed or cancelled. */
  observe(messages: readonly Envelope[]): void {
    for (const message of messages) {
      const confirmed = message.type === OrderEvents.confirmed;
      if (!confirmed && message.type !== OrderEvents.failed && message.type !== OrderEvents.cancelled) continue;
      const waiters = this.#waiters.get(message.correlationId);
      if (!waiters) continue;
      const reason = (message.payload as { reason?: unknown }).reason;
      const outcome: SagaOutcome = confirmed
        ? { status: 'completed' }
        : { status: 'failed', reason: typeof reason === 'string' ? reason : 'failed' };
      for (const waiter of waiters) {
        if (waiter.sagaId === message.sagaId) waiter.resolve?.(outcome);
        else waiter.seen.set(message.sagaId, outcome);
      }
    }
  }

  /**
   * Also finds outcomes that other processes (replicas of the order service) committed: every
   * `intervalMs`, reads the orders that requests here wait for, all in one read. An order is
   * read when its request has waited 20 ms and again each time its wait has doubled, so an
   * outcome from elsewhere is seen at most as late again as it took, the short waits that end
   * here (seen by `observe`) cost no reads, and a long wait costs few.
   */
  poll(
    ended: (orderIds: string[]) => Promise<ReadonlyMap<string, Readonly<{ sagaId: string; outcome: SagaOutcome }>>>,
    intervalMs: number,
    onError: (error: unknown) => void,
  ): () => void {
    let running = false;
    let timer: ReturnType<typeof setInterval> | undefined;
    // Only while requests wait: an idle timer every 10 ms costs an idle replica about 8 ms of CPU a second.
    const tick = () => {
      if (this.#waiters.size === 0) {
        clearInterval(timer);
        timer = undefined;
        return;
      }
      if (running) return;
      const now = performance.now();
      // Read at 20 ms of waiting, then each time the wait has doubled since the last read.
      const due = (w: Waiter) => w.since !== undefined && now - w.since >= FIRST_POLL_MS
        && (w.polled === undefined || now - w.polled >= Math.max(intervalMs, w.polled - w.since));
      const orderIds: string[] = [];
      for (const [orderId, set] of this.#waiters) {
        const waiters = [...set].filter(due);
        if (waiters.length === 0) continue;
        for (const w of waiters) w.polled = now;
        orderIds.push(orderId);
      }
      if (orderIds.length === 0) return;
      running = true;
      ended(orderIds)
        .then((found) => {
          for (const [orderId, { sagaId, outcome }] of found) {
            for (const waiter of this.#waiters.get(orderId) ?? []) if (waiter.sagaId === sagaId) waiter.resolve?.(outcome);
          }
        }, onError)
        .finally(() => {
          running = false;
        });
    };
    this.#wake = () => {
      if (timer !== undefined) return;
      timer = setInterval(tick, intervalMs);
      timer.unref();
    };
    if (this.#waiters.size > 0) this.#wake();
    return () => {
      this.#wake = undefined;
      clearInterval(timer);
      timer = undefined;
    };
  }

  /** Starts listening for outcomes of `orderId`; call `wait` with the saga id, or `cancel`. */
  expect(orderId: string) {
    const waiter: Waiter = { seen: new Map() };
    const set = this.#waiters.get(orderId) ?? new Set<Waiter>();
    set.add(waiter);
    this.#waiters.set(orderId, set);
    this.#wake?.();
    const cancel = () => {
      set.delete(waiter);
      if (set.size === 0 && this.#waiters.get(orderId) === set) this.#waiters.delete(orderId);
    };
    const wait = (sagaId: string, timeoutMs: number): Promise<SagaOutcome | 'timeout'> => {
      const early = waiter.seen.get(sagaId);
      if (early) {
        cancel();
        return Promise.resolve(early);
      }
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          cancel();
          resolve('timeout');
        }, timeoutMs);
        waiter.sagaId = sagaId;
        waiter.since = performance.now();
        waiter.resolve = (outcome) => {
          clearTimeout(timer);
          cancel();
          resolve(outcome);
        };
      });
    };
    return { wait, cancel };
  }
}

/**
 * The way back of a checkout, for the routes that wait for one: the end of a checkout as the
 * order service commits it (its lifecycle events in its outbox), or as another replica of it
 * committed it, read from the orders a request here waits for. `stop` ends the polling.
 */
export function checkoutOutcomes(orders: Service<OrderApiCommand>, log: Logger): SagaOutcomes & { stop(): void } {
  const outcomes = new SagaOutcomes();
  orders.onCommitted((messages) => outcomes.observe(messages));
  const stop = outcomes.poll((ids) => endedCheckouts(orders.store, ids), 10, (err) => log.warn({ err }, 'polling checkout outcomes failed'));
  return Object.assign(outcomes, { stop });
}

/** The outcome of a checkout attempt that has ended for its customer (confirmed, failed or cancelled), from its order. */
export function endedCheckout(order: Order, sagaId: string): SagaOutcome | undefined {
  const saga = order.checkout;
  if (saga?.id !== sagaId) return undefined;
  if (isPaid(order)) return { status: 'completed' };
  if (saga.status === 'failed') {
    const cancelled = order.cancelled?.sagaId === sagaId ? order.cancelled : undefined;
    return { status: 'failed', reason: cancelled ? `cancelled: ${cancelled.reason}` : saga.reason };
  }
  return undefined;
}

/** The outcome of the checkouts that have ended, from the orders that hold them. */
async function endedCheckouts(orders: Store, orderIds: readonly string[]): Promise<Map<string, Readonly<{ sagaId: string; outcome: SagaOutcome }>>> {
  const docs = await orders.read(orderIds.map(orderKey));
  const ended = new Map<string, Readonly<{ sagaId: string; outcome: SagaOutcome }>>();
  for (const orderId of orderIds) {
    const order = docs.get(orderKey(orderId)) as Order | undefined;
    const sagaId = order?.checkout?.id;
    const outcome = order && sagaId ? endedCheckout(order, sagaId) : undefined;
    if (sagaId && outcome) ended.set(orderId, { sagaId, outcome });
  }
  return ended;
}
