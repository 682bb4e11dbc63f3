import { assertNever, fail, ok, type Decision, type Read } from '../../core/decider.ts';
import type { Envelope, Outgoing } from '../../core/message.ts';
import { parserOf } from '../../core/parse.ts';
import { isActive, startSaga, type SagaDefinition, type SagaOutcome, type SagaState, type Transition } from '../../core/saga.ts';
import { MAX_AMOUNT } from '../limits.ts';
import type { Line } from '../stock/stock.ts';
import {
  OrderEvents, orderKey, orderMessageChecks,
  type CheckoutContext, type CheckoutFailed, type Order, type OrderApiCommand, type OrderMessage,
} from './order.ts';

/**
 * What the order service decides in every coordination style: its API (create, add item,
 * batch init, and the start of a checkout attempt) and the check of what it consumes. Each
 * style's decider (orchestration.ts, choreography.ts) adds how a checkout is told to the
 * others and how their replies move it on.
 */

/** What a checkout command answers: the order is paid already, or a saga is under way. */
export type CheckoutAnswer = Readonly<{ paid: true } | { paid: false; sagaId: string }>;

/** How a style tells the others that a checkout attempt started: what the started saga would send → what is sent. */
export type Announce = (started: Transition<CheckoutContext>, ctx: CheckoutContext) => readonly Outgoing[];

export const parseOrderMessage = parserOf(orderMessageChecks);

/** The order service's API, with `announce` saying how a checkout attempt is sent on its way. */
export function orderCommands(saga: SagaDefinition<CheckoutContext>, announce: Announce) {
  return {
    keys(command: OrderApiCommand): readonly string[] {
      switch (command.type) {
        case 'CreateOrder':
        case 'AddItem':
        case 'Checkout':
          return [orderKey(command.orderId)];
        case 'InitOrders':
          return [];
        default:
          return assertNever(command);
      }
    },
    decide(command: OrderApiCommand, read: Read, now: number): Decision {
      switch (command.type) {
        case 'CreateOrder': {
          const order: Order = { userId: command.userId, lines: [], totalCost: 0, attempts: 0 };
          return { writes: { [orderKey(command.orderId)]: order }, reply: ok({ order_id: command.orderId }) };
        }
        case 'AddItem':
          return addItem(command, read);
        case 'Checkout':
          return checkout(saga, announce, command, read, now);
        case 'InitOrders':
          return initOrders(command);
        default:
          return assertNever(command);
      }
    },
  };
}

/**
 * The order and its current checkout attempt a saga message belongs to (matched by the
 * correlation id, the order id); undefined for a message of an older attempt.
 */
export function attemptOf(message: Envelope<OrderMessage>, read: Read): Readonly<{ key: string; order: Order; state: SagaState<CheckoutContext> }> | undefined {
  const key = orderKey(message.correlationId);
  const order = read<Order>(key);
  const state = order?.checkout;
  return order && state && state.id === message.sagaId ? { key, order, state } : undefined;
}

/** The order service's events about a checkout that just ended. */
export function outcomeEvents(outcome: SagaOutcome | undefined): Outgoing[] {
  if (outcome?.status === 'completed') return [{ type: OrderEvents.completed, payload: {} }];
  if (outcome?.status === 'failed') return [{ type: OrderEvents.failed, payload: { reason: outcome.reason } satisfies CheckoutFailed }];
  return [];
}

function addItem(command: Extract<OrderApiCommand, { type: 'AddItem' }>, read: Read): Decision {
  const order = read<Order>(orderKey(command.orderId));
  if (!order) return { reply: fail('order-not-found', `Order ${command.orderId} does not exist.`) };
  if (order.checkout && order.checkout.status !== 'failed') {
    return { reply: fail('order-locked', `Order ${command.orderId} is ${order.checkout.status === 'completed' ? 'already paid' : 'being checked out'}; items can no longer be added.`) };
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
function checkout(saga: SagaDefinition<CheckoutContext>, announce: Announce, command: Extract<OrderApiCommand, { type: 'Checkout' }>, read: Read, now: number): Decision {
  const { orderId, sagaId } = command;
  const key = orderKey(orderId);
  const order = read<Order>(key);
  if (!order) return { reply: fail('order-not-found', `Order ${orderId} does not exist.`) };
  const current = order.checkout;
  if (current?.status === 'completed') return { reply: ok({ paid: true } satisfies CheckoutAnswer) };
  if (current && isActive(current)) return { reply: ok({ paid: false, sagaId: current.id } satisfies CheckoutAnswer) };
  // Saga ids must never repeat, even for an order re-created under the same id (batch_init):
  // participants remember every saga id they saw.
  const attempts = order.attempts + 1;
  const ctx: CheckoutContext = { orderId, userId: order.userId, lines: order.lines, amount: order.totalCost };
  const transition = startSaga(saga, sagaId, ctx, now);
  const { early: _early, ...rest } = order;
  // The failed attempt before this one stays in the order: the saga API keeps every attempt.
  const failed = current ? [...(order.failed ?? []), current] : order.failed;
  const next: Order = failed ? { ...rest, attempts, checkout: transition.state, failed } : { ...rest, attempts, checkout: transition.state };
  return {
    writes: { [key]: next },
    send: announce(transition, ctx).map((out) => ({ ...out, correlationId: orderId })),
    reply: ok({ paid: false, sagaId } satisfies CheckoutAnswer),
  };
}

/** Orders "0" … "count-1", each with two random items and a random user, from a seeded generator. */
function initOrders(command: Extract<OrderApiCommand, { type: 'InitOrders' }>): Decision {
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
  return { writes, reply: ok({ msg: `Batch init for ${command.count} orders successful` }) };
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
