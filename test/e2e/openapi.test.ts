import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestSystem } from './helpers.ts';

// OpenAPI 3.1 at /openapi.json and browsable docs at /docs, from the routes' own schemas.

const sys = await startTestSystem();

await test('/openapi.json describes every route of the course, saga, admin and operations APIs', async () => {
  const res = await sys.inject({ method: 'GET', url: '/openapi.json' });
  assert.equal(res.statusCode, 200);
  const doc = res.json<{ openapi: string; paths: Record<string, Record<string, { summary?: string; responses: Record<string, unknown>; security?: unknown[]; parameters?: { name: string; in: string }[] }>> }>();
  assert.equal(doc.openapi, '3.1.0');
  const expected: [string, string][] = [
    ['/stock/item/create/{price}', 'post'], ['/stock/find/{itemId}', 'get'], ['/stock/add/{itemId}/{amount}', 'post'], ['/stock/subtract/{itemId}/{amount}', 'post'],
    ['/stock/batch_init/{n}/{startingStock}/{itemPrice}', 'post'], ['/payment/create_user', 'post'], ['/payment/find_user/{userId}', 'get'],
    ['/payment/add_funds/{userId}/{amount}', 'post'], ['/payment/pay/{userId}/{amount}', 'post'], ['/payment/batch_init/{n}/{startingMoney}', 'post'],
    ['/orders/create/{userId}', 'post'], ['/orders/find/{orderId}', 'get'], ['/orders/addItem/{orderId}/{itemId}/{quantity}', 'post'],
    ['/orders/checkout/{orderId}', 'post'], ['/orders/batch_init/{n}/{nItems}/{nUsers}/{itemPrice}', 'post'],
    ['/sagas/', 'get'], ['/sagas/{sagaId}', 'get'], ['/sagas/statistics', 'get'], ['/sagas/definitions', 'get'],
    ['/admin/audit', 'get'], ['/admin/dead-letters', 'get'], ['/admin/dead-letters/{id}', 'get'], ['/admin/dead-letters/{id}', 'delete'],
    ['/admin/dead-letters/{id}/redrive', 'post'], ['/healthz', 'get'], ['/readyz', 'get'], ['/metrics', 'get'], ['/events', 'get'],
  ];
  for (const [path, method] of expected) {
    const op = doc.paths[path]?.[method];
    assert.ok(op, `${method.toUpperCase()} ${path} is documented (have: ${Object.keys(doc.paths).join(', ')})`);
    assert.ok(op.summary, `${method.toUpperCase()} ${path} has a summary`);
  }
  const checkout = doc.paths['/orders/checkout/{orderId}']?.post;
  assert.ok(checkout?.responses['409'] && checkout.responses['404'] && checkout.responses['504'], 'the checkout documents its failures');
  assert.ok(checkout.parameters?.some((p) => p.in === 'header' && p.name === 'idempotency-key'), 'and its Idempotency-Key');
  // Each route names its access class's security schemes (docs/security.md).
  const operator = [{ adminToken: [] }, { consoleSession: [] }];
  assert.deepEqual(doc.paths['/admin/audit']?.get?.security, operator);
  assert.deepEqual(doc.paths['/admin/dead-letters/{id}/redrive']?.post?.security, operator);
  assert.deepEqual(doc.paths['/sagas/']?.get?.security, operator);
  assert.deepEqual(doc.paths['/stock/item/create/{price}']?.post?.security, [{ apiToken: [] }, {}], 'the shop API: a key, or open while none is set');
  assert.deepEqual(doc.paths['/healthz']?.get?.security, []);
  assert.ok(doc.paths['/admin/dead-letters/{id}']?.get?.responses['404'], 'an unknown dead letter is documented');
  assert.equal(doc.paths['/'], undefined, 'the console is not an API');
});

await test('/docs serves the browsable documentation from this process', async () => {
  const page = await sys.inject({ method: 'GET', url: '/docs/' });
  assert.equal(page.statusCode, 200);
  assert.match(page.body, /swagger-ui/i);
  assert.doesNotMatch(page.body, /https?:\/\/(?!localhost|127\.0\.0\.1)[^"']*\.js/, 'no script from elsewhere');
});

await test('documented answers are sent as they are (the schemas never filter them)', async () => {
  const { user_id: user } = (await sys.inject({ method: 'POST', url: '/payment/create_user' })).json<{ user_id: string }>();
  const { order_id: order } = (await sys.inject({ method: 'POST', url: `/orders/create/${user}` })).json<{ order_id: string }>();
  const found = (await sys.inject({ method: 'GET', url: `/orders/find/${order}` })).json<Record<string, unknown>>();
  assert.deepEqual(Object.keys(found).sort(), ['checkout', 'items', 'order_id', 'paid', 'status', 'total_cost', 'user_id']);
});

await sys.close();
