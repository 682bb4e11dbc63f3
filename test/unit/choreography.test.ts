/**
 * Choreography (src/core/choreography.ts) on the checkout: the reactions derived from
 * checkoutSaga(…, { sequential: true }), stock and payment reacting to events through
 * `reacting`, and whole checkouts driven event by event across stock, payment, the order
 * (choreographedOrders(saga)) and the tracker, each decider reading only the keys it names.
 */
import { sagaVersions } from '../../src/core/saga.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reacting, reactions } from '../../src/core/choreography.ts';
import type { ApiCommand, Decider } from '../../src/core/decider.ts';
import type { Envelope, Message } from '../../src/core/message.ts';
import type { SagaState } from '../../src/core/saga.ts';
import { choreographedOrders } from '../../src/domain/order/choreography.ts';
import { checkoutParticipant, checkoutSaga, lifecycleSaga } from '../../src/domain/order/checkoutSaga.ts';
import { checkoutContextCheck, type CheckoutContext, type Order } from '../../src/domain/order/order.ts';
import { paymentDecider } from '../../src/domain/payment/businessLogic.ts';
import { stockDecider } from '../../src/domain/stock/businessLogic.ts';
import { trackerDecider } from '../../src/domain/tracker/businessLogic.ts';
import type { TrackedSaga } from '../../src/domain/tracker/tracker.ts';
import { apiCommand, deciderSpec, type ApiInput, type Input } from './deciderSpec.ts';

const saga = checkoutSaga(undefined, { sequential: true });
const all = reactions(saga, 'CheckoutRequested', checkoutParticipant);
const reactionsOf = (participant: string) => new Map([[1, all.filter((r) => r.participant === participant)]]);
const stock = reacting(stockDecider, reactionsOf('stock'), checkoutContextCheck);
const payment = reacting(paymentDecider(), reactionsOf('payment'), checkoutContextCheck);

const SAGA = 'o1.1';
const LINES = [['i1', 2], ['i2', 1]] as const;
const ctx: CheckoutContext = { orderId: 'o1', userId: 'u1', lines: LINES, amount: 30 };
const lines = { lines: LINES };
const charge = { userId: 'u1', amount: 30 };
const STOCK_DOCS = { 'item:i1': { price: 10, available: 10, reserved: 0 }, 'item:i2': { price: 10, available: 5, reserved: 0 } };

type Docs = Record<string, unknown>;

const event = (type: string, payload: object, id = `e:${type}`, step = ''): Envelope =>
  ({ id, type, sagaId: SAGA, step, correlationId: 'o1', causationId: 'x', at: 1, payload });
const requested = event('CheckoutRequested', { ctx }, 'o1:checkout>0');

/** `decider` decides `input` on `docs` (reading only the keys it names); the docs after it and what it sent. */
function decide<M extends Message, C extends ApiCommand>(decider: Decider<M, C>, docs: Docs, input: Input<C>, now = 1) {
  return deciderSpec(decider).decide(docs, input, now);
}

void describe('reactions: the checkout as a choreography', () => {
  void it('gives exactly who runs what on which event', () => {
    assert.deepEqual(all.map((r) => [r.on, r.participant, r.step, r.command(ctx)]), [
      ['CheckoutRequested', 'stock', 'reserveStock', { type: 'ReserveStock', payload: lines }],
      ['StockReserved', 'payment', 'authorizePayment', { type: 'AuthorizePayment', payload: charge }],
      ['PaymentAuthorized', 'payment', 'capturePayment', { type: 'CapturePayment', payload: charge }],
      ['PaymentAuthorized', 'stock', 'commitStock', { type: 'CommitStock', payload: lines }],
      ['PaymentDeclined', 'stock', 'reserveStock', { type: 'ReleaseStock', payload: lines }],
      ['PaymentVoided', 'stock', 'reserveStock', { type: 'ReleaseStock', payload: lines }],
    ]);
  });

  void it('throws when a concurrent group is not the last (the orchestration checkout)', () => {
    assert.throws(() => reactions(checkoutSaga(), 'CheckoutRequested', checkoutParticipant), /authorizePayment.*only the last group/);
  });
});

void describe('reacting: a participant that reacts to events', () => {
  void it('consumes only the events of its reactions', () => {
    assert.deepEqual([...stock.consumes].sort(), ['CheckoutRequested', 'PaymentAuthorized', 'PaymentDeclined', 'PaymentVoided']);
    assert.deepEqual([...payment.consumes].sort(), ['PaymentAuthorized', 'StockReserved']);
  });

  void it('given stock, when CheckoutRequested, then the items are reserved and StockReserved carries the ctx', () => {
    const { decision } = decide(stock, STOCK_DOCS, requested);
    assert.deepEqual(decision.writes, {
      'item:i1': { price: 10, available: 8, reserved: 2 },
      'item:i2': { price: 10, available: 4, reserved: 1 },
      [`reservation:${SAGA}`]: { status: 'reserved', lines: LINES },
    });
    assert.deepEqual(decision.send, [{ type: 'StockReserved', payload: { ctx }, id: 'o1:checkout>0>reserveStock.0', step: 'reserveStock' }]);
  });

  void it('out of stock: StockReservationFailed with the ctx and the detail', () => {
    const docs = { ...STOCK_DOCS, 'item:i1': { price: 10, available: 1, reserved: 0 } };
    const { decision } = decide(stock, docs, requested);
    assert.deepEqual(decision.send, [{
      type: 'StockReservationFailed', id: 'o1:checkout>0>reserveStock.0', step: 'reserveStock',
      payload: { reason: 'out-of-stock', detail: 'item i1 has 1 in stock, 2 wanted', ctx },
    }]);
  });

  void it('two participants reacting to one event never send the same id', () => {
    const authorized = event('PaymentAuthorized', { ctx }, 'o1:auth', 'authorizePayment');
    const docs = { ...STOCK_DOCS, [`reservation:${SAGA}`]: { status: 'reserved', lines: LINES }, [`hold:${SAGA}`]: { status: 'authorized', ...charge }, 'user:u1': { credit: 70, held: 30 } };
    const fromStock = decide(stock, docs, authorized).sent;
    const fromPayment = decide(payment, docs, authorized).sent;
    assert.deepEqual(fromStock.map((m) => [m.id, m.type, m.step]), [['o1:auth>commitStock.0', 'StockCommitted', 'commitStock']]);
    assert.deepEqual(fromPayment.map((m) => [m.id, m.type, m.step]), [['o1:auth>capturePayment.0', 'PaymentCaptured', 'capturePayment']]);
  });

  void it('API commands pass through to the inner decider unchanged', () => {
    const pairs: [Decider, Decider, ApiInput<ApiCommand>, Docs][] = [
      [stock, stockDecider, apiCommand({ type: 'AddStock', itemId: 'i1', amount: 3 }), STOCK_DOCS],
      [payment, paymentDecider(), apiCommand({ type: 'Pay', userId: 'u1', amount: 5 }), { 'user:u1': { credit: 9, held: 0 } }],
    ];
    for (const [wrapped, inner, message, docs] of pairs) {
      assert.deepEqual(deciderSpec(wrapped).keys(message), deciderSpec(inner).keys(message));
      assert.deepEqual(decide(wrapped, docs, message).decision, decide(inner, docs, message).decision);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A whole checkout: every message goes, first in first out, to every service that consumes it.

const services: Record<string, Decider> = {
  orders: choreographedOrders(sagaVersions(saga, []), { reservationTtlMs: 0 }), stock, payment, tracker: trackerDecider(sagaVersions(saga, []), 'CheckoutRequested', 'CheckoutCancelled'),
};

type World = Record<string, Docs>;
type Delivery = Readonly<{ type: string; to: string; orderStatus: string | undefined; sent: readonly string[] }>;

function checkout(world: World, lose: (m: Envelope) => boolean = () => false) {
  const api = apiCommand({ type: 'Checkout', orderId: 'o1', sagaId: SAGA }, 'o1', 'o1:checkout');
  return deliver(world, [['orders', api]], 1, lose);
}

/**
 * Delivers `queue` and everything it causes, first in first out, to every service that consumes
 * it; messages `lose` picks are lost on the way (a broker that lost them), timers are kept aside.
 */
function deliver(world: World, queue: [string, Input<ApiCommand>][], now: number, lose: (m: Envelope) => boolean = () => false) {
  const log: Delivery[] = [];
  const published: Envelope[] = [];
  const timers: Envelope[] = [];
  for (let next = queue.shift(); next; next = queue.shift()) {
    const [to, message] = next;
    const { docs, sent: all } = decide(services[to]!, world[to]!, message, now++);
    // Timers are not due in this world, where every message comes at once.
    const sent = all.filter((m) => m.deliverAt === undefined);
    timers.push(...all.filter((m) => m.deliverAt !== undefined));
    world[to] = docs;
    log.push({ type: 'kind' in message ? message.command.type : message.type, to, orderStatus: orderOf(world).checkout?.status, sent: sent.map((m) => m.type) });
    published.push(...sent);
    for (const m of sent.filter((x) => !lose(x))) for (const [name, s] of Object.entries(services)) if (s.consumes.includes(m.type)) queue.push([name, m]);
  }
  return { log, published, world, timers };
}

/**
 * Fires the order's latest saga timer at its time, and delivers what follows; a timer that
 * finds progress since it was set only sets the next one, which is fired in turn.
 */
function fire(world: World, timers: readonly Envelope[]): ReturnType<typeof deliver> {
  const timer = timers.at(-1)!;
  const result = deliver(world, [['orders', timer]], timer.deliverAt!);
  return result.published.length === 0 && result.timers.length > 0 ? fire(result.world, result.timers) : result;
}

const orderOf = (world: World) => world.orders?.['order:o1'] as Order;
const start = (credit: number): World => ({
  orders: { 'order:o1': { userId: 'u1', lines: LINES, totalCost: 30, attempts: 0 } satisfies Order },
  stock: { ...STOCK_DOCS }, payment: { 'user:u1': { credit, held: 0 } }, tracker: {},
});
const shape = (state: SagaState<CheckoutContext> | undefined) => ({ status: state?.status, history: state?.history.map(({ at: _at, ...e }) => e) });
/** The same, but the order of the step events left out (concurrent steps may end in either order). */
const unordered = (state: SagaState<CheckoutContext> | undefined) => {
  const { status, history = [] } = shape(state);
  return { status, history: history.map((e) => JSON.stringify(e)).sort() };
};

/** The tracker's view after being given these published events, in the order given. */
function trackerAfter(published: readonly Envelope[]): TrackedSaga | undefined {
  let docs: Docs = {};
  for (const m of published) if (services.tracker!.consumes.includes(m.type)) docs = decide(services.tracker!, docs, m).docs;
  return docs[`saga:${SAGA}`] as TrackedSaga | undefined;
}

void describe('choreography: whole checkouts, event by event', () => {
  void it('happy path: the order completes, stock and credit are taken once, the tracker agrees', () => {
    const { log, published, world } = checkout(start(100));
    assert.deepEqual(published.map((m) => m.type), [
      'CheckoutRequested', 'StockReserved', 'PaymentAuthorized', 'StockCommitted', 'PaymentCaptured', 'OrderConfirmed', 'CheckoutCompleted',
    ]);
    assert.deepEqual(log.filter((d) => d.to === 'orders').map((d) => [d.type, d.orderStatus, d.sent]), [
      ['Checkout', 'running', ['CheckoutRequested']], ['StockReserved', 'running', []], ['PaymentAuthorized', 'running', []],
      ['StockCommitted', 'running', []], ['PaymentCaptured', 'completed', ['OrderConfirmed', 'CheckoutCompleted']],
    ]);
    assert.deepEqual([world.stock?.[`reservation:${SAGA}`], world.payment?.[`hold:${SAGA}`]], [{ status: 'committed', lines: LINES }, { status: 'captured', ...charge }]);
    assert.deepEqual(world.stock?.['item:i1'], { price: 10, available: 8, reserved: 0 });
    assert.deepEqual(world.stock?.['item:i2'], { price: 10, available: 4, reserved: 0 });
    assert.deepEqual(world.payment?.['user:u1'], { credit: 70, held: 0 });
    const tracked = world.tracker?.[`saga:${SAGA}`] as TrackedSaga;
    assert.deepEqual(tracked.early, []);
    assert.deepEqual(shape(tracked.state), shape(orderOf(world).checkout));
    assert.deepEqual(unordered(trackerAfter([...published].reverse())?.state), unordered(orderOf(world).checkout), 'the same from events in reverse');
  });

  void it('declined payment: stock is released, and only then the order fails; nothing is taken', () => {
    const { log, published, world } = checkout(start(5));
    assert.deepEqual(published.map((m) => m.type), ['CheckoutRequested', 'StockReserved', 'PaymentDeclined', 'StockReleased', 'CheckoutFailed']);
    const toOrder = log.filter((d) => d.to === 'orders').map((d) => [d.type, d.orderStatus]);
    assert.deepEqual(toOrder, [
      ['Checkout', 'running'], ['StockReserved', 'running'], ['PaymentDeclined', 'compensating'], ['StockReleased', 'failed'],
    ]);
    const failed = orderOf(world).checkout;
    assert.ok(failed?.status === 'failed');
    assert.equal(failed.reason, 'user u1 has credit 5, 30 needed');
    assert.deepEqual(published.at(-1)?.payload, { orderId: 'o1', userId: 'u1', amount: 30, reason: failed.reason });
    assert.deepEqual(world.stock?.['item:i1'], STOCK_DOCS['item:i1']);
    assert.deepEqual(world.stock?.['item:i2'], STOCK_DOCS['item:i2']);
    assert.deepEqual(world.payment?.['user:u1'], { credit: 5, held: 0 });
    assert.deepEqual(world.stock?.[`reservation:${SAGA}`], { status: 'released', lines: LINES });
    const tracked = world.tracker?.[`saga:${SAGA}`] as TrackedSaga;
    assert.deepEqual(shape(tracked.state), shape(failed));
    assert.deepEqual(unordered(trackerAfter([...published].reverse())?.state), unordered(failed), 'the same from events in reverse');
  });
});

void describe('choreography: a stalled step is started again by the order\'s timer', () => {
  const once = (type: string) => {
    let lost = false;
    return (m: Envelope) => m.type === type && !lost && (lost = true);
  };

  void it('a StockReserved the broker lost: the timer announces the checkout again, stock answers again, the checkout completes once', () => {
    const stalled = checkout(start(100), once('StockReserved'));
    assert.equal(orderOf(stalled.world).checkout?.status, 'running');
    assert.deepEqual(stalled.world.stock?.['item:i1'], { price: 10, available: 8, reserved: 2 }, 'reserved, but nobody heard');
    const after = fire(stalled.world, stalled.timers);
    assert.deepEqual(after.published.map((m) => m.type).slice(0, 2), ['CheckoutRequested', 'StockReserved'], 'announced again; stock repeats its outcome');
    assert.equal(orderOf(after.world).checkout?.status, 'completed');
    assert.deepEqual(after.world.stock?.['item:i1'], { price: 10, available: 8, reserved: 0 }, 'taken once');
    assert.deepEqual(after.world.payment?.['user:u1'], { credit: 70, held: 0 }, 'charged once');
    assert.ok(orderOf(after.world).checkout?.history.some((e) => e.event === 'retried'), 'the retry is in the history');
  });

  void it('a StockReleased the broker lost: the timer repeats the decline, stock repeats the release, the checkout fails with nothing taken', () => {
    const stalled = checkout(start(5), once('StockReleased'));
    assert.equal(orderOf(stalled.world).checkout?.status, 'compensating');
    const after = fire(stalled.world, stalled.timers);
    assert.deepEqual(after.published[0]?.type, 'PaymentDeclined', 'the decline, repeated by the order');
    assert.deepEqual((after.published[0]?.payload as { detail?: string }).detail, 'user u1 has credit 5, 30 needed');
    const failed = orderOf(after.world).checkout;
    assert.equal(failed?.status, 'failed');
    assert.deepEqual(after.world.stock?.['item:i1'], STOCK_DOCS['item:i1']);
    assert.deepEqual(after.world.payment?.['user:u1'], { credit: 5, held: 0 });
  });

  void it('a saga that ended cancels its timer, and a late timer changes nothing', () => {
    const done = checkout(start(100));
    const { log } = fire(done.world, done.timers);
    assert.deepEqual(log.map((d) => d.sent), [[]]);
  });
});

void describe('choreography: saga versions', () => {
  const v2 = lifecycleSaga(undefined, { sequential: true });
  const byVersion = (participant: string) => new Map([saga, v2].map((def) => [def.version, reactions(def, 'CheckoutRequested', checkoutParticipant, 'CheckoutCancelled').filter((r) => r.participant === participant)]));
  const versionedStock = deciderSpec(reacting(stockDecider, byVersion('stock'), checkoutContextCheck));
  const ctx = { orderId: 'o1', userId: 'u1', lines: [['i1', 1]], amount: 10 };
  const event = (type: string, payload: Record<string, unknown>): Envelope =>
    ({ id: `e-${type}`, type, sagaId: SAGA, step: 'authorizePayment', correlationId: 'o1', causationId: '', at: 0, payload });
  const reserved = { 'item:i1': { price: 10, available: 4, reserved: 1 }, [`reservation:${SAGA}`]: { status: 'reserved', lines: [['i1', 1]] } };

  void it('an event reacts as the version its saga runs under says: v1 commits on PaymentAuthorized, v2 does not', () => {
    const v1 = versionedStock.given(reserved).when(event('PaymentAuthorized', { ctx }));
    assert.deepEqual(v1.sent.map((m) => m.type), ['StockCommitted'], 'no version: a saga from before versions, v1');
    versionedStock.given(reserved).when(event('PaymentAuthorized', { ctx, version: 2 })).then({});
    const committed = versionedStock.given(reserved).when(event('FraudCheckPassed', { ctx, version: 2 }));
    assert.deepEqual(committed.sent.map((m) => [m.type, (m.payload as { version?: number }).version]), [['StockCommitted', 2]], 'the reply carries the version on');
  });
});
