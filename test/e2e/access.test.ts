import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { startServiceProcess } from '../../src/processes/replica.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { cleanBroker, randomName, SHARED } from '../support/cluster.ts';
import { startTestGateway, startTestSystem } from './helpers.ts';

// Who may call what (src/http/access.ts, docs/security.md): every route class with no token, a
// wrong one and the right one; URL spellings that decode to a guarded route (the old guard
// tested the raw prefix: /%61dmin/audit answered without the token); on the embedded server, on
// one replica's own port and through the gateway. Then the rules while no token is set: this
// machine only, checked on the peer, the proxy's client, Host and Origin.

const ADMIN = 'an-admin-token-of-32-characters!';
const KEY = 'a-shop-api-key-of-the-backend-1';
const OTHER_KEY = 'another-shop-backend-api-key-2';
const INTERNAL = 'an-internal-token-for-saga-calls';
const secured = {
  ORDERLY_ADMIN_TOKEN: ADMIN, ORDERLY_API_TOKEN: `${KEY},${OTHER_KEY}`, ORDERLY_INTERNAL_TOKEN: INTERNAL,
  ORDERLY_FIXTURES: 'on', SAGA_STYLE: 'synchronous',
};

type Answer = Readonly<{ status: number; code: string | undefined; body: string; headers: Headers }>;

async function call(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  const res = await fetch(`${base}${path}`, {
    method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, ...(body === undefined ? {} : { body }),
  });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { code?: string }).code;
  } catch {
    code = undefined;
  }
  return { status: res.status, code, body: text, headers: res.headers };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

// The embedded server, one stock replica on its own port (Redis store, synchronous style: it
// answers saga calls) and a gateway in front of the embedded server.
const embedded = await startTestSystem(secured);
const embeddedUrl = await embedded.system.app.listen({ host: '127.0.0.1', port: 0 });
const namespace = randomName('access');
const dir = mkdtempSync(join(tmpdir(), 'orderly-access-'));
const replica = await startServiceProcess(
  { service: 'stock', storeUrl: SHARED.redis, busUrl: undefined, gatewayUrl: 'http://127.0.0.1:9', namespace, replica: 'stock-1' },
  loadConfig({ ...secured, PORT: '0', ORDERLY_DATA_DIR: dir, LOG_LEVEL: 'silent' }),
  createLogger('silent'),
);
const gateway = await startTestGateway({ orders: [embeddedUrl], stock: [embeddedUrl], payment: [embeddedUrl], fulfillment: [embeddedUrl], notification: [embeddedUrl], tracker: [embeddedUrl] }, secured);

type Case = Readonly<{ access: string; method: string; path: string; body?: string; right: Record<string, string>; wrong: Record<string, string>; ok: number }>;

/** One route of each class, with the credential that opens it and one that does not. */
const cases = (service: 'all' | 'stock'): Case[] => [
  { access: 'shop', method: 'POST', path: '/stock/item/create/5', right: bearer(KEY), wrong: bearer('not-a-key-of-this-shop'), ok: 200 },
  { access: 'shop', method: 'GET', path: '/stock/find/nothing-such', right: bearer(OTHER_KEY), wrong: bearer(INTERNAL), ok: 404 },
  { access: 'fixture', method: 'POST', path: '/stock/batch_init/2/5/1', right: bearer(KEY), wrong: bearer('not-a-key-of-this-shop'), ok: 200 },
  { access: 'operator', method: 'GET', path: '/admin/audit', right: bearer(ADMIN), wrong: bearer(KEY), ok: 200 },
  { access: 'operator', method: 'GET', path: '/metrics', right: bearer(ADMIN), wrong: bearer(KEY), ok: 200 },
  { access: 'operator', method: 'GET', path: '/admin/dead-letters', right: bearer(ADMIN), wrong: bearer(KEY), ok: 200 },
  { access: 'operator', method: 'POST', path: '/admin/dead-letters/stock:x/redrive', right: bearer(ADMIN), wrong: bearer(KEY), ok: 404 },
  ...(service === 'all' ? [
    { access: 'operator', method: 'GET', path: '/sagas', right: bearer(ADMIN), wrong: bearer(KEY), ok: 200 },
    { access: 'shop', method: 'GET', path: '/api/customers/u1/notifications', right: bearer(KEY), wrong: bearer('not-a-key-of-this-shop'), ok: 200 },
  ] : []),
  { access: 'internal', method: 'POST', path: '/stock/_saga', body: '[]', right: { 'x-orderly-token': INTERNAL }, wrong: { 'x-orderly-token': ADMIN }, ok: 200 },
];

/** Spellings of a path that the router decodes to the same route. */
function spellings(path: string): string[] {
  const first = path.indexOf('/', 1);
  const head = first < 0 ? path : path.slice(0, first);
  const rest = first < 0 ? '' : path.slice(first);
  const encoded = (at: number) => `${head.slice(0, at)}%${head.charCodeAt(at).toString(16).toUpperCase()}${head.slice(at + 1)}${rest}`;
  return [path, encoded(1), encoded(head.length - 1)];
}

const targets = [
  ['the embedded server', embeddedUrl, 'all'],
  ['a replica\'s own port', replica.address, 'stock'],
  ['the gateway', gateway.address, 'all'],
] as const;

for (const [where, base, service] of targets) {
  await test(`${where}: each route class answers 401 without a credential, 403 with a wrong one, and its answer with the right one, however the path is spelt`, async () => {
    for (const c of cases(service)) {
      // The internal class goes through the gateway to the service (it checks the token itself).
      for (const path of spellings(c.path)) {
        const label = `${c.access} ${c.method} ${path} on ${where}`;
        const none = await call(base, c.method, path, {}, c.body);
        if (c.access === 'internal') {
          assert.equal(none.status, 403, `${label}, no token: ${none.body}`);
        } else {
          assert.equal(none.status, 401, `${label}, no token: ${none.body}`);
          assert.match(String(none.headers.get('www-authenticate')), /^Bearer/, `${label}: WWW-Authenticate`);
        }
        const wrong = await call(base, c.method, path, c.wrong, c.body);
        assert.equal(wrong.status, 403, `${label}, wrong token: ${wrong.body}`);
        const right = await call(base, c.method, path, c.right, c.body);
        assert.equal(right.status, c.ok, `${label}, right token: ${right.body}`);
      }
    }
  });

  await test(`${where}: a double slash or a dot segment never gets past the check`, async () => {
    for (const path of ['//admin/audit', '/admin//audit', '/./admin/audit', '/x/../admin/audit', '/%2Fadmin/audit', '/admin%2Faudit', '/ADMIN/audit']) {
      const none = await call(base, 'GET', path);
      assert.ok(none.status === 401 || none.status === 404 || none.status === 400, `GET ${path} without a token on ${where}: ${none.status} ${none.body.slice(0, 200)}`);
      assert.doesNotMatch(none.body, /"stock"\s*:/, `no totals for ${path}`);
    }
  });

  await test(`${where}: the open routes need nothing`, async () => {
    assert.equal((await call(base, 'GET', '/healthz')).status, 200);
    if (service === 'all') assert.equal((await call(base, 'GET', '/console/session')).status, 200);
  });
}

await test('an API key does not open the operator routes, and the admin token opens the shop API', async () => {
  assert.equal((await call(embeddedUrl, 'GET', '/sagas', bearer(KEY))).status, 403);
  assert.equal((await call(embeddedUrl, 'POST', '/payment/create_user', bearer(ADMIN))).status, 200);
});

await test('an Idempotency-Key belongs to its caller: another API key\'s same key is another request', async () => {
  const headers = { ...bearer(KEY), 'idempotency-key': 'shared-key-1' };
  const first = JSON.parse((await call(embeddedUrl, 'POST', '/payment/create_user', headers)).body) as { user_id: string };
  const again = JSON.parse((await call(embeddedUrl, 'POST', '/payment/create_user', headers)).body) as { user_id: string };
  assert.equal(again.user_id, first.user_id, 'the same caller gets its own answer again');
  const other = JSON.parse((await call(embeddedUrl, 'POST', '/payment/create_user', { ...bearer(OTHER_KEY), 'idempotency-key': 'shared-key-1' })).body) as { user_id: string };
  assert.notEqual(other.user_id, first.user_id, 'another caller does not get the first caller\'s user');
});

await test('an Idempotency-Key reused on the same route with another body answers 422', async () => {
  const user = (JSON.parse((await call(embeddedUrl, 'POST', '/payment/create_user', bearer(KEY))).body) as { user_id: string }).user_id;
  const item = (JSON.parse((await call(embeddedUrl, 'POST', '/stock/item/create/3', bearer(KEY))).body) as { item_id: string }).item_id;
  const headers = { ...bearer(KEY), 'idempotency-key': 'order-body-1' };
  const body = (quantity: number) => JSON.stringify({ user_id: user, items: [{ item_id: item, quantity }] });
  const created = await call(embeddedUrl, 'POST', '/api/orders', headers, body(1));
  assert.equal(created.status, 201, created.body);
  assert.equal((await call(embeddedUrl, 'POST', '/api/orders', headers, body(1))).status, 201, 'the same request again: the same answer');
  const changed = await call(embeddedUrl, 'POST', '/api/orders', headers, body(2));
  assert.equal(changed.status, 422, changed.body);
  assert.equal(changed.code, 'idempotency-key-reused');
  assert.match(changed.body, /another body/);
});

await test('batch_init answers how many it replaced (test/unit: and replaces nothing a checkout holds)', async () => {
  const first = await call(embeddedUrl, 'POST', '/payment/batch_init/3/100', bearer(KEY));
  assert.equal(first.status, 200, first.body);
  const again = await call(embeddedUrl, 'POST', '/payment/batch_init/3/100', bearer(KEY));
  assert.equal(again.status, 200, again.body);
  assert.match(again.body, /"replaced":3/);
});

await test('with fixtures off, batch_init answers 403 fixtures-off and creates nothing', async () => {
  const off = await startTestSystem({ ORDERLY_FIXTURES: 'off' });
  try {
    const res = await off.inject({ method: 'POST', url: '/stock/batch_init/5/1/1' });
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(res.json<{ code: string }>().code, 'fixtures-off');
    assert.match(res.json<{ detail: string }>().detail, /ORDERLY_FIXTURES=on/);
    assert.equal((await off.inject({ method: 'GET', url: '/stock/find/0' })).statusCode, 404);
  } finally {
    await off.close();
  }
});

await test('a console session: signing in with the admin token sets an HttpOnly cookie that opens the operator routes; signing out ends it', async () => {
  assert.equal((await call(embeddedUrl, 'POST', '/console/session', {}, JSON.stringify({ token: 'wrong-token-wrong-token' }))).status, 403);
  const signedIn = await call(embeddedUrl, 'POST', '/console/session', {}, JSON.stringify({ token: ADMIN }));
  assert.equal(signedIn.status, 200, signedIn.body);
  const cookie = String(signedIn.headers.get('set-cookie'));
  assert.match(cookie, /^orderly_session=[0-9]+\.[A-Za-z0-9_-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
  const session = cookie.split(';')[0]!;
  assert.equal((await call(embeddedUrl, 'GET', '/sagas', { cookie: session })).status, 200);
  assert.equal((await call(gateway.address, 'GET', '/sagas', { cookie: session })).status, 200, 'through the gateway too');
  const forged = session.replace(/\.[A-Za-z0-9_-]+$/, `.${'A'.repeat(43)}`);
  assert.equal((await call(embeddedUrl, 'GET', '/sagas', { cookie: forged })).status, 401);
  const expired = `orderly_session=${Date.now() - 1000}.${session.split('.')[1]}`;
  assert.equal((await call(embeddedUrl, 'GET', '/sagas', { cookie: expired })).status, 401);
  // The token never shows in a URL: the sign-in takes it in a JSON body only.
  assert.equal((await call(embeddedUrl, 'POST', `/console/session?token=${ADMIN}`)).status, 400);
  const out = await call(embeddedUrl, 'DELETE', '/console/session', { cookie: session });
  assert.match(String(out.headers.get('set-cookie')), /Max-Age=0/);
});

await test('a state change from a web page is refused: a form\'s body, another site\'s Origin or Sec-Fetch-Site', async () => {
  for (const type of ['application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x']) {
    const res = await call(embeddedUrl, 'POST', '/payment/create_user', { ...bearer(KEY), 'content-type': type }, 'a=1');
    assert.equal(res.status, 415, `${type}: ${res.body}`);
    assert.equal(res.code, 'unsupported-media-type');
  }
  const origin = await call(embeddedUrl, 'POST', '/payment/create_user', { ...bearer(KEY), origin: 'https://evil.example' });
  assert.equal(origin.status, 403);
  assert.equal(origin.code, 'cross-site-request');
  const site = await call(embeddedUrl, 'POST', '/payment/create_user', { ...bearer(KEY), 'sec-fetch-site': 'cross-site' });
  assert.equal(site.status, 403);
  const signIn = await call(embeddedUrl, 'POST', '/console/session', { origin: 'https://evil.example' }, JSON.stringify({ token: ADMIN }));
  assert.equal(signIn.status, 403, 'the sign-in too');
  const same = await call(embeddedUrl, 'POST', '/payment/create_user', { ...bearer(KEY), origin: embeddedUrl });
  assert.equal(same.status, 200, `its own page may: ${same.body}`);
});

await replica.close();
await gateway.close();
await embedded.close();
await cleanBroker(SHARED.redis, namespace);
rmSync(dir, { recursive: true, force: true });

// Without any token: the shop API is open, operator routes answer this machine only.
const open = await startTestSystem();
const openUrl = await open.system.app.listen({ host: '127.0.0.1', port: 0 });
const port = new URL(openUrl).port;

await test('without an admin token, operator routes answer only what comes from this machine', async () => {
  assert.equal((await call(openUrl, 'GET', '/admin/audit')).status, 200);
  const remote = await open.inject({ method: 'GET', url: '/admin/audit', remoteAddress: '192.0.2.7' });
  assert.equal(remote.statusCode, 403);
  assert.match(remote.body, /ORDERLY_ADMIN_TOKEN/);
  // A proxy on this machine forwarding a remote client.
  const proxied: Record<string, string>[] = [{ 'x-forwarded-for': '203.0.113.9' }, { 'x-forwarded-for': '127.0.0.1, 203.0.113.9' }, { forwarded: 'for=203.0.113.9;proto=https' }, { forwarded: 'for="[2001:db8::1]:4711"' }];
  for (const headers of proxied) {
    const res = await call(openUrl, 'GET', '/admin/audit', headers);
    assert.equal(res.status, 403, `${JSON.stringify(headers)}: ${res.body}`);
    assert.match(res.body, /a proxy forwards it/);
  }
  const page = await call(openUrl, 'GET', '/sagas', { origin: 'http://evil.example' });
  assert.equal(page.status, 403, 'another site\'s page, even on this machine');
  assert.equal((await call(openUrl, 'GET', '/sagas', { origin: `http://localhost:${port}` })).status, 200, 'its own page');
  // The shop API stays open.
  assert.equal((await call(openUrl, 'POST', '/payment/create_user')).status, 200);
});

await test('a Host the server does not answer to gets 421 (DNS rebinding): on the shop API as on operator routes', async () => {
  for (const path of ['/payment/create_user', '/admin/audit']) {
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1.nip.io:${port}`]) {
      const method = path.startsWith('/admin') ? 'GET' : 'POST';
      const res = await open.inject({ method, url: path, headers: { host } });
      assert.equal(res.statusCode, 421, `${method} ${path} Host: ${host}: ${res.body}`);
      assert.equal(res.json<{ code: string }>().code, 'host-not-allowed');
    }
    const forwarded = await open.inject({ method: 'GET', url: '/admin/audit', headers: { host: `localhost:${port}`, 'x-forwarded-host': 'evil.example' } });
    assert.equal(forwarded.statusCode, 421, 'a proxy\'s X-Forwarded-Host too');
  }
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `app.localhost:${port}`]) {
    assert.equal((await open.inject({ method: 'GET', url: '/admin/audit', headers: { host } })).statusCode, 200, host);
  }
  assert.equal((await open.inject({ method: 'GET', url: '/healthz', headers: { host: 'evil.example' } })).statusCode, 200, 'health answers any host (probes)');
});

await test('ORDERLY_ALLOWED_HOSTS names the hosts a deployment answers to', async () => {
  const named = await startTestSystem({ ORDERLY_ALLOWED_HOSTS: 'shop.example,*.internal.example' });
  try {
    assert.equal((await named.inject({ method: 'POST', url: '/payment/create_user', headers: { host: 'shop.example' } })).statusCode, 200);
    assert.equal((await named.inject({ method: 'POST', url: '/payment/create_user', headers: { host: 'a.internal.example:8080' } })).statusCode, 200);
    const res = await named.inject({ method: 'POST', url: '/payment/create_user', headers: { host: 'localhost' } });
    assert.equal(res.statusCode, 421);
    assert.match(res.body, /shop\.example, \*\.internal\.example/);
  } finally {
    await named.close();
  }
});

await test('the console and the API docs send security headers', async () => {
  for (const path of ['/', '/console/console.js', '/docs/', '/sagas', '/payment/find_user/x']) {
    const res = await fetch(`${openUrl}${path}`);
    await res.arrayBuffer();
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${path}: nosniff`);
    assert.equal(res.headers.get('x-frame-options'), 'DENY', `${path}: frames`);
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer', `${path}: referrer`);
    if (path === '/' || path === '/docs/') assert.match(String(res.headers.get('content-security-policy')), /default-src 'self'/, `${path}: CSP`);
  }
});

await open.close();
