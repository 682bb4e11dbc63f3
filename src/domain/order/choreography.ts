import { retrigger, type EventPayload } from '../../core/choreography.ts';
import type { Decider, Decision } from '../../core/decider.ts';
import type { Envelope, Outgoing } from '../../core/message.ts';
import { isActive, observe, onTimer, replyOf, SAGA_TIMER, type SagaDefinition, type SagaTimer } from '../../core/saga.ts';
import { sagaReplyTypes } from './checkoutSaga.ts';
import { attemptOf, orderCommands, outcomeEvents, parseOrderMessage } from './businessLogic.ts';
import { OrderEvents, orderKey, type CheckoutContext, type Order, type OrderApiCommand, type OrderMessage } from './order.ts';

type Attempt = NonNullable<ReturnType<typeof attemptOf>>;

/**
 * The order service in a choreography: nobody is commanded. It starts a checkout by publishing
 * `CheckoutRequested`, follows the events the participants publish with its saga's state
 * machine (events that come early wait), and when a step stalls publishes again the event
 * that step reacts to; it never gives up on a saga, since nobody could command the
 * compensation.
 */
export function choreographedOrders(saga: SagaDefinition<CheckoutContext>): Decider<OrderMessage, OrderApiCommand> {
  return {
    consumes: [...sagaReplyTypes(saga), SAGA_TIMER],
    parse: parseOrderMessage,
    keys: (message) => [orderKey(message.correlationId)],

    decide(message, read, now): Decision {
      const attempt = attemptOf(message, read);
      if (!attempt) return {};
      return message.type === SAGA_TIMER ? nudge(saga, attempt, message, now) : follow(saga, attempt, message, now);
    },

    // Participants react to the request; the saga's own timer stays, to nudge a stalled step.
    api: orderCommands(saga, (started, ctx) => [
      { type: OrderEvents.requested, payload: { ctx } satisfies EventPayload<CheckoutContext>, sagaId: started.state.id, step: '' },
      ...started.send.filter((out) => out.type === SAGA_TIMER),
    ]),
  };
}

/** A participant's event moves the saga the order follows (events that come early wait). */
function follow(saga: SagaDefinition<CheckoutContext>, { key, order, state }: Attempt, message: Envelope<Exclude<OrderMessage, SagaTimer>>, now: number): Decision {
  const seen = observe(saga, { state, early: order.early ?? [] }, replyOf(message), now);
  const { early: _early, ...rest } = order;
  const next: Order = seen.early.length > 0 ? { ...rest, checkout: seen.state, early: seen.early } : { ...rest, checkout: seen.state };
  const ended = isActive(state) && !isActive(seen.state);
  return { writes: { [key]: next }, send: outcomeEvents(seen.outcome), cancel: ended ? [state.timer] : [] };
}

/**
 * The saga's timer. After a time-out without progress, the order publishes again what the
 * stalled step reacts to.
 */
function nudge(saga: SagaDefinition<CheckoutContext>, { key, order, state }: Attempt, message: Envelope<SagaTimer>, now: number): Decision {
  const patient = { ...saga, policy: { ...saga.policy, maxAttempts: Number.MAX_SAFE_INTEGER } };
  const transition = onTimer(patient, state, message.id, message.payload.seq, now);
  if (!transition) return { writes: { [key]: order }, send: [], cancel: [] };
  const timers = transition.send.filter((out) => out.type === SAGA_TIMER);
  const stalled = transition.send.length > timers.length && isActive(transition.state) ? transition.state : undefined;
  const again = (stalled ? retrigger(saga, OrderEvents.requested, stalled) : []).map((event): Outgoing => ({
    type: event.type,
    step: event.step,
    payload: { ctx: state.ctx, ...(event.detail === undefined ? {} : { detail: event.detail }) } satisfies EventPayload<CheckoutContext>,
  }));
  return { writes: { [key]: { ...order, checkout: transition.state } }, send: [...again, ...timers], cancel: [] };
}
