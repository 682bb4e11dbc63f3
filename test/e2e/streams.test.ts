import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createItem, createOrder, createUser, startTestGateway, startTestSystem } from './helpers.ts';

// What one client can hold or send cannot stop a process: /events streams are capped per
// process (503 + Retry-After beyond), the gateway holds one upstream stream per replica however
// many clients listen, and an over-limit body gets its 413 on every client, Node's fetch included.

/** Opens an event stream; resolves once its headers (and the opening comment) arrived. */
async function openStream(url: string): Promise<{ status: number; retryAfter: string | null; close(): void }> {
  const stop = new AbortController();
  const res = await fetch(url, { signal: stop.signal });
  if (res.status === 200) await res.body!.getReader().read();
  else await res.arrayBuffer();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), close: () => stop.abort() };
}

const sys = await startTestSystem({ ORDERLY_MAX_EVENT_STREAMS: '5' });
const base = await sys.system.app.listen({ host: '127.0.0.1', port: 0 });
const everything = { orders: [base], stock: [base], payment: [base], fulfillment: [base], notification: [base], tracker: [base] };
const gateway = await startTestGateway(everything, { ORDERLY_MAX_EVENT_STREAMS: '300' });

await test('a process serves at most ORDERLY_MAX_EVENT_STREAMS streams: the next gets 503 with Retry-After, a closed one frees its place', async () => {
  const streams = await Promise.all(Array.from({ length: 5 }, () => openStream(`${base}/events`)));
  assert.deepEqual(streams.map((s) => s.status), [200, 200, 200, 200, 200]);
  const refused = await fetch(`${base}/events`);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('retry-after'), '10');
  assert.equal(((await refused.json()) as { code: string }).code, 'too-many-streams');
  streams[0]!.close();
  // The server sees the close when the socket does.
  let again = await openStream(`${base}/events`);
  for (let i = 0; again.status !== 200 && i < 50; i++) {
    await new Promise((r) => setTimeout(r, 20));
    again = await openStream(`${base}/events`);
  }
  assert.equal(again.status, 200, 'a place again once one closed');
  for (const s of [...streams, again]) s.close();
});

await test('250 streams through the gateway take one upstream stream: checkouts and /readyz still answer', async () => {
  // The service allows 5 streams; the gateway's 250 clients share the one it holds.
  let streams: Awaited<ReturnType<typeof openStream>>[] = [];
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 50)); // the streams of the test before close
    streams = await Promise.all(Array.from({ length: 250 }, () => openStream(`${gateway.address}/events`)));
    if (streams.every((s) => s.status === 200)) break;
    for (const s of streams) s.close();
  }
  assert.deepEqual(new Set(streams.map((s) => s.status)), new Set([200]));
  const item = await createItem(sys, 2, 10);
  const user = await createUser(sys, 100);
  const order = await createOrder(sys, user, [[item, 1]]);
  const checkout = await fetch(`${gateway.address}/orders/checkout/${order}`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  assert.equal(checkout.status, 200, await checkout.text());
  const ready = await fetch(`${gateway.address}/readyz`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(ready.status, 200, await ready.text());
  const more = await Promise.all(Array.from({ length: 60 }, () => openStream(`${gateway.address}/events`)));
  assert.ok(more.filter((s) => s.status === 503).length === 10 && more.filter((s) => s.status === 503).every((s) => s.retryAfter === '10'), 'the gateway\'s own cap: 300');
  for (const s of [...streams, ...more]) s.close();
});

await test('the gateway\'s /readyz answers 503 when it cannot reach a service', async () => {
  const lonely = await startTestGateway({ ...everything, stock: ['http://127.0.0.1:9'] });
  try {
    const res = await fetch(`${lonely.address}/readyz`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 503);
    assert.match(await res.text(), /stock/);
  } finally {
    await lonely.close();
  }
});

for (const [where, url] of [['the embedded server', () => base], ['the gateway', () => gateway.address]] as const) {
  await test(`${where}: 50 bodies of 2 MB posted with Node's fetch each get 413, none a reset`, async () => {
    const body = Buffer.alloc(2 * 1024 * 1024, 'x');
    const answers: string[] = [];
    for (let i = 0; i < 50; i++) {
      try {
        const res = await fetch(`${url()}/stock/item/create/5`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await res.arrayBuffer();
        answers.push(String(res.status));
      } catch (error) {
        answers.push(String((error as { cause?: { code?: string } }).cause?.code ?? error));
      }
    }
    assert.deepEqual(answers.filter((a) => a !== '413'), [], `every answer a 413: ${answers.join(' ')}`);
  });
}

await gateway.close();
await sys.close();
