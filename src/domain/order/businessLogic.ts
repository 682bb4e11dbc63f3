import { batchKeys, busyFixture, replaced } from '../fixtures.ts';
import { assertNever, fail, ok, type Decision, type Read } from '../../core/decider.ts';
import type { Envelope, Outgoing } from '../../core/message.ts';
import { mutations } from '../../core/mutations.ts';
import { parserOf } from '../../core/parse.ts';
import {
  abortSaga, definitionFor, isActive, startSaga,
  type SagaDefinition, type SagaState, type SagaVersions, type Transition,
} from '../../core/saga.ts';
import { FulfillmentEvents, FulfillmentReplies, statusRank } from '../fulfillment/fulfillment.ts';
import { MAX_AMOUNT } from '../limits.ts';
import { StockCommands, type Line } from '../stock/stock.ts';
import {
  CheckoutSteps, isPaid, OrderEvents, orderKey, orderMessageChecks, orderStatus, PAID, RESERVATION_EXPIRED, SHIPPED, succeeded,
  type CheckoutContext, type LifecycleEvent, type Order, type OrderApiCommand, type OrderMessage,
} from './order.ts';

/**
 * What the order service decides in every coordination style: its API (create, add item,
 * batch init, the start of a checkout attempt, cancel), the check of what it consumes, and
 * what every change of an order tells (its lifecycle events). Each style's decider
 * (orchestration.ts, choreography.ts) adds how a checkout is told to the others and how
 * their replies move it on.
 */

/** What a checkout command answers: the order is paid already, or a saga is under way. */
export type CheckoutAnswer = Readonly<{ paid: true } | { paid: false; sagaId: string }>;

/**
 * How a coordination style tells the others that a checkout attempt started, or was aborted:
 * what the state machine would send → what is sent.
 */
export type Style = Readonly<{
  start(started: Transition<CheckoutContext>, ctx: CheckoutContext): readonly Outgoing[];
  abort(aborted: Transition<CheckoutContext>, ctx: CheckoutContext, reason: string): readonly Outgoing[];
}>;

export type OrderOptions = Readonly<{
  /** A reservation not paid for within this long is cancelled (0: never). */
  reservationTtlMs: number;
}>;

export const parseOrderMessage = parserOf(orderMessageChecks);

/** The order service's API, with `style` saying how a checkout attempt is sent on its way or stopped. */
export function orderCommands(versions: SagaVersions<CheckoutContext>, style: Style, options: OrderOptions) {
  return {
    keys(command: OrderApiCommand): readonly string[] {
      switch (command.type) {
        case 'CreateOrder':
        case 'AddItem':
        case 'Checkout':
        case 'Cancel':
          return [orderKey(command.orderId)];
        case 'InitOrders':
          return batchKeys(command.count, orderKey);
        default:
          return assertNever(command);
      }
    },
    decide(command: OrderApiCommand, read: Read, now: number): Decision {
      switch (command.type) {
        case 'CreateOrder':
          return create(command);
        case 'AddItem':
          return addItem(command, read);
        case 'Checkout':
          return checkout(versions.current, style, options, command, read, now);
        case 'Cancel':
          return cancel(versions, style, command, read, now);
        case 'InitOrders':
          return initOrders(command, read);
        default:
          return assertNever(command);
      }
    },
  };
}

export type Attempt = Readonly<{ key: string; order: Order; state: SagaState<CheckoutContext> }>;

/**
 * The order and its current checkout attempt a saga message belongs to (matched by the
 * correlation id, the order id); undefined for a message of an older attempt.
 */
export function attemptOf(message: Envelope<OrderMessage>, read: Read): Attempt | undefined {
  const key = orderKey(message.correlationId);
  const order = read<Order>(key);
  const state = order?.checkout;
  return order && state && state.id === message.sagaId ? { key, order, state } : undefined;
}

/**
 * What the order does with a message of its current attempt, in every style: a carrier scan
 * moves the shipment on; the reservation's time to live aborts a checkout not yet paid for;
 * anything else is the style's (`next`: the order as the message leaves it, or undefined when
 * the message changes nothing). Then the order tells what changed (`settled`).
 */
export function onOrderMessage(
  { key, order, state }: Attempt,
  message: Envelope<OrderMessage>,
  now: number,
  next: (order: Order, state: SagaState<CheckoutContext>) => Readonly<{ order: Order; send: readonly Outgoing[]; cancel: readonly string[] }> | undefined,
  abort: (order: Order, state: SagaState<CheckoutContext>, reason: string) => Readonly<{ order: Order; send: readonly Outgoing[] }> | undefined,
): Decision {
  if (message.type === FulfillmentEvents.scanned) {
    // A scan moves the shipment only forward (one may even come before the order heard the shipment was made).
    const { trackingNumber, status } = message.payload;
    const shipment = order.shipment ?? { trackingNumber, carrier: '', label: '', status: 'label_created' };
    if (order.shipment && statusRank(status) <= statusRank(shipment.status)) return {};
    return settled(key, order, { ...order, shipment: { ...shipment, status } }, [], []);
  }
  if (message.type === RESERVATION_EXPIRED) {
    // A bug the simulator's tests put back: a time to live that fires late releases the stock of a paid order.
    if (mutations.ttlAfterCapture && succeeded(state, CheckoutSteps.capturePayment)) return { send: [{ type: StockCommands.release, payload: { lines: state.ctx.lines }, step: CheckoutSteps.reserveStock }] };
    if (order.ttl !== message.id) return {};
    const { ttl: _ttl, ...rest } = order;
    const reason = 'the reservation expired before the order was paid';
    const stopped = succeeded(state, CheckoutSteps.capturePayment) ? undefined : abort(rest, state, reason);
    if (!stopped) return { writes: { [key]: rest } };
    const cancelled: Order = { ...stopped.order, cancelled: { by: 'timeout', reason, at: now, sagaId: state.id } };
    return settled(key, order, cancelled, stopped.send, []);
  }
  const moved = next(order, state);
  if (!moved) return {};
  // The shipment is recorded as fulfillment made it (in choreography its event may come
  // before the one the saga waits for first: the order ships once the saga says so).
  const after = moved.order.checkout;
  const live = after !== undefined && (after.status === 'running' || after.status === 'completed');
  const made = message.type === FulfillmentReplies.created && live ? message.payload : undefined;
  const shipment = made && { trackingNumber: made.trackingNumber, carrier: made.carrier, label: made.label, status: moved.order.shipment?.status ?? 'label_created' };
  return settled(key, order, shipment ? { ...moved.order, shipment } : moved.order, moved.send, moved.cancel);
}

/**
 * An order's change, committed with what it tells: the lifecycle events of the states it
 * reached (confirmed, shipped; failed or cancelled, and refunded when money was given back), and
 * the end of the reservation's time to live once the order is paid or its checkout over.
 */
export function settled(key: string, before: Order, after: Order, send: readonly Outgoing[], cancel: readonly string[]): Decision {
  const saga = after.checkout;
  const over = saga !== undefined && (succeeded(saga, CheckoutSteps.capturePayment) || !isActive(saga));
  const { ttl, shipment, ...rest } = after;
  // A shipment made for a checkout that is being undone is cancelled with it (in choreography
  // the order may hear it was made after it was aborted): the order no longer has one.
  const undone = saga !== undefined && (saga.status === 'compensating' || saga.status === 'failed');
  const kept: Order = shipment !== undefined && !undone ? { ...rest, shipment } : rest;
  const order: Order = ttl !== undefined && !over ? { ...kept, ttl } : kept;
  const stop = ttl !== undefined && over ? [ttl] : [];
  return { writes: { [key]: order }, send: [...send, ...lifecycleEvents(before, order)], cancel: [...cancel, ...stop] };
}

/** The lifecycle events of what changed from `before` to `after`. */
export function lifecycleEvents(before: Order, after: Order): Outgoing[] {
  const saga = after.checkout;
  if (!saga) return [];
  const event = (type: string, extra: Partial<LifecycleEvent> = {}): Outgoing => {
    const payload: LifecycleEvent = { orderId: saga.ctx.orderId, userId: after.userId, amount: saga.ctx.amount, ...extra };
    return { type, payload };
  };
  const out: Outgoing[] = [];
  const [was, is] = [orderStatus(before), orderStatus(after)];
  if (!PAID.has(was) && PAID.has(is)) out.push(event(OrderEvents.confirmed));
  if (!SHIPPED.has(was) && SHIPPED.has(is)) out.push(event(OrderEvents.shipped, { trackingNumber: after.shipment?.trackingNumber ?? '' }));
  const same = before.checkout?.id === saga.id ? before.checkout : undefined;
  if (saga.status === 'failed' && same?.status !== 'failed') {
    const cancelled = after.cancelled?.sagaId === saga.id ? after.cancelled : undefined;
    out.push(cancelled ? event(OrderEvents.cancelled, { reason: cancelled.reason }) : event(OrderEvents.failed, { reason: saga.reason }));
    if (succeeded(saga, CheckoutSteps.capturePayment)) out.push(event(OrderEvents.refunded));
  }
  if (saga.status === 'completed' && same?.status !== 'completed') out.push({ type: OrderEvents.completed, payload: {} });
  return out;
}

function create(command: Extract<OrderApiCommand, { type: 'CreateOrder' }>): Decision {
  const items = command.items ?? [];
  const totalCost = items.reduce((sum, item) => sum + item.quantity * item.price, 0);
  if (totalCost > MAX_AMOUNT) return { reply: fail('amount-too-large', `The total cost of the order would exceed ${MAX_AMOUNT}.`) };
  const order: Order = { userId: command.userId, lines: items.map((i): Line => [i.itemId, i.quantity]), totalCost, attempts: 0 };
  return { writes: { [orderKey(command.orderId)]: order }, reply: ok({ order_id: command.orderId }) };
}

function addItem(command: Extract<OrderApiCommand, { type: 'AddItem' }>, read: Read): Decision {
  const order = read<Order>(orderKey(command.orderId));
  if (!order) return { reply: fail('order-not-found', `Order ${command.orderId} does not exist.`) };
  if (order.cancelled) return { reply: fail('order-cancelled', `Order ${command.orderId} is cancelled; items can no longer be added.`) };
  if (order.checkout && order.checkout.status !== 'failed') {
    return { reply: fail('order-locked', `Order ${command.orderId} is ${isPaid(order) ? 'already paid' : 'being checked out'}; items can no longer be added.`) };
  }
  const cost = command.quantity * command.price;
  if (order.totalCost + cost > MAX_AMOUNT) {
    return { reply: fail('amount-too-large', `The total cost of order ${command.orderId} would exceed ${MAX_AMOUNT}.`) };
  }
  const line: Line = [command.itemId, command.quantity];
  const next: Order = { ...order, lines: [...order.lines, line], totalCost: order.totalCost + cost };
  return { writes: { [orderKey(command.orderId)]: next }, reply: ok({ total_cost: next.totalCost }) };
}

/** Starts a checkout attempt unless the order is paid or one is under way (then joins it). */
function checkout(saga: SagaDefinition<CheckoutContext>, style: Style, options: OrderOptions, command: Extract<OrderApiCommand, { type: 'Checkout' }>, read: Read, now: number): Decision {
  const { orderId, sagaId } = command;
  const key = orderKey(orderId);
  const order = read<Order>(key);
  if (!order) return { reply: fail('order-not-found', `Order ${orderId} does not exist.`) };
  if (order.cancelled) return { reply: fail('order-cancelled', `Order ${orderId} was cancelled (${order.cancelled.reason}); it cannot be checked out.`) };
  const current = order.checkout;
  if (isPaid(order)) return { reply: ok({ paid: true } satisfies CheckoutAnswer) };
  if (current && isActive(current)) return { reply: ok({ paid: false, sagaId: current.id } satisfies CheckoutAnswer) };
  if (current?.status === 'completed') return { reply: ok({ paid: true } satisfies CheckoutAnswer) };
  // Saga ids must never repeat, even for an order re-created under the same id (batch_init):
  // participants remember every saga id they saw.
  const attempts = order.attempts + 1;
  const ctx: CheckoutContext = { orderId, userId: order.userId, lines: order.lines, amount: order.totalCost };
  const transition = startSaga(saga, sagaId, ctx, now);
  const { early: _early, ttl: _ttl, ...rest } = order;
  // The failed attempt before this one stays in the order: the saga API keeps every attempt.
  const failed = current ? [...(order.failed ?? []), current] : order.failed;
  const started: Order = failed ? { ...rest, attempts, checkout: transition.state, failed } : { ...rest, attempts, checkout: transition.state };
  // The reservation's time to live: a durable timer, like the saga's own.
  const ttl = options.reservationTtlMs > 0 ? `${sagaId}/ttl` : undefined;
  const timer: Outgoing[] = ttl ? [{ id: ttl, type: RESERVATION_EXPIRED, payload: {}, sagaId, step: '', deliverAt: now + options.reservationTtlMs }] : [];
  return {
    writes: { [key]: ttl ? { ...started, ttl } : started },
    send: [...style.start(transition, ctx), ...timer].map((out) => ({ ...out, correlationId: orderId })),
    reply: ok({ paid: false, sagaId } satisfies CheckoutAnswer),
  };
}

/**
 * The customer's cancel: before a checkout, or after one failed, the order is cancelled at
 * once; during one, its saga is aborted (every step undone) and the order ends CANCELLED once
 * that is done; once shipped, it can no longer be. Cancelling twice answers the same.
 */
function cancel(versions: SagaVersions<CheckoutContext>, style: Style, command: Extract<OrderApiCommand, { type: 'Cancel' }>, read: Read, now: number): Decision {
  const { orderId, reason } = command;
  const key = orderKey(orderId);
  const order = read<Order>(key);
  if (!order) return { reply: fail('order-not-found', `Order ${orderId} does not exist.`) };
  const status = orderStatus(order);
  const answer = ok({ order_id: orderId, status: 'CANCELLED' });
  if (status === 'CANCELLED') return { reply: answer };
  const saga = order.checkout;
  const cancellation = { by: 'customer' as const, reason, at: now, ...(saga ? { sagaId: saga.id } : {}) };
  if (!saga || saga.status === 'failed') {
    const cancelled: Order = { ...order, cancelled: cancellation };
    const event: LifecycleEvent = { orderId, userId: order.userId, amount: order.totalCost, reason };
    return { writes: { [key]: cancelled }, send: [{ type: OrderEvents.cancelled, payload: event, correlationId: orderId }], reply: answer };
  }
  const refused = (why: string) => ({ reply: fail('order-not-cancellable', `Order ${orderId} is ${status}: ${why}`) });
  if (saga.status === 'compensating') return refused(`its checkout failed (${saga.reason}) and is being undone.`);
  const def = definitionFor(versions, saga);
  const aborted = abortSaga(def, saga, reason, now);
  if (!aborted) {
    return refused(SHIPPED.has(status)
      ? `it has shipped (tracking number ${order.shipment?.trackingNumber ?? 'unknown'}); it can no longer be cancelled.`
      : `its checkout (version ${def.version}) is past the point where it can be cancelled.`);
  }
  const next: Order = { ...order, checkout: aborted.state, cancelled: cancellation };
  const decision = settled(key, order, next, style.abort(aborted, saga.ctx, reason).map((out) => ({ ...out, correlationId: orderId })), aborted.cancel);
  return { ...decision, reply: answer };
}

/** Orders "0" … "count-1", each with two random items and a random user, from a seeded generator. */
function initOrders(command: Extract<OrderApiCommand, { type: 'InitOrders' }>, read: Read): Decision {
  const active = (order: Order) => order.checkout?.status === 'running' || order.checkout?.status === 'compensating';
  const replacing = replaced(command.count, (i) => read<Order>(orderKey(String(i))), active);
  if (replacing.busy !== undefined) return { reply: busyFixture('orders', command.count, replacing.busy, 'a checkout under way') };
  const random = mulberry32(command.seed);
  const pick = (n: number) => String(Math.floor(random() * n));
  const writes: Record<string, unknown> = {};
  for (let i = 0; i < command.count; i++) {
    const order: Order = {
      userId: pick(command.users),
      lines: [[pick(command.items), 1], [pick(command.items), 1]],
      totalCost: 2 * command.price,
      attempts: 0,
    };
    writes[orderKey(String(i))] = order;
  }
  return { writes, reply: ok({ msg: `Batch init for ${command.count} orders successful`, replaced: replacing.existing }) };
}

/** A small seeded pseudo-random generator, so the decision stays a pure function of its input. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
