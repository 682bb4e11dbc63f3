/**
 * The order service running its checkout saga: participants' replies and timers, and the
 * order status derived from the saga, as given/when/then (see orderDriver.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Envelope } from '../../src/core/message.ts';
import type { SagaState } from '../../src/core/saga.ts';
import { orderStatus, type CheckoutContext, type Order } from '../../src/domain/order/order.ts';
import {
  checkedOut, checkoutCommand, checkoutOf, CTX, decide, failedOnce, given, LINES, NOW, order, OUT_OF_STOCK, replyTo, sentOf, type Docs,
} from './orderDriver.ts';

// ---------------------------------------------------------------------------------------------

void describe('order: saga replies and timers', () => {
  void it('the first reply of a group sends nothing; the second sends the next group at once, with saga id, step and order id', () => {
    const { reserved, authorized, captured } = checkedOut();
    const envelope = (m: Envelope) => ({ type: m.type, sagaId: m.sagaId, step: m.step, correlationId: m.correlationId });
    assert.deepEqual([reserved, authorized, captured].map((s) => s.sent.map(envelope)), [
      [],
      [
        { type: 'CapturePayment', sagaId: 'o1.1', step: 'capturePayment', correlationId: 'o1' },
        { type: 'CommitStock', sagaId: 'o1.1', step: 'commitStock', correlationId: 'o1' },
      ],
      [],
    ]);
    assert.deepEqual(sentOf(authorized, 'CapturePayment').payload, { userId: 'u1', amount: 30 });
    assert.deepEqual(sentOf(authorized, 'CommitStock').payload, { lines: LINES });
    const state = checkoutOf(reserved.docs);
    assert.ok(state?.status === 'running');
    assert.deepEqual([state.step, state.awaiting], [0, [1]], 'the authorization is still awaited');
  });

  void it('completion: the order is paid, OrderConfirmed and CheckoutCompleted are sent and the timer cancelled', () => {
    const { authorized, captured } = checkedOut();
    const history = checkoutOf(captured.docs)?.history ?? [];
    const committed = given(captured.docs).when(replyTo(sentOf(authorized, 'CommitStock'), 'StockCommitted'), NOW + 4)
      .then({
        writes: {
          'order:o1': order({
            attempts: 1,
            checkout: {
              status: 'completed', id: 'o1.1', definition: { name: 'checkout', version: 1 }, ctx: CTX, startedAt: NOW, endedAt: NOW + 4,
              history: [...history, { step: 'commitStock', event: 'succeeded', at: NOW + 4 }],
            },
          }),
        },
        send: [{ type: 'OrderConfirmed', payload: { orderId: 'o1', userId: 'u1', amount: 30 } }, { type: 'CheckoutCompleted', payload: {} }],
        cancel: ['o1.1/timer/0'],
      });
    assert.deepEqual(committed.sent.map((m) => [m.type, m.sagaId, m.correlationId]), [['OrderConfirmed', 'o1.1', 'o1'], ['CheckoutCompleted', 'o1.1', 'o1']]);
  });

  void it('a failed reservation: voids the payment (it may be authorized), then CheckoutFailed with the reason', () => {
    const { started, rejected, voided } = failedOnce();
    assert.deepEqual(rejected.decision.send, [{ type: 'VoidPayment', payload: { userId: 'u1', amount: 30 }, sagaId: 'o1.1', step: 'authorizePayment' }]);
    assert.deepEqual(rejected.decision.cancel ?? [], []);
    assert.equal(checkoutOf(rejected.docs)?.status, 'compensating', 'not failed before the payment is voided');
    assert.equal(sentOf(rejected, 'VoidPayment').correlationId, 'o1');
    // The authorization's late success while its void is under way: nothing.
    given(rejected.docs).when(replyTo(sentOf(started, 'AuthorizePayment'), 'PaymentAuthorized'), NOW + 2).then({});
    assert.deepEqual(voided.decision.send, [{ type: 'CheckoutFailed', payload: { orderId: 'o1', userId: 'u1', amount: 30, reason: OUT_OF_STOCK } }]);
    assert.deepEqual(voided.decision.cancel, ['o1.1/timer/0']);
    assert.equal(checkoutOf(voided.docs)?.status, 'failed');
  });

  void it('a declined payment: releases the stock, then CheckoutFailed with the decline as reason', () => {
    const { started, reserved } = checkedOut();
    const declined = given(reserved.docs)
      .when(replyTo(sentOf(started, 'AuthorizePayment'), 'PaymentDeclined', { reason: 'insufficient-credit', detail: 'user u1 has credit 5, 30 needed' }), NOW + 2);
    assert.deepEqual(declined.decision.send, [{ type: 'ReleaseStock', payload: { lines: LINES }, sagaId: 'o1.1', step: 'reserveStock' }]);
    assert.deepEqual(sentOf(declined, 'ReleaseStock').correlationId, 'o1');
    const history = checkoutOf(declined.docs)?.history ?? [];
    given(declined.docs).when(replyTo(sentOf(declined, 'ReleaseStock'), 'StockReleased'), NOW + 3).then({
      writes: {
        'order:o1': order({
          attempts: 1,
          checkout: {
            status: 'failed', id: 'o1.1', definition: { name: 'checkout', version: 1 }, ctx: CTX, startedAt: NOW, endedAt: NOW + 3, reason: 'user u1 has credit 5, 30 needed',
            history: [...history, { step: 'reserveStock', event: 'compensated', at: NOW + 3 }],
          },
        }),
      },
      send: [{ type: 'CheckoutFailed', payload: { orderId: 'o1', userId: 'u1', amount: 30, reason: 'user u1 has credit 5, 30 needed' } }],
      cancel: ['o1.1/timer/0'],
    });
  });

  void it('a duplicate reply, a reply for an unknown order and a reply without a running saga: nothing', () => {
    const { started, reserved, authorized } = checkedOut();
    const duplicate = replyTo(sentOf(started, 'ReserveStock'), 'StockReserved', {}, NOW + 5);
    given(reserved.docs).when(duplicate, NOW + 5).then({}); // while the authorization is awaited
    given(authorized.docs).when(duplicate, NOW + 5).then({}); // once capture and commit run
    given({}).when(duplicate, NOW + 5).then({});
    given({ 'order:o1': order() }).when(duplicate, NOW + 5).then({});
  });

  void it('replies and timers of an older attempt are ignored', () => {
    const { started: first, rejected, docs } = failedOnce();
    const reserve1 = sentOf(first, 'ReserveStock');
    const authorize1 = sentOf(first, 'AuthorizePayment');
    const timer1 = sentOf(first, 'SagaTimerFired');
    const second = decide(docs, checkoutCommand('o1', 'o1.2'), NOW + 3);
    assert.equal(checkoutOf(second.docs)?.id, 'o1.2');

    given(second.docs).when(replyTo(reserve1, 'StockReserved'), NOW + 4).then({});
    given(second.docs).when(replyTo(reserve1, 'StockReservationFailed', { detail: OUT_OF_STOCK }), NOW + 4).then({});
    given(second.docs).when(replyTo(authorize1, 'PaymentAuthorized'), NOW + 4).then({});
    given(second.docs).when(replyTo(sentOf(rejected, 'VoidPayment'), 'PaymentVoided'), NOW + 4).then({});
    given(second.docs).when(timer1, NOW + 10_000).then({});
  });

  void it('a timer without progress re-sends both commands of the first group and arms the next timer', () => {
    const { started } = checkedOut();
    const timer = sentOf(started, 'SagaTimerFired');
    const fired = given(started.docs).when(timer, NOW + 10_000).then({
      writes: { 'order:o1': order({ attempts: 1, checkout: retriedState(started.docs, NOW + 10_000, ['reserveStock', 'authorizePayment']) }) },
      send: [
        { type: 'ReserveStock', payload: { lines: LINES }, sagaId: 'o1.1', step: 'reserveStock' },
        { type: 'AuthorizePayment', payload: { userId: 'u1', amount: 30 }, sagaId: 'o1.1', step: 'authorizePayment' },
        { id: 'o1.1/timer/1', type: 'SagaTimerFired', payload: { seq: 0 }, sagaId: 'o1.1', step: '', deliverAt: NOW + 10_000 + 11_000 },
      ],
    });
    assert.deepEqual(fired.sent.map((m) => [m.id, m.correlationId]), [[`${timer.id}>0`, 'o1'], [`${timer.id}>1`, 'o1'], ['o1.1/timer/1', 'o1']]);
    given(fired.docs).when(timer, NOW + 10_001).then({}); // the fired timer again (redelivered): stale
  });

  void it('a timer without progress after the stock was reserved re-sends only AuthorizePayment', () => {
    const { started, reserved } = checkedOut();
    const timer = sentOf(started, 'SagaTimerFired');
    const rearmed = given(reserved.docs).when(timer, NOW + 10_000); // reserved at NOW + 1: wait until NOW + 10_001
    assert.deepEqual(rearmed.decision.send, [{ id: 'o1.1/timer/1', type: 'SagaTimerFired', payload: { seq: 1 }, sagaId: 'o1.1', step: '', deliverAt: NOW + 10_001 }]);
    given(rearmed.docs).when(sentOf(rearmed, 'SagaTimerFired'), NOW + 10_001).then({
      writes: { 'order:o1': order({ attempts: 1, checkout: retriedState(rearmed.docs, NOW + 10_001, ['authorizePayment'], 'o1.1/timer/2') }) },
      send: [
        { type: 'AuthorizePayment', payload: { userId: 'u1', amount: 30 }, sagaId: 'o1.1', step: 'authorizePayment' },
        { id: 'o1.1/timer/2', type: 'SagaTimerFired', payload: { seq: 1 }, sagaId: 'o1.1', step: '', deliverAt: NOW + 10_001 + 11_000 },
      ],
    });
  });
});

/** The checkout of `docs` after the `steps` awaited were retried at `at` (a second try). */
function retriedState(docs: Docs, at: number, steps: readonly string[], timer = 'o1.1/timer/1'): SagaState<CheckoutContext> {
  const state = checkoutOf(docs);
  assert.ok(state?.status === 'running');
  const retried = steps.map((step) => ({ step, event: 'retried' as const, at, detail: 'try 2' }));
  return { ...state, tries: 2, since: at, timer, history: [...state.history, ...retried] };
}

void describe('order: orderStatus', () => {
  const status = (docs: Docs) => orderStatus(docs['order:o1'] as Order);
  const reply = (docs: Docs, command: Envelope, type: string, at: number) => decide(docs, replyTo(command, type), at);

  void it('follows the checkout saga\'s history', () => {
    const { started, reserved, authorized, captured, committed } = checkedOut();
    const reserve = sentOf(started, 'ReserveStock');
    const authorize = sentOf(started, 'AuthorizePayment');
    const onlyAuthorized = reply(started.docs, authorize, 'PaymentAuthorized', NOW + 1);
    const onlyCommitted = reply(authorized.docs, sentOf(authorized, 'CommitStock'), 'StockCommitted', NOW + 3);
    assert.deepEqual(
      {
        created: orderStatus(order()),
        started: status(started.docs),
        authorizedFirst: status(onlyAuthorized.docs),
        reservedFirst: status(reserved.docs),
        bothHeld: status(authorized.docs),
        committedFirst: status(onlyCommitted.docs),
        capturedFirst: status(captured.docs),
        completed: status(committed.docs),
      },
      {
        created: 'CREATED',
        started: 'CREATED',
        authorizedFirst: 'CREATED',
        reservedFirst: 'RESERVED',
        bothHeld: 'PAYMENT_PENDING',
        committedFirst: 'PAYMENT_PENDING',
        capturedFirst: 'PAID',
        completed: 'CONFIRMED',
      },
    );
    assert.equal(status(reply(onlyAuthorized.docs, reserve, 'StockReserved', NOW + 2).docs), 'PAYMENT_PENDING');
  });

  void it('while compensating a failure: already FAILED (the outcome is decided; only the undoing is left)', () => {
    const { started, reserved } = checkedOut();
    const reserve = sentOf(started, 'ReserveStock');
    const authorize = sentOf(started, 'AuthorizePayment');
    const declinedAfterReserve = reply(reserved.docs, authorize, 'PaymentDeclined', NOW + 2);
    const declinedFirst = reply(started.docs, authorize, 'PaymentDeclined', NOW + 1);
    const authorizedThenOutOfStock = reply(reply(started.docs, authorize, 'PaymentAuthorized', NOW + 1).docs, reserve, 'StockReservationFailed', NOW + 2);
    const { rejected, voided } = failedOnce();
    for (const docs of [declinedAfterReserve.docs, declinedFirst.docs, authorizedThenOutOfStock.docs, rejected.docs]) {
      assert.equal(checkoutOf(docs)?.status, 'compensating');
    }
    assert.deepEqual(
      [status(declinedAfterReserve.docs), status(declinedFirst.docs), status(authorizedThenOutOfStock.docs), status(rejected.docs), status(voided.docs)],
      ['FAILED', 'FAILED', 'FAILED', 'FAILED', 'FAILED'],
    );
  });

  void it('says RESERVED only once the stock is reserved', () => {
    const { started } = checkedOut();
    const onlyAuthorized = reply(started.docs, sentOf(started, 'AuthorizePayment'), 'PaymentAuthorized', NOW + 1);
    assert.notEqual(status(started.docs), 'RESERVED', 'nothing is reserved yet');
    assert.notEqual(status(onlyAuthorized.docs), 'RESERVED', 'only the payment is held');
  });
});
