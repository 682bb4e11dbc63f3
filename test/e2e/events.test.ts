import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createItem, createOrder, createUser, startTestSystem, startTestGateway } from './helpers.ts';

// GET /events: the messages committed, live, as server-sent events; on a process and merged
// by the gateway.

type Event = Readonly<{ service: string; type: string; saga_id: string; correlation_id: string; payload: unknown }>;

/** Reads server-sent events from `url` until `done` says enough (or 20 s pass); returns them. */
async function collect(url: string, started: () => Promise<void>, done: (events: Event[]) => boolean): Promise<Event[]> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), 20_000);
  const events: Event[] = [];
  try {
    const res = await fetch(url, { signal: stop.signal });
    assert.equal(res.status, 200);
    assert.match(String(res.headers.get('content-type')), /^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let pending = '';
    const first = await reader.read(); // the opening comment: the stream is listening
    pending += first.value ?? '';
    await started();
    while (!done(events)) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      pending += value;
      const blocks = pending.split('\n\n');
      pending = blocks.pop() ?? '';
      for (const block of blocks) {
        const data = block.split('\n').find((line) => line.startsWith('data: '));
        if (data) events.push(JSON.parse(data.slice(6)) as Event);
      }
    }
  } catch (error) {
    if (!stop.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
  return events;
}

const sys = await startTestSystem();
const address = await sys.system.app.listen({ host: '127.0.0.1', port: 0 });
const gateway = await startTestGateway({ orders: [address], stock: [address], payment: [address] });
const item = await createItem(sys, 2, 100);
const user = await createUser(sys, 1000);

for (const [name, base] of [['the embedded server', address], ['the gateway', gateway.address]] as const) {
  await test(`${name} streams a checkout's messages as they commit, filtered by order`, async () => {
    const order = await createOrder(sys, user, [[item, 1]]);
    const other = await createOrder(sys, user, [[item, 1]]);
    const events = await collect(`${base}/events?correlation_id=${order}`, async () => {
      for (const id of [other, order]) assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${id}` })).statusCode, 200);
    }, (seen) => seen.some((e) => e.type === 'CheckoutCompleted'));
    const types = events.map((e) => e.type);
    for (const type of ['ReserveStock', 'AuthorizePayment', 'StockReserved', 'PaymentAuthorized', 'CapturePayment', 'CommitStock', 'CheckoutCompleted']) {
      assert.ok(types.includes(type), `${type} is in the stream: ${types.join(', ')}`);
    }
    assert.ok(events.every((e) => e.correlation_id === order), 'only the order asked for');
    assert.ok(events.some((e) => e.service === 'stock') && events.some((e) => e.service === 'payment') && events.some((e) => e.service === 'orders'));
  });
}

await gateway.close();
await sys.close();
