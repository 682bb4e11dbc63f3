import { eventParser, type ChoreographyEvent } from '../../core/choreography.ts';
import type { Decider, Decision } from '../../core/decider.ts';
import type { Envelope } from '../../core/message.ts';
import { observe, replyOf, startSaga, type SagaDefinition, type SagaReply } from '../../core/saga.ts';
import { sagaReplyTypes } from '../order/checkoutSaga.ts';
import { checkoutContextCheck, type CheckoutContext } from '../order/order.ts';
import { trackedKey, type TrackedSaga } from './tracker.ts';

/**
 * The saga tracker of a choreography (seed 003's coordinator, reduced to what it may be): it
 * consumes the saga's events and keeps each saga's state and step history with the same state
 * machine as the orchestrator, and never sends anything. Events may come in any order; times
 * are those at which the events were published.
 */
export function trackerDecider(saga: SagaDefinition<CheckoutContext>, started: string): Decider<TrackedEvent, never> {
  const consumes = [started, ...sagaReplyTypes(saga)];
  return {
    consumes,
    parse: eventParser<CheckoutContext>(consumes, checkoutContextCheck),
    keys: (message) => [trackedKey(message.sagaId)],
    decide(message, read): Decision {
      const key = trackedKey(message.sagaId);
      const seen = read<TrackedSaga>(key) ?? { early: [] };
      return { writes: { [key]: track(saga, started, seen, message) } };
    },
    // The tracker only observes: it has no commands.
    api: { keys: () => [], decide: () => ({}) },
  };
}

type TrackedEvent = ChoreographyEvent<CheckoutContext>;

function track(saga: SagaDefinition<CheckoutContext>, started: string, seen: TrackedSaga, message: Envelope<TrackedEvent>): TrackedSaga {
  if (message.type === started) {
    if (seen.state) return seen;
    const state = startSaga(saga, message.sagaId, message.payload.ctx, message.at).state;
    const [first, ...rest] = seen.early;
    if (!first) return { state, early: [] };
    const next = observe(saga, { state, early: rest }, first, message.at);
    return { state: next.state, early: next.early };
  }
  const reply: SagaReply = { ...replyOf(message), at: message.at };
  if (!seen.state) return { early: [...seen.early, reply] };
  const next = observe(saga, { state: seen.state, early: seen.early }, reply, message.at);
  return { state: next.state, early: next.early };
}
