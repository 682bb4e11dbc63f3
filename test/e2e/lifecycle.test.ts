/**
 * The order lifecycle (docs/lifecycle.md) through the lifecycle API, on the embedded profile in
 * every saga style: every row of the transition table that a single process can drive, the
 * customer's notifications, idempotency, and bad input for every new route.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SAGA_STYLES } from '../../src/config.ts';
import type { Audit } from '../../src/domain/audit.ts';
import { assertProblem, createItem, createUser, ok, startTestSystem, type TestSystem } from './helpers.ts';

type Order = Readonly<{
  order_id: string; status: string; total_cost: number;
  amounts: { authorized: number; captured: number; refunded: number };
  checkout: { saga_id: string; status: string; definition: { version: number } } | null;
  shipment: { tracking_number: string; status: string; label: string } | null;
  cancelled: { by: string; reason: string } | null;
  timeline: { step: string; event: string }[];
}>;
type Notifications = Readonly<{ notifications: { kind: string; order_id: string; text: string }[] }>;

const json = { 'content-type': 'application/json' };

export async function placeOrder(t: TestSystem, userId: string, items: readonly (readonly [string, number])[]): Promise<Order> {
  const res = await t.inject({ method: 'POST', url: '/api/orders', headers: json, payload: { user_id: userId, items: items.map(([item_id, quantity]) => ({ item_id, quantity })) } });
  assert.equal(res.statusCode, 201, res.body);
  return res.json<Order>();
}

const getOrder = async (t: TestSystem, orderId: string) => ok<Order>(await t.inject({ method: 'GET', url: `/api/orders/${orderId}` }), 'get order');
const checkout = (t: TestSystem, orderId: string, headers: Record<string, string> = {}) => t.inject({ method: 'POST', url: `/api/orders/${orderId}/checkout`, headers });
const cancel = (t: TestSystem, orderId: string, reason?: string) =>
  t.inject({ method: 'POST', url: `/api/orders/${orderId}/cancel`, headers: json, payload: reason === undefined ? {} : { reason } });
const scan = (t: TestSystem, tracking: string, kind: string) =>
  t.inject({ method: 'POST', url: `/api/shipments/${tracking}/scans`, headers: json, payload: { scan: kind } });
const notified = async (t: TestSystem, userId: string, orderId: string) =>
  ok<Notifications>(await t.inject({ method: 'GET', url: `/api/customers/${userId}/notifications` })).notifications.filter((n) => n.order_id === orderId).map((n) => n.kind);
const audit = async (t: TestSystem) => ok<Audit>(await t.inject({ method: 'GET', url: '/admin/audit' }));

/** Waits until the order's saga has ended and the customer heard what `kinds` says (notification is eventually consistent). */
async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; i < 200 && !done(value); i++) {
    await sleep(25);
    value = await read();
  }
  assert.ok(done(value), `${what}: still ${JSON.stringify(value).slice(0, 400)}`);
  return value;
}

const ended = (t: TestSystem, orderId: string) =>
  until(`order ${orderId} settles`, () => getOrder(t, orderId), (o) => o.checkout === null || o.checkout.status === 'completed' || o.checkout.status === 'failed');

for (const style of SAGA_STYLES) {
  await describe(`lifecycle, ${style} on the embedded profile`, async () => {
    let t: TestSystem;
    before(async () => {
      t = await startTestSystem({ SAGA_STYLE: style, ORDERLY_FRAUD_MAX_AMOUNT: '500', ORDERLY_CHECKOUT_WAIT_MS: '10000' });
    });
    after(() => t.close());
    await test('happy path: CREATED → … → CONFIRMED → SHIPPED → IN_TRANSIT → DELIVERED, the customer told each step once', async () => {
      const user = await createUser(t, 100);
      const item = await createItem(t, 10, 5);
      const created = await placeOrder(t, user, [[item, 2]]);
      assert.equal(created.status, 'CREATED');
      assert.equal(created.total_cost, 20);
      const confirmed = ok<Order>(await checkout(t, created.order_id), 'checkout');
      assert.ok(['CONFIRMED', 'SHIPPED'].includes(confirmed.status), confirmed.status);
      assert.deepEqual(confirmed.amounts, { authorized: 20, captured: 20, refunded: 0 });
      assert.equal(confirmed.checkout?.definition.version, 2);
      const shipped = await ended(t, created.order_id);
      assert.equal(shipped.status, 'SHIPPED');
      const tracking = shipped.shipment?.tracking_number ?? '';
      assert.match(tracking, /^OP[0-9A-Z]{11}$/);
      assert.match(shipped.shipment?.label ?? '', new RegExp(tracking));
      for (const step of ['reserveStock', 'authorizePayment', 'capturePayment', 'checkFraud', 'commitStock', 'createShipment']) {
        assert.ok(shipped.timeline.some((e) => e.step === step && e.event === 'succeeded'), `${step} succeeded in the timeline`);
      }
      assertProblem(await cancel(t, created.order_id), 'cancel after shipping');
      assert.equal((await cancel(t, created.order_id)).statusCode, 409);
      ok(await scan(t, tracking, 'picked_up'), 'picked up');
      await until('IN_TRANSIT', () => getOrder(t, created.order_id), (o) => o.status === 'IN_TRANSIT');
      ok(await scan(t, tracking, 'in_transit'), 'in transit');
      ok(await scan(t, tracking, 'delivered'), 'delivered');
      await until('DELIVERED', () => getOrder(t, created.order_id), (o) => o.status === 'DELIVERED');
      assertProblem(await scan(t, tracking, 'in_transit'), 'a scan after delivery');
      const kinds = await until('notifications', () => notified(t, user, created.order_id), (k) => k.length >= 4);
      assert.deepEqual(kinds, ['confirmed', 'shipped', 'on_the_way', 'delivered'], 'one "on the way" for two scans, each once');
      const totals = await audit(t);
      assert.equal(totals.fulfillment.units, totals.orders.shipped_units, 'units shipped = units of shipped orders');
    });

    await test('CREATED, reservation fails → FAILED, the customer told "out of stock", nothing taken', async () => {
      const user = await createUser(t, 100);
      const item = await createItem(t, 10, 1);
      const order = await placeOrder(t, user, [[item, 2]]);
      const problem = assertProblem(await checkout(t, order.order_id), 'checkout');
      assert.equal(problem.code, 'checkout-failed');
      assert.match(problem.detail, /in stock/);
      const failed = await ended(t, order.order_id);
      assert.equal(failed.status, 'FAILED');
      assert.deepEqual(failed.amounts, { authorized: failed.amounts.authorized, captured: 0, refunded: 0 });
      assert.deepEqual(await until('told', () => notified(t, user, order.order_id), (k) => k.length > 0), ['failed']);
      assert.deepEqual(ok<{ credit: number }>(await t.inject({ method: 'GET', url: `/payment/find_user/${user}` })).credit, 100);
    });

    await test('payment declined → FAILED, stock released', async () => {
      const user = await createUser(t, 5);
      const item = await createItem(t, 10, 3);
      const order = await placeOrder(t, user, [[item, 1]]);
      assert.equal(assertProblem(await checkout(t, order.order_id)).code, 'checkout-failed');
      assert.equal((await ended(t, order.order_id)).status, 'FAILED');
      assert.equal(ok<{ stock: number }>(await t.inject({ method: 'GET', url: `/stock/find/${item}` })).stock, 3);
    });

    await test('PAID, fraud check fails → FAILED: refunded, stock released, the customer told why and of the refund', async () => {
      const user = await createUser(t, 1000);
      const item = await createItem(t, 300, 3);
      const order = await placeOrder(t, user, [[item, 2]]);
      const problem = assertProblem(await checkout(t, order.order_id));
      assert.match(problem.detail, /fraud limit/);
      const failed = await ended(t, order.order_id);
      assert.equal(failed.status, 'FAILED');
      assert.deepEqual(failed.amounts, { authorized: 600, captured: 600, refunded: 600 });
      assert.deepEqual(await until('told', () => notified(t, user, order.order_id), (k) => k.length >= 2), ['failed', 'refunded']);
      assert.equal(ok<{ credit: number }>(await t.inject({ method: 'GET', url: `/payment/find_user/${user}` })).credit, 1000);
      assert.equal(ok<{ stock: number }>(await t.inject({ method: 'GET', url: `/stock/find/${item}` })).stock, 3);
    });

    await test('cancel before checkout → CANCELLED at once; a checkout after it is refused; cancelling again answers the same', async () => {
      const user = await createUser(t, 100);
      const item = await createItem(t, 10, 3);
      const order = await placeOrder(t, user, [[item, 1]]);
      const cancelled = ok<Order>(await cancel(t, order.order_id, 'ordered by mistake'), 'cancel');
      assert.equal(cancelled.status, 'CANCELLED');
      assert.deepEqual(cancelled.cancelled, { by: 'customer', reason: 'ordered by mistake', at: (cancelled.cancelled as { at?: string } | null)?.at });
      assert.equal(ok<Order>(await cancel(t, order.order_id)).status, 'CANCELLED');
      assert.equal(assertProblem(await checkout(t, order.order_id)).code, 'order-cancelled');
      assert.deepEqual(await until('told', () => notified(t, user, order.order_id), (k) => k.length > 0), ['cancelled']);
    });

    await test('cancel during the checkout → CANCELLED: every step undone, money given back, stock released', async () => {
      const user = await createUser(t, 100);
      const item = await createItem(t, 10, 3);
      const order = await placeOrder(t, user, [[item, 2]]);
      const started = await checkout(t, order.order_id, { prefer: 'respond-async' });
      assert.ok(started.statusCode === 202 || started.statusCode === 200, started.body);
      const answer = await cancel(t, order.order_id, 'changed my mind');
      const after = await ended(t, order.order_id);
      if (answer.statusCode === 200) {
        assert.equal(after.status, 'CANCELLED');
        assert.equal(after.amounts.captured, after.amounts.refunded, 'whatever was taken is given back');
        assert.equal(ok<{ credit: number }>(await t.inject({ method: 'GET', url: `/payment/find_user/${user}` })).credit, 100);
        assert.equal(ok<{ stock: number }>(await t.inject({ method: 'GET', url: `/stock/find/${item}` })).stock, 3);
        const kinds = await until('told', () => notified(t, user, order.order_id), (k) => k.includes('cancelled'));
        assert.ok(!kinds.includes('shipped'), `no shipment told: ${kinds.join(', ')}`);
      } else {
        // The checkout won the race: it had shipped already.
        assert.equal(assertProblem(answer).code, 'order-not-cancellable');
        assert.equal(after.status, 'SHIPPED');
      }
    });

    await test('Idempotency-Key on the lifecycle POSTs: the first answer again, nothing done twice', async () => {
      const user = await createUser(t, 100);
      const item = await createItem(t, 10, 5);
      const body = { user_id: user, items: [{ item_id: item, quantity: 1 }] };
      const first = await t.inject({ method: 'POST', url: '/api/orders', headers: { ...json, 'idempotency-key': `k-${user}` }, payload: body });
      const again = await t.inject({ method: 'POST', url: '/api/orders', headers: { ...json, 'idempotency-key': `k-${user}` }, payload: body });
      assert.equal(first.statusCode, 201);
      assert.equal(again.json<Order>().order_id, first.json<Order>().order_id);
      const id = first.json<Order>().order_id;
      const c1 = await t.inject({ method: 'POST', url: `/api/orders/${id}/checkout`, headers: { 'idempotency-key': `c-${id}` } });
      const c2 = await t.inject({ method: 'POST', url: `/api/orders/${id}/checkout`, headers: { 'idempotency-key': `c-${id}` } });
      assert.equal(c1.statusCode, 200, c1.body);
      assert.equal(c2.statusCode, 200, c2.body);
      await ended(t, id);
      assert.equal(ok<{ credit: number }>(await t.inject({ method: 'GET', url: `/payment/find_user/${user}` })).credit, 90, 'charged once');
      const tracking = (await getOrder(t, id)).shipment?.tracking_number ?? '';
      const s1 = await t.inject({ method: 'POST', url: `/api/shipments/${tracking}/scans`, headers: { ...json, 'idempotency-key': `s-${id}` }, payload: { scan: 'picked_up' } });
      const s2 = await t.inject({ method: 'POST', url: `/api/shipments/${tracking}/scans`, headers: { ...json, 'idempotency-key': `s-${id}` }, payload: { scan: 'picked_up' } });
      assert.equal(s2.body, s1.body);
      assert.equal(ok<{ scans: { scan: string }[] }>(await t.inject({ method: 'GET', url: `/api/shipments/${tracking}` })).scans.length, 1);
    });

    await test('bad input on every lifecycle route: a 4xx problem, nothing changed', async () => {
      const before = await audit(t);
      const user = await createUser(t, 10);
      const item = await createItem(t, 1, 1);
      const order = await placeOrder(t, user, [[item, 1]]);
      const cases: [string, Parameters<TestSystem['inject']>[0], string][] = [
        ['no body', { method: 'POST', url: '/api/orders' }, 'invalid-body'],
        ['not JSON', { method: 'POST', url: '/api/orders', headers: json, payload: '{"user_id":' }, 'invalid-body'],
        ['an array', { method: 'POST', url: '/api/orders', headers: json, payload: '[]' }, 'invalid-body'],
        ['bad user id', { method: 'POST', url: '/api/orders', headers: json, payload: { user_id: 'a b' } }, 'invalid-body'],
        ['unknown user', { method: 'POST', url: '/api/orders', headers: json, payload: { user_id: 'nobody' } }, 'user-not-found'],
        ['unknown item', { method: 'POST', url: '/api/orders', headers: json, payload: { user_id: user, items: [{ item_id: 'none', quantity: 1 }] } }, 'item-not-found'],
        ['zero quantity', { method: 'POST', url: '/api/orders', headers: json, payload: { user_id: user, items: [{ item_id: item, quantity: 0 }] } }, 'invalid-body'],
        ['fractional quantity', { method: 'POST', url: '/api/orders', headers: json, payload: { user_id: user, items: [{ item_id: item, quantity: 1.5 }] } }, 'invalid-body'],
        ['items not a list', { method: 'POST', url: '/api/orders', headers: json, payload: { user_id: user, items: 'x' } }, 'invalid-body'],
        ['unknown field', { method: 'POST', url: '/api/orders', headers: json, payload: { user_id: user, price: 0 } }, 'invalid-body'],
        ['too expensive', { method: 'POST', url: '/api/orders', headers: json, payload: { user_id: user, items: [{ item_id: item, quantity: Number.MAX_SAFE_INTEGER }, { item_id: item, quantity: 2 }] } }, 'amount-too-large'],
        ['bad order id', { method: 'GET', url: '/api/orders/a%20b' }, 'invalid-id'],
        ['unknown order', { method: 'GET', url: '/api/orders/none' }, 'order-not-found'],
        ['checkout unknown', { method: 'POST', url: '/api/orders/none/checkout' }, 'order-not-found'],
        ['checkout with a body', { method: 'POST', url: `/api/orders/${order.order_id}/checkout`, headers: json, payload: { fast: true } }, 'invalid-body'],
        ['cancel unknown', { method: 'POST', url: '/api/orders/none/cancel', headers: json, payload: {} }, 'order-not-found'],
        ['cancel reason not text', { method: 'POST', url: `/api/orders/${order.order_id}/cancel`, headers: json, payload: { reason: 5 } }, 'invalid-body'],
        ['bad tracking number', { method: 'POST', url: '/api/shipments/xyz/scans', headers: json, payload: { scan: 'delivered' } }, 'invalid-id'],
        ['unknown tracking number', { method: 'POST', url: '/api/shipments/OP00000000000/scans', headers: json, payload: { scan: 'delivered' } }, 'shipment-not-found'],
        ['unknown shipment', { method: 'GET', url: '/api/shipments/OP00000000000' }, 'shipment-not-found'],
        ['bad scan', { method: 'POST', url: '/api/shipments/OP00000000000/scans', headers: json, payload: { scan: 'lost' } }, 'invalid-body'],
        ['bad customer id', { method: 'GET', url: '/api/customers/a%20b/notifications' }, 'invalid-id'],
        ['bad idempotency key', { method: 'POST', url: '/api/orders', headers: { ...json, 'idempotency-key': '' }, payload: { user_id: user } }, 'invalid-header'],
      ];
      for (const [name, request, code] of cases) assert.equal(assertProblem(await t.inject(request), name).code, code, name);
      const after = await audit(t);
      assert.equal(after.orders.count, before.orders.count + 1, 'no order made by bad input');
      assert.equal((await getOrder(t, order.order_id)).status, 'CREATED', 'the order untouched');
      assert.equal(after.fulfillment.shipments, before.fulfillment.shipments);
    });
  });
}
