import { assertNever, fail, ok, type Decider, type Decision, type Read } from '../../core/decider.ts';
import type { Envelope, Outgoing } from '../../core/message.ts';
import { retrigger, type EventPayload } from '../../core/choreography.ts';
import {
  isActive, observe, onReply, onTimer, replyOf, SAGA_TIMER, startSaga,
  type SagaDefinition, type SagaOutcome, type SagaState, type SagaTimerPayload, type Transition,
} from '../../core/saga.ts';
import { MAX_AMOUNT } from '../limits.ts';
import type { Line } from '../stock/stock.ts';
import { sagaReplyTypes } from './checkoutSaga.ts';
import {
  OrderEvents, orderKey,
  type CheckoutContext, type CheckoutFailed, type Order, type OrderApiCommand,
} from './order.ts';

/** What a checkout command answers: the order is paid already, or a saga is under way. */
export type CheckoutAnswer = Readonly<{ paid: true } | { paid: false; sagaId: string }>;

/**
 * How the order service takes part in its checkouts: it `commands` them (orchestration, and the
 * synchronous style, where the commands travel over HTTP) or it follows the `events` the
 * participants publish (choreography: it starts the saga, watches it end, and when a step
 * stalls publishes again the event that step reacts to; it never gives up on a saga).
 */
export type Coordination = 'commands' | 'events';

/**
 * The order service: it owns orders and runs each checkout's saga state machine.
 * Replies, events and timers of the saga are matched to the order by correlation id (the order
 * id); those of an older attempt match nothing.
 */
export function orderDecider(saga: SagaDefinition<CheckoutContext>, coordination: Coordination = 'commands'): Decider {
  return {
    consumes: [...sagaReplyTypes(saga), SAGA_TIMER],

    keys(message) {
      if (message.type === SAGA_TIMER || message.sagaId !== '') return [orderKey(message.correlationId)];
      return apiKeys(message.payload as OrderApiCommand);
    },

    decide(message, read, now) {
      if (message.type === SAGA_TIMER || message.sagaId !== '') return sagaMessage(saga, coordination, message, read, now);
      return api(saga, coordination, message.payload as OrderApiCommand, read, now);
    },
  };
}

function sagaMessage(saga: SagaDefinition<CheckoutContext>, coordination: Coordination, message: Envelope, read: Read, now: number): Decision {
  const key = orderKey(message.correlationId);
  const order = read<Order>(key);
  const state = order?.checkout;
  if (!order || !state || state.id !== message.sagaId) return {};
  if (coordination === 'events') {
    const { order: next, send, cancel } = message.type === SAGA_TIMER ? nudge(saga, order, state, message, now) : follow(saga, order, state, message, now);
    return { writes: { [key]: next }, send, cancel: cancel ?? [] };
  }
  const transition = message.type === SAGA_TIMER
    ? onTimer(saga, state, message.id, (message.payload as SagaTimerPayload).seq, now)
    : onReply(saga, state, replyOf(message), now);
  return transition ? apply(key, order, transition) : {};
}

type Followed = Readonly<{ order: Order; send: readonly Outgoing[]; cancel?: readonly string[] }>;

/** Choreography: a participant's event moves the saga the order follows (events that come early wait). */
function follow(saga: SagaDefinition<CheckoutContext>, order: Order, state: SagaState<CheckoutContext>, message: Envelope, now: number): Followed {
  const seen = observe(saga, { state, early: order.early ?? [] }, replyOf(message), now);
  const { early: _early, ...rest } = order;
  const next: Order = seen.early.length > 0 ? { ...rest, checkout: seen.state, early: seen.early } : { ...rest, checkout: seen.state };
  const ended = isActive(state) && !isActive(seen.state);
  return { order: next, send: outcomeEvents(seen.outcome), cancel: ended ? [state.timer] : [] };
}

/**
 * Choreography: the saga's timer. After a time-out without progress, the order publishes again
 * what the stalled step reacts to; it never gives up on a saga, since nobody could command the
 * compensation.
 */
function nudge(saga: SagaDefinition<CheckoutContext>, order: Order, state: SagaState<CheckoutContext>, message: Envelope, now: number): Followed {
  const patient = { ...saga, policy: { ...saga.policy, maxAttempts: Number.MAX_SAFE_INTEGER } };
  const transition = onTimer(patient, state, message.id, (message.payload as SagaTimerPayload).seq, now);
  if (!transition) return { order, send: [] };
  const timers = transition.send.filter((out) => out.type === SAGA_TIMER);
  const stalled = transition.send.length > timers.length && isActive(transition.state) ? transition.state : undefined;
  const again = (stalled ? retrigger(saga, OrderEvents.requested, stalled) : []).map((event): Outgoing => ({
    type: event.type,
    step: event.step,
    payload: { ctx: state.ctx, ...(event.detail === undefined ? {} : { detail: event.detail }) } satisfies EventPayload<CheckoutContext>,
  }));
  return { order: { ...order, checkout: transition.state }, send: [...again, ...timers] };
}

function apply(key: string, order: Order, transition: Transition<CheckoutContext>): Decision {
  const next: Order = { ...order, checkout: transition.state };
  return { writes: { [key]: next }, send: [...transition.send, ...outcomeEvents(transition.outcome)], cancel: transition.cancel };
}

function outcomeEvents(outcome: SagaOutcome | undefined): Outgoing[] {
  if (outcome?.status === 'completed') return [{ type: OrderEvents.completed, payload: {} }];
  if (outcome?.status === 'failed') return [{ type: OrderEvents.failed, payload: { reason: outcome.reason } satisfies CheckoutFailed }];
  return [];
}

function apiKeys(command: OrderApiCommand): string[] {
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
}

function api(saga: SagaDefinition<CheckoutContext>, coordination: Coordination, command: OrderApiCommand, read: Read, now: number): Decision {
  switch (command.type) {
    case 'CreateOrder': {
      const order: Order = { userId: command.userId, lines: [], totalCost: 0, attempts: 0 };
      return { writes: { [orderKey(command.orderId)]: order }, reply: ok({ order_id: command.orderId }) };
    }
    case 'AddItem': {
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
    case 'Checkout':
      return checkout(saga, coordination, command, read, now);
    case 'InitOrders':
      return initOrders(command);
    default:
      return assertNever(command);
  }
}

/** Starts a checkout attempt unless the order is paid or one is under way (then joins it). */
function checkout(saga: SagaDefinition<CheckoutContext>, coordination: Coordination, command: Extract<OrderApiCommand, { type: 'Checkout' }>, read: Read, now: number): Decision {
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
  // In choreography nobody is commanded: the participants react to the request (the timer stays).
  const send = coordination === 'commands'
    ? transition.send
    : [
      { type: OrderEvents.requested, payload: { ctx } satisfies EventPayload<CheckoutContext>, sagaId, step: '' },
      ...transition.send.filter((out) => out.type === SAGA_TIMER),
    ];
  return {
    writes: { [key]: next },
    send: send.map((out) => ({ ...out, correlationId: orderId })),
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
