/**
 * `observe` (src/core/saga.ts): a saga that nobody commands, as its owner or the tracker follows
 * it from the participants' events (choreography). Given the events seen so far, when one more
 * arrives, then this state, these events kept early and this outcome; never anything to send.
 * The saga is the choreography's checkout: reserveStock → authorizePayment → pivot →
 * [capturePayment, commitStock].
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { observe, startSaga, type Observation, type SagaOutcome, type SagaReply, type SagaState } from '../../src/core/saga.ts';
import { checkoutSaga } from '../../src/domain/order/checkoutSaga.ts';
import type { CheckoutContext } from '../../src/domain/order/order.ts';

const saga = checkoutSaga(undefined, { sequential: true });
const ctx: CheckoutContext = { orderId: 'o1', userId: 'u1', lines: [['i1', 2]], amount: 30 };
const ID = 'o1.1';
const NO_CREDIT = 'user u1 has credit 5, 30 needed';
const OUT_OF_STOCK = 'item i1 has 1 in stock, 2 wanted';

const reserved: SagaReply = { type: 'StockReserved', step: 'reserveStock' };
const outOfStock: SagaReply = { type: 'StockReservationFailed', step: 'reserveStock', detail: OUT_OF_STOCK };
const authorized: SagaReply = { type: 'PaymentAuthorized', step: 'authorizePayment' };
const declined: SagaReply = { type: 'PaymentDeclined', step: 'authorizePayment', detail: NO_CREDIT };
const released: SagaReply = { type: 'StockReleased', step: 'reserveStock' };
const captured: SagaReply = { type: 'PaymentCaptured', step: 'capturePayment' };
const committed: SagaReply = { type: 'StockCommitted', step: 'commitStock' };

type Seen = Observation<CheckoutContext> & { outcome?: SagaOutcome };

/** The saga as started at 0, nothing seen yet. */
const started = (): Observation<CheckoutContext> => ({ state: startSaga(saga, ID, ctx, 0).state, early: [] });

/** Given the saga started, when each event arrives (the i-th at `at(i)`), then every observation after each. */
function follow(events: readonly SagaReply[], at: (i: number) => number = () => 1): Seen[] {
  const seen: Seen[] = [];
  let last: Observation<CheckoutContext> = started();
  events.forEach((event, i) => {
    const before = structuredClone(last);
    const next = observe(saga, last, event, at(i));
    assert.deepEqual(last, before, 'observe changes nothing it was given');
    assert.deepEqual(Object.keys(next).filter((k) => !['state', 'early', 'outcome'].includes(k)), [], 'nothing to send or cancel');
    seen.push(next);
    last = next;
  });
  return seen;
}
const final = (events: readonly SagaReply[]): Seen => follow(events).at(-1)!;
const outcomesOf = (seen: readonly Seen[]) => seen.map((s) => s.outcome);
const withoutTimes = (state: SagaState<CheckoutContext>) => ({ status: state.status, history: state.history.map(({ at: _at, ...e }) => e) });

const IN_ORDER = [reserved, authorized, captured, committed];
const DECLINED = [reserved, declined, released];

void describe('observe: events in order', () => {
  void it('each success moves the saga on; the last one completes it with the outcome, once', () => {
    const seen = follow(IN_ORDER, (i) => (i + 1) * 10);
    assert.deepEqual(seen.map((s) => s.state.status), ['running', 'running', 'running', 'completed']);
    assert.deepEqual(seen.map((s) => s.early), [[], [], [], []]);
    assert.deepEqual(outcomesOf(seen), [undefined, undefined, undefined, { status: 'completed' }]);
    assert.deepEqual(seen.at(-1)?.state, {
      status: 'completed', id: ID, definition: { name: 'checkout', version: 1 }, ctx, startedAt: 0, endedAt: 40,
      history: [
        { step: 'reserveStock', event: 'started', at: 0 },
        { step: 'reserveStock', event: 'succeeded', at: 10 },
        { step: 'authorizePayment', event: 'started', at: 10 },
        { step: 'authorizePayment', event: 'succeeded', at: 20 },
        { step: 'capturePayment', event: 'started', at: 20 },
        { step: 'commitStock', event: 'started', at: 20 },
        { step: 'capturePayment', event: 'succeeded', at: 30 },
        { step: 'commitStock', event: 'succeeded', at: 40 },
      ],
    });
  });

  void it('a declined payment compensates the stock; the saga fails with the decline only once the stock is released', () => {
    const seen = follow(DECLINED, (i) => (i + 1) * 10);
    assert.deepEqual(seen.map((s) => s.state.status), ['running', 'compensating', 'failed']);
    assert.deepEqual(outcomesOf(seen), [undefined, undefined, { status: 'failed', reason: NO_CREDIT }]);
    assert.deepEqual(seen.at(-1)?.state.history.slice(3), [
      { step: 'authorizePayment', event: 'failed', at: 20, detail: NO_CREDIT },
      { step: 'reserveStock', event: 'compensating', at: 20 },
      { step: 'reserveStock', event: 'compensated', at: 30 },
    ]);
  });

  void it('out of stock fails at once: nothing before the first step to undo', () => {
    const [seen] = follow([outOfStock]);
    assert.equal(seen?.state.status, 'failed');
    assert.deepEqual(seen?.outcome, { status: 'failed', reason: OUT_OF_STOCK });
  });
});

void describe('observe: events out of order', () => {
  void it('the success of step 2 before step 1 is kept early and changes nothing yet', () => {
    const [early] = follow([authorized]);
    assert.deepEqual(early, { state: started().state, early: [authorized] });
  });

  void it('…and is applied once step 1 succeeds: the same saga as in order', () => {
    const seen = follow([authorized, reserved]);
    assert.deepEqual(seen.at(-1), { state: final([reserved, authorized]).state, early: [] });
  });

  void it('every later event before the first: all kept, then applied at once, completing the saga', () => {
    const seen = follow([committed, captured, authorized, reserved]);
    assert.deepEqual(seen.map((s) => s.early.length), [1, 2, 3, 0]);
    assert.deepEqual(seen.slice(0, 3).map((s) => s.state), [started().state, started().state, started().state]);
    assert.deepEqual(outcomesOf(seen), [undefined, undefined, undefined, { status: 'completed' }]);
    assert.deepEqual(seen.at(-1), final([reserved, authorized, committed, captured]));
  });

  void it('a compensation done before the failure that causes it: kept, then the saga fails as in order', () => {
    const seen = follow([reserved, released, declined]);
    assert.deepEqual(seen[1], { ...final([reserved]), early: [released] }, 'not failed before the failure is seen');
    assert.deepEqual(outcomesOf(seen), [undefined, undefined, { status: 'failed', reason: NO_CREDIT }]);
    assert.deepEqual(seen.at(-1), final(DECLINED));
  });

  void it('the whole failure before the first success: the same failed saga as in order', () => {
    const seen = follow([released, declined, reserved]);
    assert.deepEqual(seen.map((s) => s.state.status), ['running', 'running', 'failed']);
    assert.deepEqual(seen.at(-1), final(DECLINED));
  });

  void it('with distinct times: the same status and steps as in order', () => {
    const at = (i: number) => 100 + i;
    const reordered = follow([captured, authorized, committed, reserved], at).at(-1)!;
    const inOrder = follow([reserved, authorized, captured, committed], at).at(-1)!;
    assert.deepEqual(withoutTimes(reordered.state), withoutTimes(inOrder.state));
  });
});

void describe('observe: duplicates and the end', () => {
  void it('a duplicate while running changes neither the state nor the outcome, and the saga goes on the same', () => {
    const seen = follow([reserved, reserved, authorized, authorized, captured, committed]);
    assert.deepEqual(seen[1]?.state, seen[0]?.state);
    assert.deepEqual(seen[3]?.state, seen[2]?.state);
    assert.deepEqual(outcomesOf(seen), [undefined, undefined, undefined, undefined, undefined, { status: 'completed' }]);
    assert.deepEqual(seen.at(-1), final(IN_ORDER));
  });

  void it('a duplicate of the failure while compensating changes nothing', () => {
    const seen = follow([reserved, declined, declined, released]);
    assert.deepEqual(seen[2]?.state, seen[1]?.state);
    assert.deepEqual(seen.at(-1), final(DECLINED));
  });

  void it('after the end: any event changes nothing and is not kept', () => {
    for (const ended of [final(IN_ORDER), final(DECLINED)]) {
      for (const late of [reserved, authorized, declined, released, captured, committed]) {
        assert.deepEqual(observe(saga, ended, late, 99), { state: ended.state, early: [] }, `${late.type} after ${ended.state.status}`);
      }
    }
  });

  void it('once the saga ends, the events still kept are forgotten', () => {
    const kept: Observation<CheckoutContext> = { state: final([reserved, authorized, captured]).state, early: [reserved, released] };
    const ended = observe(saga, kept, committed, 5);
    assert.equal(ended.state.status, 'completed');
    assert.deepEqual(ended.early, []);
    const failed = observe(saga, { state: final([reserved, declined]).state, early: [authorized, captured] }, released, 5);
    assert.deepEqual([failed.state.status, failed.early], ['failed', []]);
  });
});
