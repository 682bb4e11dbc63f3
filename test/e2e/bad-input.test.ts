import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertProblem, countDocs, createItem, createOrder, createUser, findItem, findOrder, findUser, ok,
  startTestSystem, type ItemView, type OrderView, type TestSystem, type UserView,
} from './helpers.ts';

// Every bad input, on every route of the course API, through app.inject(): a 4xx
// application/problem+json that says what is wrong, and nothing changed.

const MAX = Number.MAX_SAFE_INTEGER;
// Tests are awaited at the top level, one after another, so the system is closed at the end of
// the file (a root `after` hook would run as soon as the first awaited test ended).
const sys = await startTestSystem();

// The state every bad request must leave alone.
const base = await (async () => {
  const item = await createItem(sys, 5, 10);
  const user = await createUser(sys, 100);
  const order = await createOrder(sys, user, [[item, 1]]);
  return { item, user, order };
})();

type Snapshot = Readonly<{
  item: ItemView;
  user: UserView;
  order: OrderView;
  counts: Readonly<Record<string, number>>;
}>;

async function snapshot(): Promise<Snapshot> {
  const { system } = sys;
  return {
    item: await findItem(sys, base.item),
    user: await findUser(sys, base.user),
    order: await findOrder(sys, base.order),
    counts: {
      items: await countDocs(system, 'stock', 'item:'),
      reservations: await countDocs(system, 'stock', 'reservation:'),
      users: await countDocs(system, 'payment', 'user:'),
      holds: await countDocs(system, 'payment', 'hold:'),
      orders: await countDocs(system, 'orders', 'order:'),
      stockKeys: await countDocs(system, 'stock', 'idempotency:'),
      paymentKeys: await countDocs(system, 'payment', 'idempotency:'),
      orderKeys: await countDocs(system, 'orders', 'idempotency:'),
    },
  };
}

/** Sends `request`, asserts a problem answer, asserts nothing changed, and returns the problem. */
async function rejected(request: Parameters<TestSystem['inject']>[0], context: string) {
  const before = await snapshot();
  const res = await sys.inject(request);
  const problem = assertProblem(res, context);
  assert.deepEqual(await snapshot(), before, `${context}: nothing changed`);
  return problem;
}

/** A word in a detail, e.g. the parameter name 'n' in "n must be at most 1000000". */
const names = (detail: string, word: string) => new RegExp(`(^|[^A-Za-z0-9_])${word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}($|[^A-Za-z0-9_])`).test(detail);

// ---- The routes, with a valid value for each parameter ------------------------------------

type Kind = 'number' | 'item' | 'user' | 'order';
type Slot = Readonly<{ name: string; kind: Kind; valid: string; min?: number }>;
type Route = Readonly<{ method: 'GET' | 'POST'; prefix: string; slots: readonly Slot[] }>;

const num = (name: string, min = 0): Slot => ({ name, kind: 'number', valid: '1', min });
const itemId: Slot = { name: 'item_id', kind: 'item', valid: base.item };
const userId: Slot = { name: 'user_id', kind: 'user', valid: base.user };
const orderId: Slot = { name: 'order_id', kind: 'order', valid: base.order };

const routes: readonly Route[] = [
  { method: 'POST', prefix: '/stock/item/create', slots: [num('price')] },
  { method: 'GET', prefix: '/stock/find', slots: [itemId] },
  { method: 'POST', prefix: '/stock/add', slots: [itemId, num('amount')] },
  { method: 'POST', prefix: '/stock/subtract', slots: [itemId, num('amount')] },
  { method: 'POST', prefix: '/stock/batch_init', slots: [num('n'), num('starting_stock'), num('item_price')] },
  { method: 'POST', prefix: '/payment/create_user', slots: [] },
  { method: 'GET', prefix: '/payment/find_user', slots: [userId] },
  { method: 'POST', prefix: '/payment/add_funds', slots: [userId, num('amount')] },
  { method: 'POST', prefix: '/payment/pay', slots: [userId, num('amount')] },
  { method: 'POST', prefix: '/payment/batch_init', slots: [num('n'), num('starting_money')] },
  { method: 'POST', prefix: '/orders/create', slots: [userId] },
  { method: 'GET', prefix: '/orders/find', slots: [orderId] },
  { method: 'POST', prefix: '/orders/addItem', slots: [orderId, itemId, num('quantity', 1)] },
  { method: 'POST', prefix: '/orders/checkout', slots: [orderId] },
  { method: 'POST', prefix: '/orders/batch_init', slots: [num('n'), num('n_items'), num('n_users'), num('item_price')] },
];

const routeName = (r: Route) => `${r.method} ${r.prefix}${r.slots.map((s) => `/{${s.name}}`).join('')}`;

/** The URL of `route` with raw segment `value` in place of slot `at` and valid values elsewhere. */
const urlOf = (route: Route, at = -1, value = '') =>
  route.prefix + route.slots.map((s, i) => `/${i === at ? value : s.valid}`).join('');

// ---- Bad values, as raw URL segments --------------------------------------------------------

/** `unroutable`: the router cannot decode the URL, so the answer cannot name the parameter. */
type Case = Readonly<{ label: string; segment: string; todo?: string; unroutable?: boolean }>;

const badNumbers: readonly Case[] = [
  { label: 'letters', segment: 'abc' },
  { label: 'exponent notation', segment: '1e3' },
  { label: 'hexadecimal', segment: '0x10' },
  { label: 'leading space', segment: '%201' },
  { label: 'trailing space', segment: '1%20' },
  { label: 'plus sign', segment: '+1' },
  { label: 'empty', segment: '' },
  { label: 'negative', segment: '-1' },
  { label: 'fractional', segment: '1.5' },
  { label: 'MAX_SAFE_INTEGER + 2', segment: '9007199254740993' },
  { label: 'far above MAX_SAFE_INTEGER', segment: '99999999999999999999999' },
];

const badIds: readonly Case[] = [
  { label: '65 characters', segment: 'x'.repeat(65) },
  { label: '5000 characters', segment: 'x'.repeat(5000) },
  { label: 'encoded space', segment: '%20' },
  { label: 'dot', segment: 'a.b' },
  { label: 'encoded slash', segment: 'a%2Fb' },
  { label: 'quote', segment: encodeURIComponent("a'b") },
  { label: 'unicode letters', segment: encodeURIComponent('ĉaŭ') },
  { label: 'emoji', segment: encodeURIComponent('🛒') },
  { label: 'malformed percent-encoding', segment: '%', unroutable: true },
  { label: 'invalid percent escape', segment: '%zz', unroutable: true },
];

const notFoundCode: Record<Exclude<Kind, 'number'>, string> = {
  item: 'item-not-found',
  user: 'user-not-found',
  order: 'order-not-found',
};

// ---- Per route and parameter: every class of bad value ------------------------------------

for (const route of routes) {
  for (const [at, slot] of route.slots.entries()) {
    await test(`${routeName(route)}: bad ${slot.name}`, async (t) => {
      if (slot.kind === 'number') {
        const cases = slot.min === 1 ? [...badNumbers, { label: 'zero', segment: '0' }] : badNumbers;
        for (const c of cases) {
          await t.test(`${c.label} '${c.segment}'`, { todo: c.todo }, async () => {
            const url = urlOf(route, at, c.segment);
            const problem = await rejected({ method: route.method, url }, `${route.method} ${url}`);
            assert.ok(['invalid-number', 'amount-too-large'].includes(problem.code), `code ${problem.code}`);
            assert.ok(names(problem.detail, slot.name), `detail names ${slot.name}: ${problem.detail}`);
          });
        }
        return;
      }
      for (const c of badIds) {
        await t.test(`${c.label}`, { todo: c.todo }, async () => {
          const url = urlOf(route, at, c.segment);
          const problem = await rejected({ method: route.method, url }, `${route.method} ${url.slice(0, 120)}`);
          assert.equal(problem.status, 400);
          if (c.unroutable) {
            assert.equal(problem.code, 'invalid-url');
            assert.match(problem.detail, /percent-encoding/);
            return;
          }
          assert.equal(problem.code, 'invalid-id');
          assert.ok(names(problem.detail, slot.name), `detail names ${slot.name}: ${problem.detail}`);
        });
      }
      const expected = notFoundCode[slot.kind];
      await t.test('unknown id', async () => {
        const url = urlOf(route, at, 'no-such-id');
        const problem = await rejected({ method: route.method, url }, `${route.method} ${url}`);
        assert.equal(problem.status, 404);
        assert.equal(problem.code, expected);
        assert.ok(problem.detail.includes('no-such-id'), `detail names the id: ${problem.detail}`);
      });
    });
  }
}

// ---- Per route: bodies and methods --------------------------------------------------------

const postRoutes = routes.filter((r) => r.method === 'POST');

await test('malformed JSON bodies answer 400 invalid-body on every POST route', async (t) => {
  for (const route of postRoutes) {
    await t.test(routeName(route), async () => {
      const url = urlOf(route);
      const problem = await rejected(
        { method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: '{bad' },
        `POST ${url} with body '{bad'`,
      );
      assert.equal(problem.code, 'invalid-body');
      assert.equal(problem.status, 400);
    });
  }
});

await test('bodies over 64 KiB answer 413 payload-too-large on every POST route; bodies that are not JSON, 415 whatever their size', async (t) => {
  const big = 'x'.repeat(64 * 1024 + 1);
  // A state change takes JSON or nothing (a web form cannot send JSON without asking): any other
  // type is refused before its size matters.
  const bodies = [
    { type: 'application/json', payload: JSON.stringify({ padding: big }), code: 'payload-too-large', status: 413 },
    { type: 'application/octet-stream', payload: big, code: 'unsupported-media-type', status: 415 },
    { type: 'text/plain', payload: big, code: 'unsupported-media-type', status: 415 },
  ];
  for (const route of postRoutes) {
    for (const body of bodies) {
      await t.test(`${routeName(route)} (${body.type})`, async () => {
        const url = urlOf(route);
        const problem = await rejected(
          { method: 'POST', url, headers: { 'content-type': body.type }, payload: body.payload },
          `POST ${url} with ${body.payload.length} bytes of ${body.type}`,
        );
        assert.equal(problem.code, body.code);
        assert.equal(problem.status, body.status);
      });
    }
  }
});

await test('wrong methods answer 4xx on every route, and do nothing', async (t) => {
  for (const route of routes) {
    const wrong = route.method === 'GET' ? (['POST', 'PUT', 'DELETE', 'PATCH'] as const) : (['GET', 'PUT', 'DELETE', 'PATCH'] as const);
    for (const method of wrong) {
      await t.test(`${method} instead of ${routeName(route)}`, async () => {
        const url = urlOf(route);
        const problem = await rejected({ method, url }, `${method} ${url}`);
        assert.ok(['method-not-allowed', 'route-not-found'].includes(problem.code), `code ${problem.code}`);
        assert.ok(problem.detail.includes(method), `detail names the method: ${problem.detail}`);
      });
    }
  }
});

await test('unknown routes answer 404 route-not-found', async (t) => {
  const unknown = [
    '/nope', '/stock', '/stock/', '/stock/item/create', '/stock/find', `/stock/find/${base.item}/extra`,
    '/stock/add/1', `/payment/create_user/extra`, '/payment/pay', '/orders', '/orders/find',
    `/orders/addItem/${base.order}/${base.item}`, `/orders/checkout/${base.order}/now`, '/orders/batch_init/1/1/1',
    '/STOCK/find/x', '/api/stock/find/x',
  ];
  for (const url of unknown) {
    for (const method of ['GET', 'POST'] as const) {
      await t.test(`${method} ${url}`, async () => {
        const problem = await rejected({ method, url }, `${method} ${url}`);
        assert.equal(problem.code, 'route-not-found');
        assert.equal(problem.status, 404);
        assert.ok(problem.detail.includes(url.replace(/\/$/, '')), `detail names the path: ${problem.detail}`);
      });
    }
  }
});

// ---- Business failures ----------------------------------------------------------------------

await test('subtracting more than the stock answers 409 out-of-stock and changes nothing', async () => {
  const item = await createItem(sys, 3, 10);
  const problem = assertProblem(await sys.inject({ method: 'POST', url: `/stock/subtract/${item}/11` }));
  assert.equal(problem.status, 409);
  assert.equal(problem.code, 'out-of-stock');
  assert.ok(problem.detail.includes(item), problem.detail);
  assert.deepEqual(await findItem(sys, item), { stock: 10, price: 3 });
});

await test('paying more than the credit answers 409 insufficient-credit and changes nothing', async () => {
  const user = await createUser(sys, 50);
  const problem = assertProblem(await sys.inject({ method: 'POST', url: `/payment/pay/${user}/51` }));
  assert.equal(problem.status, 409);
  assert.equal(problem.code, 'insufficient-credit');
  assert.ok(problem.detail.includes(user), problem.detail);
  assert.equal((await findUser(sys, user)).credit, 50);
});

await test('checkout of an order whose user lacks credit answers 4xx and takes no stock and no credit', async () => {
  const a = await createItem(sys, 10, 5);
  const b = await createItem(sys, 7, 5);
  const user = await createUser(sys, 20); // the order costs 2×10 + 1×7 = 27
  const order = await createOrder(sys, user, [[a, 2], [b, 1]]);
  const problem = assertProblem(await sys.inject({ method: 'POST', url: `/orders/checkout/${order}` }));
  assert.ok(problem.detail.includes(order), problem.detail);
  assert.equal((await findItem(sys, a)).stock, 5);
  assert.equal((await findItem(sys, b)).stock, 5);
  assert.equal((await findUser(sys, user)).credit, 20);
  const after = await findOrder(sys, order);
  assert.equal(after.paid, false);
  assert.equal(after.total_cost, 27);
});

await test('checkout of an order with too little stock answers 4xx and takes no stock and no credit', async () => {
  const a = await createItem(sys, 1, 5);
  const b = await createItem(sys, 1, 1);
  const user = await createUser(sys, 100);
  const order = await createOrder(sys, user, [[a, 1], [b, 2]]);
  assertProblem(await sys.inject({ method: 'POST', url: `/orders/checkout/${order}` }));
  assert.equal((await findItem(sys, a)).stock, 5);
  assert.equal((await findItem(sys, b)).stock, 1);
  assert.equal((await findUser(sys, user)).credit, 100);
  assert.equal((await findOrder(sys, order)).paid, false);
});

await test('checkout of an unknown order answers 404 order-not-found', async () => {
  const problem = await rejected({ method: 'POST', url: '/orders/checkout/never-created' }, 'checkout of an unknown order');
  assert.equal(problem.status, 404);
  assert.equal(problem.code, 'order-not-found');
});

await test('adding an item to a paid order answers 409 order-locked and changes nothing', async () => {
  const item = await createItem(sys, 4, 10);
  const user = await createUser(sys, 100);
  const order = await createOrder(sys, user, [[item, 2]]);
  ok(await sys.inject({ method: 'POST', url: `/orders/checkout/${order}` }), 'checkout');
  const paid = await findOrder(sys, order);
  assert.equal(paid.paid, true);
  const problem = assertProblem(await sys.inject({ method: 'POST', url: `/orders/addItem/${order}/${item}/1` }));
  assert.equal(problem.status, 409);
  assert.equal(problem.code, 'order-locked');
  // Its items and cost stay as they were (its shipping may still move on meanwhile).
  const { items, total_cost, paid: stillPaid } = await findOrder(sys, order);
  assert.deepEqual({ items, total_cost, paid: stillPaid }, { items: paid.items, total_cost: paid.total_cost, paid: true });
  assert.equal((await findItem(sys, item)).stock, 8);
  assert.equal((await findUser(sys, user)).credit, 92);
});

await test('add_funds that would take credit above MAX_SAFE_INTEGER answers 4xx and changes nothing', async () => {
  const user = await createUser(sys, MAX - 5);
  const problem = assertProblem(await sys.inject({ method: 'POST', url: `/payment/add_funds/${user}/6` }));
  assert.equal(problem.code, 'amount-too-large');
  assert.equal((await findUser(sys, user)).credit, MAX - 5);
  ok(await sys.inject({ method: 'POST', url: `/payment/add_funds/${user}/5` }), 'up to the limit exactly');
  assert.equal((await findUser(sys, user)).credit, MAX);
});

await test('adding stock that would take it above MAX_SAFE_INTEGER answers 4xx and changes nothing', async () => {
  const item = await createItem(sys, 1, MAX);
  const problem = assertProblem(await sys.inject({ method: 'POST', url: `/stock/add/${item}/1` }));
  assert.equal(problem.code, 'amount-too-large');
  assert.equal((await findItem(sys, item)).stock, MAX);
});

await test('addItem that would take total_cost above MAX_SAFE_INTEGER answers 4xx and changes nothing', async () => {
  const item = await createItem(sys, Math.floor(MAX / 2) + 1, 10);
  const user = await createUser(sys, 0);
  const order = await createOrder(sys, user, [[item, 1]]);
  const before = await findOrder(sys, order);
  const problem = assertProblem(await sys.inject({ method: 'POST', url: `/orders/addItem/${order}/${item}/1` }));
  assert.equal(problem.code, 'amount-too-large');
  assert.deepEqual(await findOrder(sys, order), before);
});

await test('batch_init with out-of-range numbers answers 4xx and creates nothing', async (t) => {
  const cases = [
    { url: '/stock/batch_init/1000001/1/1', name: 'n' },
    { url: '/payment/batch_init/1000001/1', name: 'n' },
    { url: '/orders/batch_init/1000001/1/1/1', name: 'n' },
    { url: '/orders/batch_init/1/0/1/1', name: 'n_items' },
    { url: '/orders/batch_init/1/1/0/1', name: 'n_users' },
    { url: `/orders/batch_init/1/1/1/${Math.floor(MAX / 2) + 1}`, name: 'item_price' },
  ];
  for (const c of cases) {
    await t.test(c.url, async () => {
      const problem = await rejected({ method: 'POST', url: c.url }, `POST ${c.url}`);
      assert.ok(names(problem.detail, c.name), `detail names ${c.name}: ${problem.detail}`);
    });
  }
  for (const url of ['/stock/find/0', '/payment/find_user/0', '/orders/find/0']) {
    assert.equal((await sys.inject({ method: 'GET', url })).statusCode, 404, `${url} was not created`);
  }
});

await test('the saga API answers bad filters and unknown sagas with a 4xx that says what is wrong', async (t) => {
  const cases = [
    { url: '/sagas?status=done', code: 'invalid-query', names: 'status' },
    { url: '/sagas?limit=0', code: 'invalid-number', names: 'limit' },
    { url: '/sagas?limit=1001', code: 'amount-too-large', names: 'limit' },
    { url: '/sagas?from=yesterday', code: 'invalid-query', names: 'from' },
    { url: '/sagas?to=2026-13-45', code: 'invalid-query', names: 'to' },
    { url: `/sagas/${base.order}.not-a-saga`, code: 'saga-not-found', names: 'saga' },
    { url: '/sagas?step=shipIt', code: 'invalid-query', names: 'step' },
    { url: '/sagas?retrying=yes', code: 'invalid-query', names: 'retrying' },
    { url: '/sagas?stuck=1', code: 'invalid-query', names: 'stuck' },
  ];
  for (const c of cases) {
    await t.test(c.url, async () => {
      const problem = assertProblem(await sys.inject({ method: 'GET', url: c.url }), `GET ${c.url}`);
      assert.equal(problem.code, c.code);
      assert.ok(names(problem.detail, c.names), `detail names ${c.names}: ${problem.detail}`);
    });
  }
});

await sys.close();
