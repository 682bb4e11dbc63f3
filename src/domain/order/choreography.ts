import { retrigger, type EventPayload } from '../../core/choreography.ts';
import type { Decider, Decision } from '../../core/decider.ts';
import type { Outgoing } from '../../core/message.ts';
import {
  abortSaga, definitionFor, isActive, observe, onTimer, replyOf, SAGA_TIMER,
  type SagaDefinition, type SagaReply, type SagaState, type SagaVersions, type Transition,
} from '../../core/saga.ts';
import { FulfillmentEvents } from '../fulfillment/fulfillment.ts';
import { sagaReplyTypes } from './checkoutSaga.ts';
import { attemptOf, onOrderMessage, orderCommands, parseOrderMessage, type OrderOptions } from './businessLogic.ts';
import { OrderEvents, orderKey, RESERVATION_EXPIRED, type CheckoutContext, type Order, type OrderApiCommand, type OrderMessage } from './order.ts';

/**
 * The order service in a choreography: nobody is commanded. It starts a checkout by publishing
 * `CheckoutRequested`, follows the events the participants publish with its saga's state
 * machine (events that come early wait), and when a step stalls publishes again the event
 * that step reacts to; it never gives up on a saga, since nobody could command the
 * compensation. To abort a checkout (cancel, time to live) it publishes `CheckoutCancelled`,
 * on which the participants undo their steps, latest first.
 */
export function choreographedOrders(versions: SagaVersions<CheckoutContext>, options: OrderOptions): Decider<OrderMessage, OrderApiCommand> {
  return {
    consumes: [...sagaReplyTypes(versions), SAGA_TIMER, RESERVATION_EXPIRED, FulfillmentEvents.scanned],
    parse: parseOrderMessage,
    keys: (message) => [orderKey(message.correlationId)],

    decide(message, read, now): Decision {
      const attempt = attemptOf(message, read);
      if (!attempt) return {};
      const saga = definitionFor(versions, attempt.state);
      return onOrderMessage(attempt, message, now, (order, state) => (message.type === SAGA_TIMER
        ? nudge(saga, order, state, message.id, message.payload.seq, now)
        : follow(saga, order, state, replyOf(message), now)
      ), (order, state, reason) => {
        const aborted = abortSaga(saga, state, reason, now);
        return aborted && { order: { ...order, checkout: aborted.state }, send: abortEvent(aborted, state.ctx, reason) };
      });
    },

    // Participants react to the request; the saga's own timer stays, to nudge a stalled step.
    api: orderCommands(versions, {
      start: (started, ctx) => [
        { type: OrderEvents.requested, payload: { ctx, version: versionOf(started.state) } satisfies EventPayload<CheckoutContext>, sagaId: started.state.id, step: '' },
        ...timersIn(started),
      ],
      abort: (aborted, ctx, reason) => abortEvent(aborted, ctx, reason),
    }, options),
  };
}

/** What aborts a saga in choreography: the event the latest undoable step reacts to (the saga's timer stays as it is). */
function abortEvent(aborted: Transition<CheckoutContext>, ctx: CheckoutContext, reason: string): Outgoing[] {
  const payload = { ctx, reason, detail: reason, version: versionOf(aborted.state), ...abortedAt(aborted.state) } satisfies EventPayload<CheckoutContext>;
  return [{ type: OrderEvents.aborted, payload, sagaId: aborted.state.id, step: '' }];
}

/** Where the saga was when it was aborted (the tracker orders the events it saw by it). */
function abortedAt(state: SagaState<CheckoutContext>): { abortedAt?: string } {
  const step = state.history.findLast((e) => e.event === 'aborted')?.step;
  return step === undefined ? {} : { abortedAt: step };
}

/** The version a saga runs under, which its events carry (so each participant reacts as that version says). */
const versionOf = (state: SagaState<CheckoutContext>) => state.definition?.version ?? 1;

const timersIn = (transition: Transition<CheckoutContext>) => transition.send.filter((out) => out.type === SAGA_TIMER);

/** A participant's event moves the saga the order follows (events that come early wait). */
function follow(saga: SagaDefinition<CheckoutContext>, order: Order, state: SagaState<CheckoutContext>, reply: SagaReply, now: number) {
  const seen = observe(saga, { state, early: order.early ?? [] }, reply, now);
  const { early: _early, ...rest } = order;
  const next: Order = seen.early.length > 0 ? { ...rest, checkout: seen.state, early: seen.early } : { ...rest, checkout: seen.state };
  const ended = isActive(state) && !isActive(seen.state);
  return { order: next, send: [], cancel: ended ? [state.timer] : [] };
}

/**
 * The saga's timer. After a time-out without progress, the order publishes again what the
 * stalled step reacts to.
 */
function nudge(saga: SagaDefinition<CheckoutContext>, order: Order, state: SagaState<CheckoutContext>, timer: string, seq: number, now: number) {
  const patient = { ...saga, policy: { ...saga.policy, maxAttempts: Number.MAX_SAFE_INTEGER } };
  const transition = onTimer(patient, state, timer, seq, now);
  if (!transition) return { order, send: [], cancel: [] };
  const timers = timersIn(transition);
  const stalled = transition.send.length > timers.length && isActive(transition.state) ? transition.state : undefined;
  const again = (stalled ? retrigger(saga, OrderEvents.requested, stalled, OrderEvents.aborted) : []).map((event): Outgoing => ({
    type: event.type,
    step: event.step,
    payload: {
      ctx: state.ctx,
      version: versionOf(state),
      ...(event.detail === undefined ? {} : { detail: event.detail }),
      ...(event.type === OrderEvents.aborted ? abortedAt(state) : {}),
    } satisfies EventPayload<CheckoutContext>,
  }));
  return { order: { ...order, checkout: transition.state }, send: [...again, ...timers], cancel: [] };
}
