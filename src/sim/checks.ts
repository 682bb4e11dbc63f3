import type { Envelope } from '../core/message.ts';
import { isActive, type SagaDefinition, type SagaState } from '../core/saga.ts';
import type { Notification } from '../domain/notification/notification.ts';
import { NotificationEvents, notificationKey, type NotificationKind } from '../domain/notification/notification.ts';
import { FulfillmentEvents, type ShipmentScanned } from '../domain/fulfillment/fulfillment.ts';
import { OrderEvents, ORDER_PREFIX, type CheckoutContext, type LifecycleEvent, type Order } from '../domain/order/order.ts';
import type { Account, Hold } from '../domain/payment/payment.ts';
import type { Item, Reservation } from '../domain/stock/stock.ts';
import type { Changed } from './store.ts';

/** The notification each lifecycle event must become. */
const KIND_OF: Readonly<Record<string, NotificationKind>> = {
  [OrderEvents.confirmed]: 'confirmed', [OrderEvents.failed]: 'failed', [OrderEvents.cancelled]: 'cancelled',
  [OrderEvents.refunded]: 'refunded', [OrderEvents.shipped]: 'shipped',
};

/**
 * The invariants checked at every commit of every service, incrementally: money and stock
 * conserve per user and per item and never go negative, a message is consumed at most once per
 * service, compensations run latest step first. It also records what the end of a run checks:
 * every lifecycle event and scan that must reach the customer, every notification sent.
 */
export class Invariants {
  readonly violations: string[] = [];
  readonly #credit = new Map<string, number>();
  readonly #stock = new Map<string, number>();
  readonly #held = new Map<string, number>();
  readonly #captured = new Map<string, number>();
  readonly #reserved = new Map<string, number>();
  readonly #committed = new Map<string, number>();
  readonly #steps: ReadonlyMap<number, readonly string[]>;
  #baseline = false;
  /** Orders whose latest checkout is still running or compensating. */
  activeSagas = 0;
  /** Notifications the customers must get (key → what told it). */
  readonly expected = new Map<string, string>();
  /** Ids of the NotificationSent events per notification key. */
  readonly sent = new Map<string, Set<string>>();

  constructor(definitions: readonly SagaDefinition<CheckoutContext>[]) {
    this.#steps = new Map(definitions.map((d) => [d.version, d.steps.map((s) => s.name)]));
  }

  fail(what: string): void {
    if (this.violations.length < 20) this.violations.push(what);
  }

  /** From now on money and stock must conserve: what the users and items hold now is what they started with. */
  baseline(accounts: Iterable<readonly [string, unknown]>, items: Iterable<readonly [string, unknown]>): void {
    for (const [key, doc] of accounts) {
      const a = doc as Account;
      this.#credit.set(key.slice('user:'.length), a.credit + a.held);
    }
    for (const [key, doc] of items) {
      const i = doc as Item;
      this.#stock.set(key.slice('item:'.length), i.available + i.reserved);
    }
    this.#baseline = true;
  }

  onCommit(service: string, changes: readonly Changed[], outbox: readonly Envelope[], again: readonly string[]): void {
    for (const id of again) this.fail(`${service} consumed message ${id} a second time (its effects were committed twice)`);
    switch (service) {
      case 'payment':
        return this.#payment(changes);
      case 'stock':
        return this.#stockChanges(changes);
      case 'orders':
        return this.#orders(changes, outbox);
      case 'fulfillment':
        return this.#scans(outbox);
      case 'notification':
        return this.#notifications(outbox);
      default:
        return undefined;
    }
  }

  #payment(changes: readonly Changed[]): void {
    const touched = new Map<string, Account>();
    for (const { key, before, after } of changes) {
      if (key.startsWith('hold:')) {
        for (const [hold, sign] of [[before as Hold | undefined, -1], [after as Hold | null, 1]] as const) {
          if (!hold) continue;
          if (hold.status === 'authorized') add(this.#held, hold.userId, sign * hold.amount);
          if (hold.status === 'captured') add(this.#captured, hold.userId, sign * hold.amount);
        }
      } else if (key.startsWith('user:') && after) touched.set(key.slice(5), after as Account);
    }
    if (!this.#baseline) return;
    for (const [user, a] of touched) {
      const initial = this.#credit.get(user) ?? 0;
      const held = this.#held.get(user) ?? 0;
      const captured = this.#captured.get(user) ?? 0;
      if (a.credit < 0 || a.held < 0) this.fail(`user ${user} went negative: credit ${a.credit}, held ${a.held}`);
      if (a.held !== held) this.fail(`user ${user} has ${a.held} held, but the authorized holds sum to ${held}`);
      if (a.credit + a.held + captured !== initial) {
        this.fail(`money of user ${user} does not conserve: credit ${a.credit} + held ${a.held} + captured ${captured} = ${a.credit + a.held + captured}, started with ${initial}`);
      }
    }
  }

  #stockChanges(changes: readonly Changed[]): void {
    const touched = new Map<string, Item>();
    for (const { key, before, after } of changes) {
      if (key.startsWith('reservation:')) {
        for (const [r, sign] of [[before as Reservation | undefined, -1], [after as Reservation | null, 1]] as const) {
          if (!r) continue;
          const into = r.status === 'reserved' ? this.#reserved : r.status === 'committed' ? this.#committed : undefined;
          if (into) for (const [item, n] of r.lines) add(into, item, sign * n);
        }
      } else if (key.startsWith('item:') && after) touched.set(key.slice(5), after as Item);
    }
    if (!this.#baseline) return;
    for (const [item, i] of touched) {
      const initial = this.#stock.get(item) ?? 0;
      const reserved = this.#reserved.get(item) ?? 0;
      const committed = this.#committed.get(item) ?? 0;
      if (i.available < 0 || i.reserved < 0) this.fail(`item ${item} went negative: available ${i.available}, reserved ${i.reserved}`);
      if (i.reserved !== reserved) this.fail(`item ${item} has ${i.reserved} reserved, but the reservations hold ${reserved}`);
      if (i.available + i.reserved + committed !== initial) {
        this.fail(`stock of item ${item} does not conserve: available ${i.available} + reserved ${i.reserved} + taken ${committed} = ${i.available + i.reserved + committed}, started with ${initial}`);
      }
    }
  }

  #orders(changes: readonly Changed[], outbox: readonly Envelope[]): void {
    for (const { key, before, after } of changes) {
      if (!key.startsWith(ORDER_PREFIX)) continue;
      const was = (before as Order | undefined)?.checkout;
      const is = (after as Order | null)?.checkout;
      this.activeSagas += (is && isActive(is) ? 1 : 0) - (was && isActive(was) ? 1 : 0);
      if (is) this.#reverseOrder(is);
    }
    for (const m of outbox) {
      const kind = KIND_OF[m.type];
      if (kind === undefined) continue;
      const p = m.payload as LifecycleEvent;
      this.expected.set(notificationKey({ userId: p.userId, orderId: p.orderId, sagaId: m.sagaId, kind }), `${m.type} ${m.id}`);
    }
  }

  /** Compensations run latest step first: each one the saga starts is of an earlier step than the one before it. */
  #reverseOrder(saga: SagaState<CheckoutContext>): void {
    const steps = this.#steps.get(saga.definition?.version ?? 1) ?? [];
    let last = Infinity;
    for (const e of saga.history) {
      if (e.event !== 'compensating') continue;
      const i = steps.indexOf(e.step);
      if (i >= last) {
        this.fail(`saga ${saga.id} compensates ${e.step} after ${steps[last] ?? '?'}: compensations must run latest step first`);
        return;
      }
      last = i;
    }
  }

  #scans(outbox: readonly Envelope[]): void {
    for (const m of outbox) {
      if (m.type !== FulfillmentEvents.scanned) continue;
      const p = m.payload as ShipmentScanned;
      if (p.status === 'label_created') continue;
      const kind: NotificationKind = p.status === 'delivered' ? 'delivered' : 'on_the_way';
      this.expected.set(notificationKey({ userId: p.userId, orderId: p.orderId, sagaId: m.sagaId, kind }), `${m.type} ${m.id}`);
    }
  }

  #notifications(outbox: readonly Envelope[]): void {
    for (const m of outbox) {
      if (m.type !== NotificationEvents.sent) continue;
      const p = m.payload as Pick<Notification, 'userId' | 'orderId' | 'kind'>;
      const key = notificationKey({ ...p, sagaId: m.sagaId });
      const ids = this.sent.get(key) ?? new Set<string>();
      ids.add(m.id);
      this.sent.set(key, ids);
      if (ids.size > 1) this.fail(`notification ${key} was sent ${ids.size} times`);
    }
  }
}

function add(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}
