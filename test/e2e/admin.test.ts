import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertProblem, startTestSystem, startTestGateway } from './helpers.ts';

// Admin routes (/admin/…) need ORDERLY_ADMIN_TOKEN as a bearer token; without a token set, they
// answer on loopback only. The same on a service and on the gateway in front of it.

const TOKEN = 'an-admin-token-of-32-characters!';
// Tests are awaited at the top level, one after another; the systems are closed at the end.
const secured = await startTestSystem({ ORDERLY_ADMIN_TOKEN: TOKEN });
const open = await startTestSystem();
const address = await secured.system.app.listen({ host: '127.0.0.1', port: 0 });
const gateway = await startTestGateway({ orders: [address], stock: [address], payment: [address] }, { ORDERLY_ADMIN_TOKEN: TOKEN });

await test('with a token set, an admin route answers 401 without a token, 403 with another one and 200 with it', async () => {
  const none = assertProblem(await secured.inject({ method: 'GET', url: '/admin/audit' }), 'no token');
  assert.equal(none.status, 401);
  assert.equal(none.code, 'unauthorized');
  const wrong = assertProblem(await secured.inject({ method: 'GET', url: '/admin/audit', headers: { authorization: 'Bearer not-the-token' } }), 'wrong token');
  assert.equal(wrong.status, 403);
  assert.equal(wrong.code, 'forbidden');
  const basic = assertProblem(await secured.inject({ method: 'GET', url: '/admin/audit', headers: { authorization: `Basic ${TOKEN}` } }), 'not a bearer');
  assert.equal(basic.status, 401);
  const right = await secured.inject({ method: 'GET', url: '/admin/audit', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(right.statusCode, 200);
  assert.ok('stock' in right.json<object>());
  // The course API needs no token.
  assert.equal((await secured.inject({ method: 'POST', url: '/payment/create_user' })).statusCode, 200);
});

await test('without a token set, admin routes answer on loopback only', async () => {
  const remote = assertProblem(await open.inject({ method: 'GET', url: '/admin/audit', remoteAddress: '192.0.2.7' }), 'from another machine');
  assert.equal(remote.status, 403);
  assert.match(remote.detail, /ORDERLY_ADMIN_TOKEN/);
  for (const remoteAddress of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
    assert.equal((await open.inject({ method: 'GET', url: '/admin/audit', remoteAddress })).statusCode, 200, remoteAddress);
  }
});

await test('the gateway asks for the token too, and passes it on to every service it asks', async () => {
  const none = await fetch(`${gateway.address}/admin/audit`);
  assert.equal(none.status, 401);
  assert.match(String(none.headers.get('content-type')), /^application\/problem\+json/);
  const wrong = await fetch(`${gateway.address}/admin/audit`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 403);
  const right = await fetch(`${gateway.address}/admin/audit`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(right.status, 200);
  assert.ok('payment' in ((await right.json()) as object));
  // The dead letters too: merged over the services, one asked after the other for an id.
  assert.equal((await fetch(`${gateway.address}/admin/dead-letters`)).status, 401);
  assert.equal((await fetch(`${gateway.address}/admin/dead-letters/stock:x`, { method: 'DELETE' })).status, 401);
  const listed = await fetch(`${gateway.address}/admin/dead-letters?limit=10`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.deepEqual(await listed.json(), { total: 0, groups: [], dead_letters: [], next: null });
  const badQuery = await fetch(`${gateway.address}/admin/dead-letters?limit=zero`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(badQuery.status, 400);
  const unknown = await fetch(`${gateway.address}/admin/dead-letters/stock:unknown/redrive`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(unknown.status, 404);
  assert.equal(((await unknown.json()) as { code: string }).code, 'dead-letter-not-found');
});

await gateway.close();
await secured.close();
await open.close();
