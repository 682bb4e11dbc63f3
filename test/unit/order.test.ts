/**
 * The order service's own commands (Checkout, AddItem, CreateOrder, InitOrders) and its
 * routing, as given/when/then (see orderDriver.ts). Its checkout saga: orderCheckout.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_AMOUNT } from '../../src/domain/limits.ts';
import type { Order } from '../../src/domain/order/order.ts';
import type { Line } from '../../src/domain/stock/stock.ts';
import {
  api, checkedOut, checkoutCommand, checkoutOf, CTX, decide, decider, failedOnce, given, LINES, NOW, order, replyTo, sentOf, type Then,
} from './orderDriver.ts';

// ---------------------------------------------------------------------------------------------

void describe('order: Checkout', () => {
  void it('starts a saga: records it on the order, sends ReserveStock, AuthorizePayment and a timer at once, answers with the saga id', () => {
    given({ 'order:o1': order() }).when(checkoutCommand()).then({
      writes: {
        'order:o1': order({
          attempts: 1,
          checkout: {
            status: 'running', id: 'o1.1', definition: { name: 'checkout', version: 1 }, ctx: CTX, startedAt: NOW, step: 0, awaiting: [0, 1], seq: 0, since: NOW, tries: 1, timer: 'o1.1/timer/0',
            history: [{ step: 'reserveStock', event: 'started', at: NOW }, { step: 'authorizePayment', event: 'started', at: NOW }],
          },
        }),
      },
      send: [
        { type: 'ReserveStock', payload: { lines: LINES }, sagaId: 'o1.1', step: 'reserveStock', correlationId: 'o1' },
        { type: 'AuthorizePayment', payload: { userId: 'u1', amount: 30 }, sagaId: 'o1.1', step: 'authorizePayment', correlationId: 'o1' },
        { id: 'o1.1/timer/0', type: 'SagaTimerFired', payload: { seq: 0 }, sagaId: 'o1.1', step: '', deliverAt: NOW + 10_000, correlationId: 'o1' },
      ],
      reply: { ok: true, value: { paid: false, sagaId: 'o1.1' } },
    });
  });

  void it('of an unknown order', () => {
    given({}).when(checkoutCommand('nope')).then({ reply: { ok: false, code: 'order-not-found', detail: 'Order nope does not exist.' } });
  });

  void it('of a paid order: answers paid, writes and sends nothing', () => {
    const { committed } = checkedOut();
    assert.equal(checkoutOf(committed.docs)?.status, 'completed');
    given(committed.docs).when(checkoutCommand()).then({ reply: { ok: true, value: { paid: true } } });
  });

  void it('while a checkout runs: joins it (same saga id), writes and sends nothing', () => {
    const { started, reserved, authorized } = checkedOut();
    for (const { docs } of [started, reserved, authorized]) {
      given(docs).when(checkoutCommand()).then({ reply: { ok: true, value: { paid: false, sagaId: 'o1.1' } } });
    }
  });

  void it('while a checkout compensates: joins it too', () => {
    const { started, reserved } = checkedOut();
    const declined = decide(reserved.docs, replyTo(sentOf(started, 'AuthorizePayment'), 'PaymentDeclined', { detail: 'no money' }), NOW + 2);
    assert.equal(checkoutOf(declined.docs)?.status, 'compensating');
    given(declined.docs).when(checkoutCommand()).then({ reply: { ok: true, value: { paid: false, sagaId: 'o1.1' } } });
  });

  void it('after a failed attempt: starts attempt 2 as saga <orderId>.2, with the lines of now', () => {
    const failed = failedOnce();
    const first = checkoutOf(failed.docs);
    assert.ok(first?.status === 'failed');
    const withMore = decide(failed.docs, api({ type: 'AddItem', orderId: 'o1', itemId: 'i3', quantity: 1, price: 5 }), NOW + 3);
    const lines: Line[] = [...LINES, ['i3', 1]];
    const second = given(withMore.docs).when(checkoutCommand('o1', 'o1.2'), NOW + 4).then({
      writes: {
        'order:o1': order({
          lines, totalCost: 35, attempts: 2,
          checkout: {
            status: 'running', id: 'o1.2', definition: { name: 'checkout', version: 1 }, ctx: { orderId: 'o1', userId: 'u1', lines, amount: 35 }, startedAt: NOW + 4,
            step: 0, awaiting: [0, 1], seq: 0, since: NOW + 4, tries: 1, timer: 'o1.2/timer/0',
            history: [{ step: 'reserveStock', event: 'started', at: NOW + 4 }, { step: 'authorizePayment', event: 'started', at: NOW + 4 }],
          },
          // The failed first attempt is kept.
          failed: [first],
        }),
      },
      send: [
        { type: 'ReserveStock', payload: { lines }, sagaId: 'o1.2', step: 'reserveStock', correlationId: 'o1' },
        { type: 'AuthorizePayment', payload: { userId: 'u1', amount: 35 }, sagaId: 'o1.2', step: 'authorizePayment', correlationId: 'o1' },
        { id: 'o1.2/timer/0', type: 'SagaTimerFired', payload: { seq: 0 }, sagaId: 'o1.2', step: '', deliverAt: NOW + 4 + 10_000, correlationId: 'o1' },
      ],
      reply: { ok: true, value: { paid: false, sagaId: 'o1.2' } },
    });
    assert.deepEqual(second.sent.map((m) => m.id), ['cmd:Checkout>0', 'cmd:Checkout>1', 'o1.2/timer/0'], 'envelope ids derive from the command');
  });
});

void describe('order: AddItem and CreateOrder', () => {
  void it('CreateOrder: an empty order of the user', () => {
    given({}).when(api({ type: 'CreateOrder', orderId: 'o9', userId: 'u1' })).then({
      writes: { 'order:o9': { userId: 'u1', lines: [], totalCost: 0, attempts: 0 } },
      reply: { ok: true, value: { order_id: 'o9' } },
    });
  });

  void it('AddItem: appends the line and adds quantity × price to the total', () => {
    given({ 'order:o1': order() }).when(api({ type: 'AddItem', orderId: 'o1', itemId: 'i1', quantity: 3, price: 7 })).then({
      writes: { 'order:o1': order({ lines: [...LINES, ['i1', 3]], totalCost: 51 }) },
      reply: { ok: true, value: { total_cost: 51 } },
    });
  });

  void it('AddItem: to an unknown order', () => {
    given({}).when(api({ type: 'AddItem', orderId: 'nope', itemId: 'i1', quantity: 1, price: 1 })).then({
      reply: { ok: false, code: 'order-not-found', detail: 'Order nope does not exist.' },
    });
  });

  void it('AddItem: a total above MAX_AMOUNT fails and writes nothing', () => {
    given({ 'order:o1': order() }).when(api({ type: 'AddItem', orderId: 'o1', itemId: 'i1', quantity: 1, price: MAX_AMOUNT - 29 })).then({
      reply: { ok: false, code: 'amount-too-large', detail: `The total cost of order o1 would exceed ${MAX_AMOUNT}.` },
    });
  });

  void it('AddItem: a paid order is locked', () => {
    const add = api({ type: 'AddItem', orderId: 'o1', itemId: 'i1', quantity: 1, price: 1 });
    given(checkedOut().committed.docs).when(add).then({
      reply: { ok: false, code: 'order-locked', detail: 'Order o1 is already paid; items can no longer be added.' },
    });
  });

  void it('AddItem: an order being checked out (running or compensating) is locked', () => {
    const add = api({ type: 'AddItem', orderId: 'o1', itemId: 'i1', quantity: 1, price: 1 });
    const locked: Then = { reply: { ok: false, code: 'order-locked', detail: 'Order o1 is being checked out; items can no longer be added.' } };
    const { started, reserved } = checkedOut();
    given(started.docs).when(add).then(locked);
    const declined = decide(reserved.docs, replyTo(sentOf(started, 'AuthorizePayment'), 'PaymentDeclined'), NOW + 2);
    given(declined.docs).when(add).then(locked);
  });

  void it('AddItem: after a failed checkout the order is open again', () => {
    const { docs } = failedOnce();
    const step = given(docs).when(api({ type: 'AddItem', orderId: 'o1', itemId: 'i9', quantity: 1, price: 1 }));
    assert.deepEqual(step.decision.reply, { ok: true, value: { total_cost: 31 } });
    assert.deepEqual((step.docs['order:o1'] as Order).lines, [...LINES, ['i9', 1]]);
  });
});

void describe('order: InitOrders', () => {
  const init = (seed: number) => api({ type: 'InitOrders', count: 50, items: 10, users: 7, price: 4, seed });

  void it('is the same for the same seed, different for another', () => {
    const once = decide({}, init(42), NOW).decision;
    const again = decide({}, init(42), NOW + 999).decision;
    const other = decide({}, init(43), NOW).decision;
    assert.deepEqual(again, once);
    assert.notDeepEqual(other.writes, once.writes);
    assert.deepEqual(once.reply, { ok: true, value: { msg: 'Batch init for 50 orders successful', replaced: 0 } });
  });

  void it('makes orders "0" … "count-1", each of two units of known items for a known user', () => {
    const writes = decide({}, init(7), NOW).decision.writes ?? {};
    assert.deepEqual(Object.keys(writes), Array.from({ length: 50 }, (_, i) => `order:${i}`));
    for (const doc of Object.values(writes)) {
      const o = doc as Order;
      assert.ok(Number(o.userId) >= 0 && Number(o.userId) < 7 && Number.isInteger(Number(o.userId)), `user ${o.userId}`);
      assert.equal(o.lines.length, 2);
      for (const [itemId, quantity] of o.lines) {
        assert.ok(Number(itemId) >= 0 && Number(itemId) < 10 && Number.isInteger(Number(itemId)), `item ${itemId}`);
        assert.equal(quantity, 1);
      }
      assert.equal(o.totalCost, 8);
      assert.equal(o.attempts, 0);
      assert.equal(o.checkout, undefined);
    }
  });
});

void describe('order: routing', () => {
  void it('consumes every reply of the checkout saga and its timer', () => {
    assert.deepEqual([...decider.consumes].sort(), [
      'PaymentAuthorized', 'PaymentCaptured', 'PaymentDeclined', 'PaymentVoided', 'ReservationExpired', 'SagaTimerFired',
      'ShipmentScanned', 'StockCommitted', 'StockReleased', 'StockReservationFailed', 'StockReserved',
    ]);
  });

  void it('reads the order named by the correlation id for saga messages, by the command otherwise', () => {
    const { started } = checkedOut();
    assert.deepEqual(decider.keys(replyTo(sentOf(started, 'ReserveStock'), 'StockReserved')), ['order:o1']);
    assert.deepEqual(decider.keys(sentOf(started, 'SagaTimerFired')), ['order:o1']);
    assert.deepEqual(decider.keys(api({ type: 'AddItem', orderId: 'o2', itemId: 'i', quantity: 1, price: 1 })), ['order:o2']);
    assert.deepEqual(decider.keys(api({ type: 'InitOrders', count: 2, items: 1, users: 1, price: 1, seed: 1 })), ['order:0', 'order:1']);
  });
});
