/**
 * orderDecider(checkoutSaga()) as given/when/then: given these documents, when this message
 * arrives, then these documents are written, these messages sent, these timers cancelled and
 * this reply given. Participants' replies are built from the commands the order sent, the way
 * the runtime builds them (envelopesFrom), so they carry the saga id, step and order id.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Decision, Read, Reply } from '../../src/core/decider.ts';
import { envelopesFrom, type Envelope, type Outgoing } from '../../src/core/message.ts';
import type { SagaState } from '../../src/core/saga.ts';
import { MAX_AMOUNT } from '../../src/domain/limits.ts';
import { orderDecider } from '../../src/domain/order/businessLogic.ts';
import { checkoutSaga } from '../../src/domain/order/checkoutSaga.ts';
import { orderStatus, type CheckoutContext, type Order, type OrderApiCommand } from '../../src/domain/order/order.ts';
import type { Line } from '../../src/domain/stock/stock.ts';

// ---------------------------------------------------------------------------------------------
// given / when / then for the order Decider

type Docs = Readonly<Record<string, unknown>>;
type Then = Readonly<{ writes?: Docs; send?: readonly Outgoing[]; cancel?: readonly string[]; reply?: Reply }>;

const NOW = 1_700_000_000_000;
const decider = orderDecider(checkoutSaga());

/** One decision: what it decided, the documents after it and the envelopes it sent. */
type Step = Readonly<{ decision: Decision; docs: Docs; sent: readonly Envelope[] }>;

function decide(docs: Docs, message: Envelope, now: number): Step {
  const keys = new Set(decider.keys(message));
  const read: Read = <T>(key: string): T | undefined => {
    assert.ok(keys.has(key), `${message.type} read ${key}, which keys() did not name`);
    return docs[key] as T | undefined;
  };
  const decision = decider.decide(message, read, now);
  const after: Record<string, unknown> = { ...docs };
  for (const [key, doc] of Object.entries(decision.writes ?? {})) {
    if (doc === null) delete after[key];
    else after[key] = doc;
  }
  return { decision, docs: after, sent: envelopesFrom(message, decision.send ?? [], now) };
}

function given(docs: Docs) {
  return {
    when(message: Envelope, now = NOW) {
      const step = decide(docs, message, now);
      return {
        ...step,
        /** Asserts the whole decision (absent parts: nothing). */
        then(expected: Then): Step {
          assert.deepEqual(step.decision.writes ?? {}, expected.writes ?? {}, 'writes');
          assert.deepEqual(step.decision.send ?? [], expected.send ?? [], 'send');
          assert.deepEqual(step.decision.cancel ?? [], expected.cancel ?? [], 'cancel');
          assert.deepEqual(step.decision.reply, expected.reply, 'reply');
          return step;
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Orders and messages

const LINES: readonly Line[] = [['i1', 2], ['i2', 1]];
const order = (extra: Partial<Order> = {}): Order => ({ userId: 'u1', lines: LINES, totalCost: 30, attempts: 0, ...extra });
const CTX: CheckoutContext = { orderId: 'o1', userId: 'u1', lines: LINES, amount: 30 };

function api(command: OrderApiCommand): Envelope {
  const correlationId = 'orderId' in command ? command.orderId : '';
  return { id: `cmd:${command.type}`, type: command.type, sagaId: '', step: '', correlationId, causationId: '', at: NOW, payload: command };
}
/** A checkout request; the edge names the saga a new attempt would get. */
const checkoutCommand = (orderId = 'o1', sagaId = `${orderId}.1`) => api({ type: 'Checkout', orderId, sagaId });

/** A participant's reply to `command`, as the runtime builds it. */
function replyTo(command: Envelope | undefined, type: string, payload: unknown = {}, at = NOW): Envelope {
  assert.ok(command, `no command to reply ${type} to`);
  const [reply] = envelopesFrom(command, [{ type, payload }], at);
  assert.ok(reply);
  return reply;
}

const sentOf = (step: Step, type: string): Envelope => {
  const found = step.sent.find((m) => m.type === type);
  assert.ok(found, `expected ${type} among ${step.sent.map((m) => m.type).join(', ')}`);
  return found;
};

const checkoutOf = (docs: Docs, orderId = 'o1'): SagaState<CheckoutContext> | undefined => (docs[`order:${orderId}`] as Order | undefined)?.checkout;

/** o1 checked out: started at NOW, each reply a millisecond after the last. */
function checkedOut(docs: Docs = { 'order:o1': order() }) {
  const started = decide(docs, checkoutCommand(), NOW);
  const reserved = decide(started.docs, replyTo(sentOf(started, 'ReserveStock'), 'StockReserved'), NOW + 1);
  const authorized = decide(reserved.docs, replyTo(sentOf(reserved, 'AuthorizePayment'), 'PaymentAuthorized'), NOW + 2);
  const captured = decide(authorized.docs, replyTo(sentOf(authorized, 'CapturePayment'), 'PaymentCaptured'), NOW + 3);
  const committed = decide(captured.docs, replyTo(sentOf(captured, 'CommitStock'), 'StockCommitted'), NOW + 4);
  return { started, reserved, authorized, captured, committed };
}

/** o1's first checkout failed: out of stock. */
function failedOnce(): Step {
  const started = decide({ 'order:o1': order() }, checkoutCommand(), NOW);
  return decide(started.docs, replyTo(sentOf(started, 'ReserveStock'), 'StockReservationFailed', { reason: 'out-of-stock', detail: 'item i1 has 1 in stock, 2 wanted' }), NOW + 1);
}

// ---------------------------------------------------------------------------------------------

void describe('order: Checkout', () => {
  void it('starts a saga: records it on the order, sends ReserveStock and a timer, answers with the saga id', () => {
    given({ 'order:o1': order() }).when(checkoutCommand()).then({
      writes: {
        'order:o1': order({
          attempts: 1,
          checkout: {
            status: 'running', id: 'o1.1', ctx: CTX, startedAt: NOW, step: 0, seq: 0, since: NOW, tries: 1, timer: 'o1.1/timer/0',
            history: [{ step: 'reserveStock', event: 'started', at: NOW }],
          },
        }),
      },
      send: [
        { type: 'ReserveStock', payload: { lines: LINES }, sagaId: 'o1.1', step: 'reserveStock', correlationId: 'o1' },
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
    const { started, authorized } = checkedOut();
    given(started.docs).when(checkoutCommand()).then({ reply: { ok: true, value: { paid: false, sagaId: 'o1.1' } } });
    given(authorized.docs).when(checkoutCommand()).then({ reply: { ok: true, value: { paid: false, sagaId: 'o1.1' } } });
  });

  void it('while a checkout compensates: joins it too', () => {
    const { reserved } = checkedOut();
    const declined = decide(reserved.docs, replyTo(sentOf(reserved, 'AuthorizePayment'), 'PaymentDeclined', { detail: 'no money' }), NOW + 2);
    assert.equal(checkoutOf(declined.docs)?.status, 'compensating');
    given(declined.docs).when(checkoutCommand()).then({ reply: { ok: true, value: { paid: false, sagaId: 'o1.1' } } });
  });

  void it('after a failed attempt: starts attempt 2 as saga <orderId>.2, with the lines of now', () => {
    const failed = failedOnce();
    const withMore = decide(failed.docs, api({ type: 'AddItem', orderId: 'o1', itemId: 'i3', quantity: 1, price: 5 }), NOW + 2);
    const lines: Line[] = [...LINES, ['i3', 1]];
    const second = given(withMore.docs).when(checkoutCommand('o1', 'o1.2'), NOW + 3).then({
      writes: {
        'order:o1': order({
          lines, totalCost: 35, attempts: 2,
          checkout: {
            status: 'running', id: 'o1.2', ctx: { orderId: 'o1', userId: 'u1', lines, amount: 35 }, startedAt: NOW + 3,
            step: 0, seq: 0, since: NOW + 3, tries: 1, timer: 'o1.2/timer/0',
            history: [{ step: 'reserveStock', event: 'started', at: NOW + 3 }],
          },
        }),
      },
      send: [
        { type: 'ReserveStock', payload: { lines }, sagaId: 'o1.2', step: 'reserveStock', correlationId: 'o1' },
        { id: 'o1.2/timer/0', type: 'SagaTimerFired', payload: { seq: 0 }, sagaId: 'o1.2', step: '', deliverAt: NOW + 3 + 10_000, correlationId: 'o1' },
      ],
      reply: { ok: true, value: { paid: false, sagaId: 'o1.2' } },
    });
    assert.deepEqual(second.sent.map((m) => m.id), ['cmd:Checkout>0', 'o1.2/timer/0'], 'envelope ids derive from the command');
  });
});

void describe('order: saga replies and timers', () => {
  void it('each reply sends the next command, with saga id, step and order id', () => {
    const { reserved, authorized, captured } = checkedOut();
    const envelope = (m: Envelope) => ({ type: m.type, sagaId: m.sagaId, step: m.step, correlationId: m.correlationId });
    assert.deepEqual([reserved, authorized, captured].flatMap((s) => s.sent.map(envelope)), [
      { type: 'AuthorizePayment', sagaId: 'o1.1', step: 'authorizePayment', correlationId: 'o1' },
      { type: 'CapturePayment', sagaId: 'o1.1', step: 'capturePayment', correlationId: 'o1' },
      { type: 'CommitStock', sagaId: 'o1.1', step: 'commitStock', correlationId: 'o1' },
    ]);
    assert.deepEqual(sentOf(authorized, 'CapturePayment').payload, { userId: 'u1', amount: 30 });
  });

  void it('completion: the order is paid, CheckoutCompleted is sent and the timer cancelled', () => {
    const { captured } = checkedOut();
    const history = checkoutOf(captured.docs)?.history ?? [];
    const committed = given(captured.docs).when(replyTo(sentOf(captured, 'CommitStock'), 'StockCommitted'), NOW + 4)
      .then({
        writes: {
          'order:o1': order({
            attempts: 1,
            checkout: {
              status: 'completed', id: 'o1.1', ctx: CTX, startedAt: NOW, endedAt: NOW + 4,
              history: [...history, { step: 'commitStock', event: 'succeeded', at: NOW + 4 }],
            },
          }),
        },
        send: [{ type: 'CheckoutCompleted', payload: {} }],
        cancel: ['o1.1/timer/0'],
      });
    assert.deepEqual(committed.sent.map((m) => [m.type, m.sagaId, m.correlationId]), [['CheckoutCompleted', 'o1.1', 'o1']]);
  });

  void it('a failed reservation: CheckoutFailed with the reason, the timer cancelled', () => {
    const failed = failedOnce();
    assert.deepEqual(failed.decision.send, [{ type: 'CheckoutFailed', payload: { reason: 'item i1 has 1 in stock, 2 wanted' } }]);
    assert.deepEqual(failed.decision.cancel, ['o1.1/timer/0']);
    assert.equal(checkoutOf(failed.docs)?.status, 'failed');
  });

  void it('a declined payment: releases the stock, then CheckoutFailed with the decline as reason', () => {
    const { reserved } = checkedOut();
    const declined = given(reserved.docs)
      .when(replyTo(sentOf(reserved, 'AuthorizePayment'), 'PaymentDeclined', { reason: 'insufficient-credit', detail: 'user u1 has credit 5, 30 needed' }), NOW + 2);
    assert.deepEqual(declined.decision.send, [{ type: 'ReleaseStock', payload: { lines: LINES }, sagaId: 'o1.1', step: 'reserveStock' }]);
    assert.deepEqual(sentOf(declined, 'ReleaseStock').correlationId, 'o1');
    const history = checkoutOf(declined.docs)?.history ?? [];
    given(declined.docs).when(replyTo(sentOf(declined, 'ReleaseStock'), 'StockReleased'), NOW + 3).then({
      writes: {
        'order:o1': order({
          attempts: 1,
          checkout: {
            status: 'failed', id: 'o1.1', ctx: CTX, startedAt: NOW, endedAt: NOW + 3, reason: 'user u1 has credit 5, 30 needed',
            history: [...history, { step: 'reserveStock', event: 'compensated', at: NOW + 3 }],
          },
        }),
      },
      send: [{ type: 'CheckoutFailed', payload: { reason: 'user u1 has credit 5, 30 needed' } }],
      cancel: ['o1.1/timer/0'],
    });
  });

  void it('a duplicate reply, a reply for an unknown order and a reply without a running saga: nothing', () => {
    const { started, reserved } = checkedOut();
    const duplicate = replyTo(sentOf(started, 'ReserveStock'), 'StockReserved', {}, NOW + 5);
    given(reserved.docs).when(duplicate, NOW + 5).then({});
    given({}).when(duplicate, NOW + 5).then({});
    given({ 'order:o1': order() }).when(duplicate, NOW + 5).then({});
  });

  void it('replies and timers of an older attempt are ignored', () => {
    const first = decide({ 'order:o1': order() }, checkoutCommand(), NOW);
    const reserve1 = sentOf(first, 'ReserveStock');
    const timer1 = sentOf(first, 'SagaTimerFired');
    const failed = decide(first.docs, replyTo(reserve1, 'StockReservationFailed', { detail: 'none left' }), NOW + 1);
    const second = decide(failed.docs, checkoutCommand('o1', 'o1.2'), NOW + 2);
    assert.equal(checkoutOf(second.docs)?.id, 'o1.2');

    given(second.docs).when(replyTo(reserve1, 'StockReserved'), NOW + 3).then({});
    given(second.docs).when(replyTo(reserve1, 'StockReservationFailed', { detail: 'none left' }), NOW + 3).then({});
    given(second.docs).when(timer1, NOW + 10_000).then({});
  });

  void it('a timer without progress re-sends the step command and arms the next timer', () => {
    const { started } = checkedOut();
    const timer = sentOf(started, 'SagaTimerFired');
    const fired = given(started.docs).when(timer, NOW + 10_000).then({
      writes: { 'order:o1': order({ attempts: 1, checkout: retriedState(started.docs, NOW + 10_000) }) },
      send: [
        { type: 'ReserveStock', payload: { lines: LINES }, sagaId: 'o1.1', step: 'reserveStock' },
        { id: 'o1.1/timer/1', type: 'SagaTimerFired', payload: { seq: 0 }, sagaId: 'o1.1', step: '', deliverAt: NOW + 10_000 + 11_000 },
      ],
    });
    assert.deepEqual(fired.sent.map((m) => [m.id, m.correlationId]), [[`${timer.id}>0`, 'o1'], ['o1.1/timer/1', 'o1']]);
    given(fired.docs).when(timer, NOW + 10_001).then({}); // the fired timer again (redelivered): stale
  });
});

/** The checkout of `docs` after its first step was retried at `at`. */
function retriedState(docs: Docs, at: number): SagaState<CheckoutContext> {
  const state = checkoutOf(docs);
  assert.ok(state?.status === 'running');
  return { ...state, tries: 2, since: at, timer: 'o1.1/timer/1', history: [...state.history, { step: 'reserveStock', event: 'retried', at, detail: 'try 2' }] };
}

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
    const declined = decide(reserved.docs, replyTo(sentOf(reserved, 'AuthorizePayment'), 'PaymentDeclined'), NOW + 2);
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
    assert.deepEqual(once.reply, { ok: true, value: { msg: 'Batch init for 50 orders successful' } });
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

void describe('order: orderStatus', () => {
  void it('follows the checkout saga', () => {
    const { started, reserved, authorized, captured, committed } = checkedOut();
    const status = (docs: Docs) => orderStatus(docs['order:o1'] as Order);
    const declined = decide(reserved.docs, replyTo(sentOf(reserved, 'AuthorizePayment'), 'PaymentDeclined'), NOW + 2);
    assert.deepEqual(
      {
        created: orderStatus(order()),
        reserving: status(started.docs),
        authorizing: status(reserved.docs),
        capturing: status(authorized.docs),
        committing: status(captured.docs),
        completed: status(committed.docs),
        compensating: status(declined.docs),
        failed: status(failedOnce().docs),
      },
      {
        created: 'CREATED',
        reserving: 'CREATED',
        authorizing: 'PAYMENT_PENDING',
        capturing: 'PAYMENT_PENDING',
        committing: 'PAID',
        completed: 'CONFIRMED',
        compensating: 'PAYMENT_PENDING',
        failed: 'FAILED',
      },
    );
  });
});

void describe('order: routing', () => {
  void it('consumes every reply of the checkout saga and its timer', () => {
    assert.deepEqual([...decider.consumes].sort(), [
      'PaymentAuthorized', 'PaymentCaptured', 'PaymentDeclined', 'PaymentVoided', 'SagaTimerFired',
      'StockCommitted', 'StockReleased', 'StockReservationFailed', 'StockReserved',
    ]);
  });

  void it('reads the order named by the correlation id for saga messages, by the command otherwise', () => {
    const { started } = checkedOut();
    assert.deepEqual(decider.keys(replyTo(sentOf(started, 'ReserveStock'), 'StockReserved')), ['order:o1']);
    assert.deepEqual(decider.keys(sentOf(started, 'SagaTimerFired')), ['order:o1']);
    assert.deepEqual(decider.keys(api({ type: 'AddItem', orderId: 'o2', itemId: 'i', quantity: 1, price: 1 })), ['order:o2']);
    assert.deepEqual(decider.keys(api({ type: 'InitOrders', count: 1, items: 1, users: 1, price: 1, seed: 1 })), []);
  });
});
