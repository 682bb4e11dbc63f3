/**
 * The order lifecycle as given/when/then: the order service running checkout version 2 in
 * orchestration (with a reservation time to live), and the fulfillment, notification and
 * payment steps the lifecycle adds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { envelopesFrom, type Envelope } from '../../src/core/message.ts';
import { sagaVersions } from '../../src/core/saga.ts';
import { fulfillmentDecider } from '../../src/domain/fulfillment/businessLogic.ts';
import { trackingNumberOf, type Shipment } from '../../src/domain/fulfillment/fulfillment.ts';
import { notificationDecider } from '../../src/domain/notification/businessLogic.ts';
import { checkoutSaga, lifecycleSaga } from '../../src/domain/order/checkoutSaga.ts';
import { orchestratedOrders } from '../../src/domain/order/orchestration.ts';
import { orderStatus, type Order } from '../../src/domain/order/order.ts';
import { paymentDecider } from '../../src/domain/payment/businessLogic.ts';
import { apiCommand, deciderSpec, NOW, type Docs, type Step } from './deciderSpec.ts';

const TTL = 60_000;
const orders = deciderSpec(orchestratedOrders(sagaVersions(lifecycleSaga(), [checkoutSaga()]), { reservationTtlMs: TTL }));
const LINES = [['i1', 2]] as const;
const order: Order = { userId: 'u1', lines: LINES, totalCost: 20, attempts: 0 };
const SAGA = 'o1.1';

const command = (c: Parameters<typeof orders.decider.api.decide>[0]) => apiCommand(c, 'orderId' in c ? c.orderId : '', `cmd:${c.type}`);
const sent = (step: Step, type: string): Envelope => {
  const found = step.sent.find((m) => m.type === type);
  assert.ok(found, `expected ${type} among ${step.sent.map((m) => m.type).join(', ')}`);
  return found;
};
const reply = (to: Envelope, type: string, payload: unknown = {}, at = NOW): Envelope => envelopesFrom(to, [{ type, payload }], at)[0]!;
const status = (docs: Docs) => orderStatus(docs['order:o1'] as Order);
const types = (step: Step) => step.sent.map((m) => m.type);

/** o1 checked out under version 2 up to `until` (the step whose success it stops after). */
function upTo(until: 'start' | 'held' | 'captured' | 'fraud' | 'committed' | 'shipped') {
  const started = orders.decide({ 'order:o1': order }, command({ type: 'Checkout', orderId: 'o1', sagaId: SAGA }), NOW);
  if (until === 'start') return { started, last: started };
  const reserved = orders.decide(started.docs, reply(sent(started, 'ReserveStock'), 'StockReserved'), NOW + 1);
  const held = orders.decide(reserved.docs, reply(sent(started, 'AuthorizePayment'), 'PaymentAuthorized'), NOW + 2);
  if (until === 'held') return { started, last: held };
  const captured = orders.decide(held.docs, reply(sent(held, 'CapturePayment'), 'PaymentCaptured'), NOW + 3);
  if (until === 'captured') return { started, last: captured };
  const fraud = orders.decide(captured.docs, reply(sent(captured, 'CheckFraud'), 'FraudCheckPassed'), NOW + 4);
  if (until === 'fraud') return { started, last: fraud };
  const committed = orders.decide(fraud.docs, reply(sent(fraud, 'CommitStock'), 'StockCommitted'), NOW + 5);
  if (until === 'committed') return { started, last: committed };
  const shipped = orders.decide(committed.docs, reply(sent(committed, 'CreateShipment'), 'ShipmentCreated', { trackingNumber: 'OP000000000AA', carrier: 'Orderly Post', label: 'label' }), NOW + 6);
  return { started, last: shipped };
}

void describe('lifecycle: the checkout, version 2', () => {
  void it('goes RESERVED → PAYMENT_PENDING → PAID → CONFIRMED → SHIPPED, telling what it reached', () => {
    const { started } = upTo('start');
    assert.deepEqual(types(started), ['ReserveStock', 'AuthorizePayment', 'SagaTimerFired', 'ReservationExpired']);
    assert.equal(sent(started, 'ReservationExpired').deliverAt, NOW + TTL, 'the reservation has a time to live');
    assert.deepEqual((started.docs['order:o1'] as Order).checkout?.definition, { name: 'checkout', version: 2 });
    assert.equal(status(upTo('held').last.docs), 'PAYMENT_PENDING');
    const captured = upTo('captured').last;
    assert.equal(status(captured.docs), 'PAID');
    assert.deepEqual(captured.decision.cancel, [`${SAGA}/ttl`], 'paid in time: the time to live is dropped');
    const committed = upTo('committed').last;
    assert.equal(status(committed.docs), 'CONFIRMED');
    assert.deepEqual(types(committed), ['CreateShipment', 'OrderConfirmed']);
    const shipped = upTo('shipped').last;
    assert.equal(status(shipped.docs), 'SHIPPED');
    assert.deepEqual(types(shipped), ['OrderShipped', 'CheckoutCompleted']);
    assert.deepEqual((shipped.docs['order:o1'] as Order).shipment, { trackingNumber: 'OP000000000AA', carrier: 'Orderly Post', label: 'label', status: 'label_created' });
  });

  void it('a failed fraud check refunds, drops the hold and releases the stock, latest first; then FAILED and refunded', () => {
    const captured = upTo('captured').last;
    const failed = orders.decide(captured.docs, reply(sent(captured, 'CheckFraud'), 'FraudCheckFailed', { reason: 'fraud-suspected', detail: 'too much' }), NOW + 4);
    assert.equal(status(failed.docs), 'FAILED', 'decided, while its steps are undone');
    assert.deepEqual(types(failed), ['RefundPayment']);
    const refunded = orders.decide(failed.docs, reply(sent(failed, 'RefundPayment'), 'PaymentRefunded'), NOW + 5);
    assert.deepEqual(types(refunded), ['VoidPayment']);
    const voided = orders.decide(refunded.docs, reply(sent(refunded, 'VoidPayment'), 'PaymentVoided'), NOW + 6);
    assert.deepEqual(types(voided), ['ReleaseStock']);
    const released = orders.decide(voided.docs, reply(sent(voided, 'ReleaseStock'), 'StockReleased'), NOW + 7);
    assert.deepEqual(types(released), ['CheckoutFailed', 'OrderRefunded']);
    assert.deepEqual(sent(released, 'CheckoutFailed').payload, { orderId: 'o1', userId: 'u1', amount: 20, reason: 'too much' });
  });

  void it('the time to live, before the payment is taken: aborts, undoing every step (shipment, refund, hold, stock); CANCELLED by the clock', () => {
    const { started, last: held } = upTo('held');
    const expired = orders.decide(held.docs, { ...sent(started, 'ReservationExpired'), at: NOW + TTL }, NOW + TTL);
    assert.equal(status(expired.docs), 'CANCELLED');
    assert.deepEqual(types(expired), ['CancelShipment']);
    assert.equal((expired.docs['order:o1'] as Order).cancelled?.by, 'timeout');
    let step = expired;
    for (const [command, done] of [['CancelShipment', 'ShipmentCancelled'], ['RefundPayment', 'PaymentRefunded'], ['VoidPayment', 'PaymentVoided'], ['ReleaseStock', 'StockReleased']] as const) {
      step = orders.decide(step.docs, reply(sent(step, command), done), NOW + TTL + 1);
    }
    assert.deepEqual(types(step), ['OrderCancelled'], 'nothing was captured: no refund told');
  });

  void it('the time to live after the payment was taken: nothing', () => {
    const { started, last: captured } = upTo('captured');
    orders.given(captured.docs).when(sent(started, 'ReservationExpired'), NOW + TTL).then({});
  });

  void it('cancel: at once before a checkout; during one, an abort; after shipping, 409 with the tracking number', () => {
    const early = orders.decide({ 'order:o1': order }, command({ type: 'Cancel', orderId: 'o1', reason: 'oops' }), NOW);
    assert.equal(status(early.docs), 'CANCELLED');
    assert.deepEqual(types(early), ['OrderCancelled']);
    const confirmed = upTo('committed').last;
    const aborted = orders.decide(confirmed.docs, command({ type: 'Cancel', orderId: 'o1', reason: 'changed my mind' }), NOW + 6);
    assert.deepEqual(aborted.decision.reply, { ok: true, value: { order_id: 'o1', status: 'CANCELLED' } });
    assert.deepEqual(types(aborted), ['CancelShipment']);
    orders.given(aborted.docs).when(command({ type: 'Cancel', orderId: 'o1', reason: 'again' })).then({ reply: { ok: true, value: { order_id: 'o1', status: 'CANCELLED' } } });
    const shipped = upTo('shipped').last;
    const refused = orders.decide(shipped.docs, command({ type: 'Cancel', orderId: 'o1', reason: 'too late' }), NOW + 7);
    assert.equal(refused.decision.reply?.ok, false);
    assert.match(refused.decision.reply?.ok === false ? refused.decision.reply.detail : '', /OP000000000AA/);
    assert.equal(refused.decision.writes, undefined, 'nothing changed');
  });

  void it('carrier scans move the order to IN_TRANSIT and DELIVERED, never back', () => {
    const shipped = upTo('shipped').last;
    const scan = (s: string, at: number): Envelope => ({
      id: `scan-${s}`, type: 'ShipmentScanned', sagaId: SAGA, step: '', correlationId: 'o1', causationId: 'api', at,
      payload: { orderId: 'o1', userId: 'u1', trackingNumber: 'OP000000000AA', scan: s, status: s, at },
    });
    const delivered = orders.decide(orders.decide(shipped.docs, scan('picked_up', 1)).docs, scan('delivered', 2));
    assert.equal(status(delivered.docs), 'DELIVERED');
    orders.given(delivered.docs).when(scan('in_transit', 3)).then({});
  });
});

void describe('fulfillment', () => {
  const spec = deciderSpec(fulfillmentDecider);
  const tracking = trackingNumberOf(SAGA);
  const request = (type: string): Envelope => ({ id: `m-${type}`, type, sagaId: SAGA, step: 'createShipment', correlationId: 'o1', causationId: '', at: NOW, payload: { orderId: 'o1', userId: 'u1', lines: LINES } });

  void it('makes one shipment per saga, with a label and a tracking number; a repeat answers the same', () => {
    const made = spec.decide({}, request('CreateShipment'));
    const shipment = made.docs[`shipment:${tracking}`] as Shipment;
    assert.equal(shipment.status, 'label_created');
    assert.match(shipment.label, new RegExp(tracking));
    assert.deepEqual(types(made), ['ShipmentCreated']);
    spec.given(made.docs).when(request('CreateShipment')).then({ send: made.decision.send ?? [] });
  });

  void it('a cancel before the request leaves a tombstone: the late request ships nothing and answers nothing', () => {
    const cancelled = spec.decide({}, request('CancelShipment'));
    assert.deepEqual(types(cancelled), ['ShipmentCancelled']);
    spec.given(cancelled.docs).when(request('CreateShipment')).then({});
  });

  void it('scans: forward only, none after a cancel, none but "delivered" after delivery', () => {
    const made = spec.decide({}, request('CreateShipment')).docs;
    const scan = (docs: Docs, s: 'picked_up' | 'in_transit' | 'delivered') => spec.decide(docs, apiCommand({ type: 'RecordScan', trackingNumber: tracking, scan: s }));
    const picked = scan(made, 'picked_up');
    assert.deepEqual(types(picked), ['ShipmentScanned']);
    const delivered = scan(picked.docs, 'delivered');
    assert.equal(scan(delivered.docs, 'in_transit').decision.reply?.ok, false);
    assert.deepEqual(types(scan(delivered.docs, 'delivered')), [], 'a repeated delivery scan tells nothing new');
    const cancelled = spec.decide(made, request('CancelShipment')).docs;
    assert.equal(scan(cancelled, 'picked_up').decision.reply?.ok, false);
  });
});

void describe('notification', () => {
  const spec = deciderSpec(notificationDecider);
  const event = (type: string, id: string, payload: Record<string, unknown> = {}): Envelope => ({
    id, type, sagaId: SAGA, step: '', correlationId: 'o1', causationId: '', at: NOW, payload: { orderId: 'o1', userId: 'u1', amount: 20, ...payload },
  });

  void it('one message per order, attempt and kind: the same news twice (even under another message id) makes no second one', () => {
    const first = spec.decide({}, event('OrderConfirmed', 'a'));
    assert.deepEqual(types(first), ['NotificationSent']);
    spec.given(first.docs).when(event('OrderConfirmed', 'b')).then({});
  });

  void it('a pick-up and an in-transit scan are one "on the way"', () => {
    const scan = (s: string, id: string) => event('ShipmentScanned', id, { trackingNumber: 'OP000000000AA', scan: s, status: s, at: NOW });
    const picked = spec.decide({}, scan('picked_up', 'p'));
    spec.given(picked.docs).when(scan('in_transit', 't')).then({});
  });
});

void describe('payment: the fraud check', () => {
  const rule = { maxAmount: 100, maxPerWindow: 2, windowMs: 1000 };
  const spec = deciderSpec(paymentDecider(rule));
  const check = (sagaId: string, amount: number): Envelope => ({ id: `c-${sagaId}`, type: 'CheckFraud', sagaId, step: 'checkFraud', correlationId: 'o1', causationId: '', at: NOW, payload: { userId: 'u1', amount } });
  const captured = (sagaId: string, amount: number) => ({ [`hold:${sagaId}`]: { status: 'captured', userId: 'u1', amount } });
  const account = { 'user:u1': { credit: 1000, held: 0 } };

  void it('passes below the limits, fails above the amount, and fails the third payment within the window', () => {
    const first = spec.decide({ ...account, ...captured('a', 10) }, check('a', 10), NOW);
    assert.deepEqual(types(first), ['FraudCheckPassed']);
    assert.deepEqual(types(spec.decide({ ...account, ...captured('x', 101) }, check('x', 101), NOW)), ['FraudCheckFailed']);
    const second = spec.decide({ ...first.docs, ...captured('b', 10) }, check('b', 10), NOW + 1);
    const third = spec.decide({ ...second.docs, ...captured('c', 10) }, check('c', 10), NOW + 2);
    assert.deepEqual(types(third), ['FraudCheckFailed']);
    assert.deepEqual(types(spec.decide({ ...second.docs, ...captured('d', 10) }, check('d', 10), NOW + 1001)), ['FraudCheckPassed'], 'once the window has passed');
  });

  void it('a repeated check answers the same; a payment no longer captured is not checked', () => {
    const first = spec.decide({ ...account, ...captured('a', 500) }, check('a', 500), NOW);
    spec.given(first.docs).when(check('a', 500), NOW + 5).then({ send: first.decision.send ?? [] });
    spec.given({ ...account, 'hold:r': { status: 'refunded', userId: 'u1', amount: 0 } }).when(check('r', 10)).then({});
  });
});
