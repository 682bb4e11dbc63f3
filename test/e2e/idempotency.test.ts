import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertProblem, countDocs, createItem, createOrder, createUser, findItem, findOrder, findUser, ok, startTestSystem,
} from './helpers.ts';

// Retries through HTTP: the Idempotency-Key header, and checkouts repeated or sent at once.

// A checkout waits at most this long for its saga; short, so that a hang shows as a 504 quickly.
const CHECKOUT_WAIT_MS = 5_000;

// Tests are awaited at the top level, one after another, so the system is closed at the end of
// the file (a root `after` hook would run as soon as the first awaited test ended).
const sys = await startTestSystem({ ORDERLY_CHECKOUT_WAIT_MS: String(CHECKOUT_WAIT_MS) });
const { system } = sys;

let keys = 0;
/** A key no other test uses. */
const freshKey = (label: string) => `e2e-${label}-${++keys}-${Date.now()}`;

const post = (url: string, key?: string) =>
  sys.inject({ method: 'POST', url, headers: key === undefined ? {} : { 'idempotency-key': key } });

await test('POST /stock/item/create/5 repeated with one key creates one item', async () => {
  const key = freshKey('item');
  const before = await countDocs(system, 'stock', 'item:');
  const first = ok<{ item_id: string }>(await post('/stock/item/create/5', key));
  const second = ok<{ item_id: string }>(await post('/stock/item/create/5', key));
  assert.equal(second.item_id, first.item_id);
  assert.equal(await countDocs(system, 'stock', 'item:'), before + 1);
  assert.deepEqual(await findItem(sys, first.item_id), { stock: 0, price: 5 });
  const third = ok<{ item_id: string }>(await post('/stock/item/create/5', freshKey('item')));
  assert.notEqual(third.item_id, first.item_id, 'another key creates another item');
});

await test('POST /payment/create_user repeated with one key creates one user', async () => {
  const key = freshKey('user');
  const before = await countDocs(system, 'payment', 'user:');
  const first = ok<{ user_id: string }>(await post('/payment/create_user', key));
  const second = ok<{ user_id: string }>(await post('/payment/create_user', key));
  assert.equal(second.user_id, first.user_id);
  assert.equal(await countDocs(system, 'payment', 'user:'), before + 1);
  assert.equal((await findUser(sys, first.user_id)).credit, 0);
});

await test('POST /orders/create/{user} repeated with one key creates one order', async () => {
  const user = await createUser(sys, 0);
  const key = freshKey('order');
  const before = await countDocs(system, 'orders', 'order:');
  const first = ok<{ order_id: string }>(await post(`/orders/create/${user}`, key));
  const second = ok<{ order_id: string }>(await post(`/orders/create/${user}`, key));
  assert.equal(second.order_id, first.order_id);
  assert.equal(await countDocs(system, 'orders', 'order:'), before + 1);
  const order = await findOrder(sys, first.order_id);
  assert.equal(order.user_id, user);
  assert.equal(order.paid, false);
});

await test('concurrent creates with one key create one user and all answer with it', async () => {
  const key = freshKey('concurrent-user');
  const before = await countDocs(system, 'payment', 'user:');
  const answers = await Promise.all(Array.from({ length: 10 }, () => post('/payment/create_user', key)));
  const ids = new Set(answers.map((res) => ok<{ user_id: string }>(res).user_id));
  assert.equal(ids.size, 1);
  assert.equal(await countDocs(system, 'payment', 'user:'), before + 1);
});

await test('POST /payment/pay repeated with one key charges once', async () => {
  const user = await createUser(sys, 100);
  const key = freshKey('pay');
  const first = await post(`/payment/pay/${user}/10`, key);
  const second = await post(`/payment/pay/${user}/10`, key);
  ok(first);
  ok(second);
  assert.equal(second.body, first.body, 'the repeat answers what the first answered');
  assert.equal((await findUser(sys, user)).credit, 90);
  ok(await post(`/payment/pay/${user}/10`, freshKey('pay')), 'another key');
  assert.equal((await findUser(sys, user)).credit, 80, 'another key charges again');
});

await test('reusing a key on a different kind of request answers 422 idempotency-key-reused and does nothing', async (t) => {
  await t.test('stock: create item, then add stock', async () => {
    const key = freshKey('reuse-stock');
    const { item_id } = ok<{ item_id: string }>(await post('/stock/item/create/5', key));
    const problem = assertProblem(await post(`/stock/add/${item_id}/7`, key));
    assert.equal(problem.status, 422);
    assert.equal(problem.code, 'idempotency-key-reused');
    assert.equal((await findItem(sys, item_id)).stock, 0);
  });

  await t.test('payment: add funds, then pay', async () => {
    const user = await createUser(sys, 0);
    const key = freshKey('reuse-payment');
    ok(await post(`/payment/add_funds/${user}/50`, key));
    const problem = assertProblem(await post(`/payment/pay/${user}/50`, key));
    assert.equal(problem.status, 422);
    assert.equal(problem.code, 'idempotency-key-reused');
    assert.equal((await findUser(sys, user)).credit, 50);
  });

  await t.test('orders: create order, then check it out', async () => {
    const item = await createItem(sys, 5, 10);
    const user = await createUser(sys, 100);
    const key = freshKey('reuse-orders');
    const { order_id } = ok<{ order_id: string }>(await post(`/orders/create/${user}`, key));
    ok(await post(`/orders/addItem/${order_id}/${item}/1`));
    const problem = assertProblem(await post(`/orders/checkout/${order_id}`, key));
    assert.equal(problem.status, 422);
    assert.equal(problem.code, 'idempotency-key-reused');
    assert.equal((await findOrder(sys, order_id)).paid, false);
    assert.equal((await findItem(sys, item)).stock, 10);
    assert.equal((await findUser(sys, user)).credit, 100);
  });

  await t.test('keys are scoped per service: the same key on another service is a new request', async () => {
    const key = freshKey('reuse-across');
    ok(await post('/stock/item/create/5', key));
    const before = await countDocs(system, 'payment', 'user:');
    ok(await post('/payment/create_user', key));
    assert.equal(await countDocs(system, 'payment', 'user:'), before + 1);
  });
});

await test('reusing a key on the same route with other parameters answers 422 and charges nothing more', async () => {
  const user = await createUser(sys, 100);
  const key = freshKey('reuse-params');
  ok(await post(`/payment/pay/${user}/10`, key));
  const problem = assertProblem(await post(`/payment/pay/${user}/30`, key));
  assert.equal(problem.code, 'idempotency-key-reused');
  assert.equal((await findUser(sys, user)).credit, 90);
});

await test('a bad Idempotency-Key header answers 400 invalid-header and does nothing', async (t) => {
  const bad = [
    { label: '201 characters', value: 'k'.repeat(201) },
    { label: '5000 characters', value: 'k'.repeat(5000) },
    { label: 'empty', value: '' },
    { label: 'a space inside', value: 'a b' },
    { label: 'a tab inside', value: 'a\tb' },
  ];
  for (const { label, value } of bad) {
    await t.test(label, async () => {
      const items = await countDocs(system, 'stock', 'item:');
      const users = await countDocs(system, 'payment', 'user:');
      for (const url of ['/stock/item/create/5', '/payment/create_user']) {
        const problem = assertProblem(await post(url, value), `POST ${url} with Idempotency-Key ${label}`);
        assert.equal(problem.status, 400);
        assert.equal(problem.code, 'invalid-header');
        assert.match(problem.detail, /Idempotency-Key/);
      }
      assert.equal(await countDocs(system, 'stock', 'item:'), items);
      assert.equal(await countDocs(system, 'payment', 'user:'), users);

      const user = await createUser(sys, 100);
      assertProblem(await post(`/payment/pay/${user}/10`, value));
      assert.equal((await findUser(sys, user)).credit, 100, 'pay with a bad key charges nothing');

      const item = await createItem(sys, 5, 10);
      const order = await createOrder(sys, user, [[item, 1]]);
      assertProblem(await post(`/orders/checkout/${order}`, value));
      assert.equal((await findOrder(sys, order)).paid, false, 'checkout with a bad key does not start');
      assert.equal((await findItem(sys, item)).stock, 10);
    });
  }

  await t.test('200 characters is still accepted', async () => {
    const key = `${freshKey('long')}-`.padEnd(200, 'k');
    assert.equal(key.length, 200);
    const first = ok<{ item_id: string }>(await post('/stock/item/create/5', key));
    const second = ok<{ item_id: string }>(await post('/stock/item/create/5', key));
    assert.equal(second.item_id, first.item_id);
  });
});

await test("an already-paid order's checkout answers 2xx again and charges nothing", async () => {
  const item = await createItem(sys, 7, 10);
  const user = await createUser(sys, 100);
  const order = await createOrder(sys, user, [[item, 3]]);
  ok(await post(`/orders/checkout/${order}`));
  assert.equal((await findUser(sys, user)).credit, 79);
  assert.equal((await findItem(sys, item)).stock, 7);
  for (let i = 0; i < 3; i++) {
    const again = ok<{ paid?: boolean }>(await post(`/orders/checkout/${order}`), `checkout #${i + 2}`);
    assert.equal(again.paid, true);
  }
  assert.equal((await findUser(sys, user)).credit, 79);
  assert.equal((await findItem(sys, item)).stock, 7);
  assert.equal((await findOrder(sys, order)).paid, true);
});

await test('20 concurrent checkouts of one order all answer 2xx and charge exactly once', async () => {
  const a = await createItem(sys, 3, 10);
  const b = await createItem(sys, 4, 10);
  const user = await createUser(sys, 100);
  const order = await createOrder(sys, user, [[a, 2], [b, 1]]); // costs 2×3 + 4 = 10
  const holds = await countDocs(system, 'payment', 'hold:');
  const answers = await Promise.all(Array.from({ length: 20 }, () => post(`/orders/checkout/${order}`)));
  for (const [i, res] of answers.entries()) ok(res, `checkout #${i + 1}`);
  assert.equal((await findUser(sys, user)).credit, 90);
  assert.equal((await findItem(sys, a)).stock, 8);
  assert.equal((await findItem(sys, b)).stock, 9);
  assert.equal((await findOrder(sys, order)).paid, true);
  assert.equal(await countDocs(system, 'payment', 'hold:'), holds + 1, 'one payment hold: one saga ran');
});

await test('a checkout repeated with its Idempotency-Key after it completed answers 2xx and charges nothing', async () => {
  const item = await createItem(sys, 5, 10);
  const user = await createUser(sys, 100);
  const order = await createOrder(sys, user, [[item, 1]]);
  const key = freshKey('checkout');
  ok(await post(`/orders/checkout/${order}`, key), 'first checkout');
  const again = await post(`/orders/checkout/${order}`, key);
  assert.ok(again.statusCode >= 200 && again.statusCode < 300, `the retry answers 2xx, not ${again.statusCode} ${again.body}`);
  assert.equal((await findUser(sys, user)).credit, 95);
  assert.equal((await findItem(sys, item)).stock, 9);
});

await sys.close();
