/**
 * The saga tracker's decider (src/domain/tracker/businessLogic.ts) as given/when/then: given the
 * saga as the tracker has seen it, when one more event of the choreography arrives, then this
 * document; it never sends, cancels or answers anything.
 */
import { sagaVersions } from '../../src/core/saga.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Decision, Read } from '../../src/core/decider.ts';
import type { Envelope } from '../../src/core/message.ts';
import { observe, startSaga } from '../../src/core/saga.ts';
import { checkoutSaga } from '../../src/domain/order/checkoutSaga.ts';
import type { CheckoutContext } from '../../src/domain/order/order.ts';
import { trackerDecider } from '../../src/domain/tracker/businessLogic.ts';
import type { TrackedSaga } from '../../src/domain/tracker/tracker.ts';

const saga = checkoutSaga(undefined, { sequential: true });
const tracker = trackerDecider(sagaVersions(saga, []), 'CheckoutRequested', 'CheckoutCancelled');

const SAGA = 'o1.1';
const KEY = `saga:${SAGA}`;
const ctx: CheckoutContext = { orderId: 'o1', userId: 'u1', lines: [['i1', 2]], amount: 30 };
const NO_CREDIT = 'user u1 has credit 5, 30 needed';

/** An event of the checkout as published at `at`, carrying the ctx like every choreography event. */
const event = (type: string, step: string, at: number, detail?: string): Envelope => ({
  id: `${SAGA}:${type}`, type, sagaId: SAGA, step, correlationId: 'o1', causationId: 'x', at,
  payload: detail === undefined ? { ctx } : { ctx, reason: 'why', detail },
});
const requested = (at = 0) => event('CheckoutRequested', '', at);
const reserved = (at = 1) => event('StockReserved', 'reserveStock', at);
const authorized = (at = 2) => event('PaymentAuthorized', 'authorizePayment', at);
const declined = (at = 2) => event('PaymentDeclined', 'authorizePayment', at, NO_CREDIT);
const released = (at = 3) => event('StockReleased', 'reserveStock', at);
const captured = (at = 3) => event('PaymentCaptured', 'capturePayment', at);
const committed = (at = 4) => event('StockCommitted', 'commitStock', at);

/** Given the tracker's document (absent: nothing seen), when `message`, then its decision. */
function when(seen: TrackedSaga | undefined, message: Envelope): Decision {
  const parsed = tracker.parse(message);
  assert.ok(parsed.ok, 'every event of the choreography passes the tracker\'s check');
  assert.deepEqual(tracker.keys(parsed.message), [KEY]);
  const read: Read = <T>(key: string): T | undefined => {
    assert.equal(key, KEY, 'reads only the saga it tracks');
    return seen as T | undefined;
  };
  const decision = tracker.decide(parsed.message, read, 999_999);
  assert.deepEqual(Object.keys(decision), ['writes'], 'never sends, cancels or answers anything');
  assert.deepEqual(Object.keys(decision.writes ?? {}), [KEY]);
  return decision;
}
const after = (seen: TrackedSaga | undefined, message: Envelope) => when(seen, message).writes?.[KEY] as TrackedSaga;
/** The tracker's document after these events, from nothing. */
const track = (messages: readonly Envelope[]) => messages.reduce<TrackedSaga | undefined>(after, undefined);

void describe('tracker: the start', () => {
  void it('consumes the start and every event of the saga, by saga id', () => {
    assert.deepEqual(tracker.consumes, [
      'CheckoutRequested', 'CheckoutCancelled', 'StockReserved', 'StockReservationFailed', 'StockReleased',
      'PaymentAuthorized', 'PaymentDeclined', 'PaymentVoided', 'PaymentCaptured', 'StockCommitted',
    ]);
  });

  void it('CheckoutRequested creates the saga: running, reserveStock started at the time it was published', () => {
    const seen = after(undefined, requested(50));
    assert.deepEqual(seen, { state: startSaga(saga, SAGA, ctx, 50).state, early: [], events: [] });
    assert.equal(seen.state?.status, 'running');
    assert.deepEqual(seen.state?.history, [{ step: 'reserveStock', event: 'started', at: 50 }]);
  });

  void it('a repeated start changes nothing', () => {
    for (const seen of [track([requested()]), track([requested(), reserved()]), track([requested(), reserved(), declined(), released()])]) {
      assert.deepEqual(after(seen, requested(70)), seen);
    }
  });
});

void describe('tracker: events', () => {
  void it('follows the saga with the state machine, at the times the events were published', () => {
    const seen = track([requested(0), reserved(10), authorized(20), captured(30), committed(40)]);
    let expected = { state: startSaga(saga, SAGA, ctx, 0).state, early: [] as readonly never[] };
    for (const m of [reserved(10), authorized(20), captured(30), committed(40)]) {
      expected = { state: observe(saga, expected, { type: m.type, step: m.step }, m.at).state, early: [] };
    }
    assert.deepEqual({ state: seen?.state, early: seen?.early }, expected);
    assert.deepEqual(seen?.events?.map((e) => e.type), ['StockReserved', 'PaymentAuthorized', 'PaymentCaptured', 'StockCommitted'], 'every event kept, in the order they came');
    assert.ok(seen?.state?.status === 'completed');
    assert.deepEqual([seen.state.endedAt, seen.state.history.filter((e) => e.event === 'succeeded').map((e) => e.at)], [40, [10, 20, 30, 40]]);
  });

  void it('keeps the failure detail: the saga fails with it once the stock is released', () => {
    const seen = track([requested(), reserved(), declined(), released()]);
    assert.ok(seen?.state?.status === 'failed');
    assert.equal(seen.state.reason, NO_CREDIT);
    assert.deepEqual(seen.early, []);
  });

  void it('events before the start are kept early, with their detail', () => {
    assert.deepEqual(track([reserved()]), { early: [{ type: 'StockReserved', step: 'reserveStock', at: 1 }] });
    assert.deepEqual(track([reserved(), declined()]), {
      early: [{ type: 'StockReserved', step: 'reserveStock', at: 1 }, { type: 'PaymentDeclined', step: 'authorizePayment', at: 2, detail: NO_CREDIT }],
    });
  });

  void it('…and applied when the start arrives: the same status and steps as in order', () => {
    const shape = (seen: TrackedSaga | undefined) =>
      ({ status: seen?.state?.status, early: seen?.early, history: seen?.state?.history.map(({ at: _at, ...e }) => e) });
    const inOrder = track([requested(), reserved()]);
    assert.deepEqual(shape(track([reserved(), requested()])), shape(inOrder));
    const failed = track([requested(), reserved(), declined(), released()]);
    assert.deepEqual(shape(track([released(), declined(), reserved(), requested()])), shape(failed));
    assert.deepEqual(shape(track([declined(), requested(), released(), reserved()])), shape(failed));
  });

  void it('an event after the start that comes before its predecessor is kept until it applies', () => {
    const early = track([requested(), authorized()]);
    const ahead = { type: 'PaymentAuthorized', step: 'authorizePayment', at: 2 };
    assert.deepEqual(early, { state: startSaga(saga, SAGA, ctx, 0).state, early: [ahead], events: [ahead] });
    const applied = after(early, reserved());
    assert.deepEqual(applied?.early, []);
    assert.deepEqual(applied?.state?.history.map((e) => `${e.step} ${e.event}`).slice(-3), [
      'authorizePayment succeeded', 'capturePayment started', 'commitStock started',
    ]);
  });

  void it('a duplicate changes nothing; a late event changes no state, and only its event is kept (an abort may still come)', () => {
    const running = track([requested(), reserved()]);
    assert.deepEqual(after(running, reserved(5))?.state, running?.state);
    const ended = track([requested(), reserved(), authorized(), captured(), committed()]);
    for (const again of [reserved(9), committed(9)]) assert.deepEqual(after(ended, again), ended);
    for (const late of [declined(9), released(9)]) {
      const seen = after(ended, late);
      assert.deepEqual({ state: seen.state, early: seen.early }, { state: ended?.state, early: [] });
      assert.deepEqual(seen.events?.at(-1)?.type, late.type);
    }
  });
});

void describe('tracker: the owner\'s abort', () => {
  /** The order's abort of the saga, published at `at`, when its own saga was at step `abortedAt`. */
  const cancelled = (at: number, abortedAt: string): Envelope => ({
    id: `${SAGA}:CheckoutCancelled`, type: 'CheckoutCancelled', sagaId: SAGA, step: '', correlationId: 'o1', causationId: 'x', at,
    payload: { ctx, reason: 'by customer', detail: 'by customer', abortedAt },
  });
  const voided = (at = 7) => event('PaymentVoided', 'authorizePayment', at);
  const steps = (seen: TrackedSaga | undefined) => seen?.state?.history.map((e) => `${e.step} ${e.event}`);

  void it('aborts the saga where it runs, and ends it failed once every step is undone', () => {
    const seen = track([requested(0), reserved(1), cancelled(2, 'authorizePayment'), voided(3), released(4)]);
    assert.ok(seen?.state?.status === 'failed');
    assert.equal(seen.state.reason, 'by customer');
  });

  void it('an abort that comes after the saga ended here is applied where the order aborted it: the same end as the order\'s', () => {
    // The order aborted while it had seen only the stock reserved; the payment went on meanwhile.
    const completed = track([requested(0), reserved(1), authorized(2), captured(3), committed(4)]);
    assert.equal(completed?.state?.status, 'completed');
    const aborted = after(completed, cancelled(5, 'authorizePayment'));
    assert.equal(aborted.state?.status, 'compensating');
    assert.deepEqual(steps(aborted)?.slice(0, 4), ['reserveStock started', 'reserveStock succeeded', 'authorizePayment started', 'authorizePayment aborted']);
    const undone = track([requested(0), reserved(1), authorized(2), captured(3), committed(4), cancelled(5, 'authorizePayment'), voided(6), released(7)]);
    assert.ok(undone?.state?.status === 'failed');
    assert.equal(undone.state.reason, 'by customer');
  });

  void it('…even when the undo events came before the abort', () => {
    const seen = track([requested(0), reserved(1), authorized(2), captured(3), committed(4), voided(6), released(7), cancelled(5, 'authorizePayment')]);
    assert.ok(seen?.state?.status === 'failed');
    assert.equal(seen.state.reason, 'by customer');
  });

  void it('an abort without where it was (an older order service) past the point of no return changes nothing', () => {
    const completed = track([requested(0), reserved(1), authorized(2), captured(3), committed(4)]);
    const { abortedAt: _, ...payload } = cancelled(5, 'authorizePayment').payload as Record<string, unknown>;
    assert.deepEqual(after(completed, { ...cancelled(5, 'authorizePayment'), payload }).state, completed?.state);
  });
});

void describe('tracker: events that came first', () => {
  void it('stores only state, early and events, even when the start ends a saga whose events all came first', () => {
    const seen = track([reserved(), authorized(), captured(), committed(), requested()]);
    assert.equal(seen?.state?.status, 'completed');
    assert.deepEqual(Object.keys(seen ?? {}).sort(), ['early', 'events', 'state']);
  });

  void it('records an early event at the time it was published, not when its predecessor came', () => {
    const seen = track([reserved(10), authorized(20), captured(30), committed(40), requested(0)]);
    assert.equal(seen?.state?.status === 'completed' && seen.state.endedAt, 40, 'the saga took 40 ms, not 0');
    assert.deepEqual(seen?.state?.history.filter((e) => e.event === 'succeeded').map((e) => e.at), [10, 20, 30, 40]);
  });
});
