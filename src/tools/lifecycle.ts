import { setTimeout as sleep } from 'node:timers/promises';
import type { Audit } from '../domain/audit.ts';
import { CourseClient, mapLimit } from './client.ts';

export type LifecycleOptions = Readonly<{
  users: number;
  credit: number;
  items: number;
  stock: number;
  price: number;
  orders: number;
  /** Checkouts in flight at once. */
  concurrency: number;
  /** Share of the orders the customer cancels, at a random moment of their checkout (0 to 1). */
  cancelShare: number;
  /** Longest wait before such a cancel, ms. */
  cancelWithinMs: number;
}>;

export type LifecycleResult = Readonly<{
  /** Orders by final status. */
  byStatus: Readonly<Record<string, number>>;
  /** Cancelled orders by who cancelled them (customer, timeout). */
  cancelledBy: Readonly<Record<string, number>>;
  /** Everything that does not add up: empty when every order ended in one outcome and money, stock, shipments and notifications agree. */
  problems: readonly string[];
  audit: Audit;
  /** Seconds from the first checkout until every saga had ended. */
  seconds: number;
}>;

type OrderView = Readonly<{
  order_id: string; user_id: string; status: string; total_cost: number;
  items: { item_id: string; quantity: number }[];
  amounts: { authorized: number; captured: number; refunded: number };
  shipment: { tracking_number: string } | null;
  cancelled: { by: string } | null;
}>;

const json = (client: CourseClient, path: string, body: unknown) => client.call('POST', path, {}, body);

/**
 * The lifecycle under load, through the lifecycle API at `baseUrl`: orders of one or two
 * items, all checked out at once (`Prefer: respond-async`), a share of them cancelled by their
 * customer at a random moment, and the reservation's time to live (the system's setting) racing
 * the rest. Once every saga has ended, checks that each order ended in one outcome and that
 * money, stock, shipments and notifications agree with the outcomes, per user and per item.
 */
export async function lifecycleScenario(baseUrl: string, options: LifecycleOptions, progress: (line: string) => void = () => {}): Promise<LifecycleResult> {
  const client = new CourseClient(baseUrl, Math.max(options.concurrency, 16));
  try {
    const users = await mapLimit(Array.from({ length: options.users }), 32, async () => {
      const { user_id: userId } = await client.post<{ user_id: string }>('/payment/create_user');
      await client.post(`/payment/add_funds/${userId}/${options.credit}`);
      return userId;
    });
    const items = await mapLimit(Array.from({ length: options.items }), 32, async () => {
      const { item_id: itemId } = await client.post<{ item_id: string }>(`/stock/item/create/${options.price}`);
      await client.post(`/stock/add/${itemId}/${options.stock}`);
      return itemId;
    });
    const pick = <T>(list: readonly T[], i: number) => list[i % list.length]!;
    const orderIds = await mapLimit(Array.from({ length: options.orders }, (_, i) => i), 32, async (i) => {
      const lines = i % 2 === 0 ? [{ item_id: pick(items, i), quantity: 1 }] : [{ item_id: pick(items, i), quantity: 1 }, { item_id: pick(items, i * 7 + 3), quantity: 2 }];
      const answer = await json(client, '/api/orders', { user_id: pick(users, i * 13 + 1), items: lines });
      if (answer.status !== 201) throw new Error(`POST /api/orders answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      return (answer.body as { order_id: string }).order_id;
    });
    progress(`${options.orders} orders of ${options.users} users over ${options.items} items`);
    const before = await client.get<Audit>('/admin/audit');

    const started = performance.now();
    const toCancel = new Set(orderIds.filter((_, i) => (i * 0.618033) % 1 < options.cancelShare));
    await mapLimit(orderIds, options.concurrency, async (orderId) => {
      const checkout = client.call('POST', `/api/orders/${orderId}/checkout`, { prefer: 'respond-async' });
      if (toCancel.has(orderId)) {
        await sleep(Math.floor(Math.random() * options.cancelWithinMs));
        await json(client, `/api/orders/${orderId}/cancel`, { reason: 'changed my mind' });
      }
      await checkout;
    });
    progress(`checkouts sent, ${toCancel.size} cancels among them`);
    const audit = await settled(client);
    const seconds = (performance.now() - started) / 1000;

    const orders = await mapLimit(orderIds, 32, async (id) => client.get<OrderView>(`/api/orders/${id}`));
    const problems: string[] = [];
    const byStatus: Record<string, number> = {};
    const cancelledBy: Record<string, number> = {};
    const spent = new Map<string, number>();
    const taken = new Map<string, number>();
    for (const order of orders) {
      byStatus[order.status] = (byStatus[order.status] ?? 0) + 1;
      if (order.cancelled) cancelledBy[order.cancelled.by] = (cancelledBy[order.cancelled.by] ?? 0) + 1;
      const kept = order.amounts.captured - order.amounts.refunded;
      const bought = ['SHIPPED', 'IN_TRANSIT', 'DELIVERED'].includes(order.status);
      if (!bought && !['FAILED', 'CANCELLED'].includes(order.status)) problems.push(`order ${order.order_id} ended ${order.status}`);
      if (kept !== (bought ? order.total_cost : 0)) problems.push(`order ${order.order_id} is ${order.status} and kept ${kept} of ${order.total_cost}`);
      if (bought !== (order.shipment !== null)) problems.push(`order ${order.order_id} is ${order.status} with shipment ${JSON.stringify(order.shipment)}`);
      if (!bought) continue;
      spent.set(order.user_id, (spent.get(order.user_id) ?? 0) + order.total_cost);
      for (const line of order.items) taken.set(line.item_id, (taken.get(line.item_id) ?? 0) + line.quantity);
    }
    // Per user and per item: what is left is what was there less what the bought orders cost.
    await mapLimit(users, 32, async (userId) => {
      const { credit } = await client.get<{ credit: number }>(`/payment/find_user/${userId}`);
      if (credit !== options.credit - (spent.get(userId) ?? 0)) problems.push(`user ${userId} has ${credit}, expected ${options.credit - (spent.get(userId) ?? 0)}`);
    });
    await mapLimit(items, 32, async (itemId) => {
      const { stock } = await client.get<{ stock: number }>(`/stock/find/${itemId}`);
      if (stock !== options.stock - (taken.get(itemId) ?? 0)) problems.push(`item ${itemId} has ${stock}, expected ${options.stock - (taken.get(itemId) ?? 0)}`);
    });
    const bought = (byStatus.SHIPPED ?? 0) + (byStatus.IN_TRANSIT ?? 0) + (byStatus.DELIVERED ?? 0);
    if (audit.stock.reserved !== 0) problems.push(`${audit.stock.reserved} units still reserved`);
    if (audit.payment.held !== 0) problems.push(`${audit.payment.held} credit still held`);
    // Against the totals before the scenario: the system may hold other orders too.
    const shipments = audit.fulfillment.shipments - before.fulfillment.shipments;
    const units = audit.fulfillment.units - before.fulfillment.units;
    const shippedUnits = audit.orders.shipped_units - before.orders.shipped_units;
    if (shipments !== bought) problems.push(`${shipments} shipments for ${bought} orders bought`);
    if (units !== shippedUnits) problems.push(`${units} units shipped, ${shippedUnits} in shipped orders`);
    problems.push(...(await notificationProblems(client, orders)));
    return { byStatus, cancelledBy, problems, audit, seconds };
  } finally {
    await client.close();
  }
}

/** Each order's customer heard each thing once, and what matches how the order ended. */
async function notificationProblems(client: CourseClient, orders: readonly OrderView[]): Promise<string[]> {
  const problems: string[] = [];
  const byUser = new Map<string, OrderView[]>();
  for (const order of orders) byUser.set(order.user_id, [...(byUser.get(order.user_id) ?? []), order]);
  // Notification is eventually consistent: wait until the last order's news has arrived.
  const expected = (order: OrderView): string[] => {
    const refunded = order.amounts.refunded > 0 ? ['refunded'] : [];
    switch (order.status) {
      case 'FAILED':
        return ['failed', ...refunded];
      case 'CANCELLED':
        return ['cancelled', ...refunded];
      default:
        return ['confirmed', 'shipped'];
    }
  };
  const until = performance.now() + 30_000;
  for (const [userId, mine] of byUser) {
    let told: { kind: string; order_id: string }[] = [];
    for (;;) {
      told = (await client.get<{ notifications: { kind: string; order_id: string }[] }>(`/api/customers/${userId}/notifications`)).notifications;
      if (mine.every((o) => expected(o).every((k) => told.some((n) => n.order_id === o.order_id && n.kind === k)))) break;
      if (performance.now() > until) break;
      await sleep(50);
    }
    for (const order of mine) {
      const kinds = told.filter((n) => n.order_id === order.order_id).map((n) => n.kind);
      const missing = expected(order).filter((k) => !kinds.includes(k));
      const twice = kinds.filter((k, i) => kinds.indexOf(k) !== i);
      // A cancel may come after the order was confirmed, or after its checkout failed (a failed
      // order may be checked out again, or cancelled): its customer heard that first.
      const extra = kinds.filter((k) => !expected(order).includes(k) && !(order.status === 'CANCELLED' && (k === 'confirmed' || k === 'failed')));
      if (missing.length + twice.length + extra.length > 0) {
        problems.push(`order ${order.order_id} (${order.status}): told ${kinds.join(', ') || 'nothing'}; missing ${missing.join(', ') || '-'}, twice ${twice.join(', ') || '-'}, unexpected ${extra.join(', ') || '-'}`);
      }
    }
  }
  return problems;
}

/** Waits until no saga is under way, and returns the audit (as `readAudit` reads it). */
export async function settled(client: CourseClient, timeoutMs = 120_000, readAudit = (c: CourseClient) => c.get<Audit>('/admin/audit')): Promise<Audit> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const audit = await readAudit(client);
    if (audit.orders.active_sagas === 0) return audit;
    if (performance.now() > until) throw new Error(`${audit.orders.active_sagas} sagas still active after ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

/**
 * What does not add up between the orders, the shipments and the customers' messages once
 * every saga has ended: one shipment per shipped order with its units, one "shipped" message
 * per such order and one "cancelled" per cancelled order, and a "confirmed" for each paid
 * order (and for no more than the cancelled ones besides: a cancel may follow a confirmation).
 * Notification and fulfillment follow the orders (eventually consistent), so this waits up to
 * `timeoutMs` for them to agree; empty when they do.
 */
export async function lifecycleTotalsProblems(client: CourseClient, timeoutMs = 30_000): Promise<string[]> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const audit = await settled(client, timeoutMs);
    const { orders, fulfillment, notification } = audit;
    const problems: string[] = [];
    if (fulfillment.shipments !== orders.shipped) problems.push(`${fulfillment.shipments} shipments for ${orders.shipped} shipped orders`);
    if (fulfillment.units !== orders.shipped_units) problems.push(`${fulfillment.units} units shipped, ${orders.shipped_units} in shipped orders`);
    if (orders.shipped !== orders.paid) problems.push(`${orders.paid} orders paid, ${orders.shipped} shipped`);
    const told = (kind: string) => notification.by_kind[kind] ?? 0;
    const cancelled = orders.by_status.CANCELLED ?? 0;
    if (told('shipped') !== orders.shipped) problems.push(`${told('shipped')} "shipped" messages for ${orders.shipped} shipped orders`);
    if (told('cancelled') !== cancelled) problems.push(`${told('cancelled')} "cancelled" messages for ${cancelled} cancelled orders`);
    if (told('confirmed') < orders.paid || told('confirmed') > orders.paid + cancelled) problems.push(`${told('confirmed')} "confirmed" messages for ${orders.paid} paid orders and ${cancelled} cancelled`);
    if (problems.length === 0 || performance.now() > until) return problems;
    await sleep(250);
  }
}
