import { eventParser, type ChoreographyEvent } from '../../core/choreography.ts';
import type { Decider, Decision } from '../../core/decider.ts';
import type { Envelope } from '../../core/message.ts';
import { abortSaga, canAbort, definitionFor, observe, replyOf, startSaga, type SagaReply, type SagaVersions } from '../../core/saga.ts';
import { sagaReplyTypes } from '../order/checkoutSaga.ts';
import { checkoutContextCheck, type CheckoutContext } from '../order/order.ts';
import { trackedKey, type TrackedSaga } from './tracker.ts';

/**
 * The saga tracker of a choreography (seed 003's coordinator, reduced to what it may be): it
 * consumes the saga's events and keeps each saga's state and step history with the same state
 * machine as the orchestrator, and never sends anything. Events may come in any order; times
 * are those at which the events were published.
 */
export function trackerDecider(versions: SagaVersions<CheckoutContext>, started: string, aborted: string): Decider<TrackedEvent, never> {
  const consumes = [started, aborted, ...sagaReplyTypes(versions)];
  return {
    consumes,
    parse: eventParser<CheckoutContext>(consumes, checkoutContextCheck),
    keys: (message) => [trackedKey(message.sagaId)],
    decide(message, read): Decision {
      const key = trackedKey(message.sagaId);
      const seen = read<TrackedSaga>(key) ?? { early: [] };
      return { writes: { [key]: track(versions, { started, aborted }, seen, message) } };
    },
    // The tracker only observes: it has no commands.
    api: { keys: () => [], decide: () => ({}) },
  };
}

type TrackedEvent = ChoreographyEvent<CheckoutContext>;

function track(versions: SagaVersions<CheckoutContext>, types: Readonly<{ started: string; aborted: string }>, seen: TrackedSaga, message: Envelope<TrackedEvent>): TrackedSaga {
  if (message.type === types.started) {
    if (seen.state) return seen;
    // The request says which version of the definition the saga runs under.
    const version = message.payload.version ?? 1;
    const state = startSaga(versions.all.find((d) => d.version === version) ?? versions.current, message.sagaId, message.payload.ctx, message.at).state;
    const events = seen.early.filter((e) => e.type !== types.aborted);
    // An abort that came before the start is followed as one that came after it, at the step its owner aborted at (kept as its step).
    const [early] = seen.early.filter((e) => e.type === types.aborted);
    if (early === undefined) return { ...replay(versions, types.aborted, { state, early: [] }, seen.early, message.at), events };
    const followed = replay(versions, types.aborted, { state, early: [] }, events, message.at);
    return { ...abort(versions, types.aborted, followed, events, { ...early, step: '' }, early.step || undefined, message.at), events };
  }
  const reply: SagaReply = { ...replyOf(message), at: message.at };
  if (!seen.state) return { early: [...seen.early, reply.type === types.aborted ? { ...reply, step: message.payload.abortedAt ?? '' } : reply] };
  const started = { state: seen.state, early: seen.early };
  const events = seen.events ?? [];
  if (reply.type === types.aborted) return { ...abort(versions, types.aborted, started, events, reply, message.payload.abortedAt, message.at), events };
  // Kept even after the end: an abort may still come (a repeat of one kept changes nothing).
  const kept = events.some((e) => e.type === reply.type && e.step === reply.step) ? events : [...events, reply];
  return { ...replay(versions, types.aborted, started, [reply], message.at), events: kept };
}

type Followed = Required<Omit<TrackedSaga, 'events'>>;

/**
 * The owner's abort. In a choreography each service goes on alone, so the owner may have
 * aborted the saga at a step (`abortedAt`) that the events seen here are already past (even
 * to its end). The saga is then followed again from its start as the owner saw it: the events
 * of the steps before `abortedAt`, the abort, then the rest — the same end as the order's.
 */
function abort(versions: SagaVersions<CheckoutContext>, aborted: string, seen: Followed, events: readonly SagaReply[], reply: SagaReply, abortedAt: string | undefined, now: number): Followed {
  const saga = definitionFor(versions, seen.state);
  const at = saga.steps.findIndex((s) => s.name === abortedAt);
  // Still abortable here, or no word of where the owner aborted it, or aborted already: as it comes.
  if (canAbort(saga, seen.state) || at < 0 || seen.state.history.some((e) => e.event === 'aborted')) return replay(versions, aborted, seen, [reply], now);
  const seenByOwner = (e: SagaReply) => {
    const i = saga.steps.findIndex((s) => s.name === e.step);
    return i >= 0 && i < at && e.type === saga.steps[i]?.success;
  };
  const start = startSaga(saga, seen.state.id, seen.state.ctx, seen.state.startedAt).state;
  return replay(versions, aborted, { state: start, early: [] }, [...events.filter(seenByOwner), reply, ...events.filter((e) => !seenByOwner(e))], now);
}

/** Applies events to a saga in order; an abort (kept like any event that came early) stops it where it is. */
function replay(versions: SagaVersions<CheckoutContext>, aborted: string, from: Followed, replies: readonly SagaReply[], now: number): Followed {
  let seen: Followed = from;
  for (const reply of replies) {
    const saga = definitionFor(versions, seen.state);
    if (reply.type === aborted) {
      const stopped = abortSaga(saga, seen.state, reply.detail ?? 'cancelled', reply.at ?? now);
      // Events that came before the abort (an undo already done) apply to the aborted saga.
      const [first, ...rest] = seen.early;
      if (stopped) seen = first ? settle(observe(saga, { state: stopped.state, early: rest }, first, now)) : { state: stopped.state, early: [] };
      continue;
    }
    seen = settle(observe(saga, seen, reply, now));
  }
  return seen;
}

const settle = (seen: TrackedSaga & { state: NonNullable<TrackedSaga['state']> }): Followed => ({ state: seen.state, early: seen.early });
