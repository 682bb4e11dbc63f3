import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createItem, createOrder, createUser, startTestSystem } from './helpers.ts';

// GET /metrics in Prometheus' text format, after one checkout that succeeds and one that fails.

/** The value of one sample, by its name and labels as they appear in the text (in any order). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return undefined;
}

const sys = await startTestSystem();
const item = await createItem(sys, 2, 10);
const rich = await createUser(sys, 100);
const poor = await createUser(sys, 1);
assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${await createOrder(sys, rich, [[item, 3]])}` })).statusCode, 200);
assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${await createOrder(sys, poor, [[item, 1]])}` })).statusCode, 409);
const res = await sys.inject({ method: 'GET', url: '/metrics' });
const text = res.body;

await test('the answer is Prometheus text', () => {
  assert.equal(res.statusCode, 200);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  assert.match(text, /^# HELP orderly_saga_started_total /m);
  assert.match(text, /^# TYPE orderly_saga_duration_seconds histogram$/m);
});

await test('sagas: started, completed, failed, compensated, with durations and step latencies', () => {
  const saga = { saga: 'checkout' };
  assert.equal(sample(text, 'orderly_saga_started_total', saga), 2);
  assert.equal(sample(text, 'orderly_saga_completed_total', saga), 1);
  assert.equal(sample(text, 'orderly_saga_failed_total', saga), 1);
  assert.equal(sample(text, 'orderly_saga_compensation_triggered_total', saga), 1);
  assert.equal(sample(text, 'orderly_saga_duration_seconds_count', { ...saga, outcome: 'completed' }), 1);
  assert.equal(sample(text, 'orderly_saga_duration_seconds_count', { ...saga, outcome: 'failed' }), 1);
  assert.equal(sample(text, 'orderly_saga_step_duration_seconds_count', { ...saga, step: 'capturePayment', outcome: 'succeeded' }), 1);
  assert.equal(sample(text, 'orderly_saga_step_duration_seconds_count', { ...saga, step: 'authorizePayment', outcome: 'failed' }), 1);
  assert.equal(sample(text, 'orderly_saga_step_duration_seconds_count', { ...saga, step: 'reserveStock', outcome: 'compensated' }), 1);
});

await test('messages, store transactions and the outbox', async () => {
  assert.ok((sample(text, 'orderly_messages_consumed_total', { service: 'stock', type: 'ReserveStock' }) ?? 0) >= 2, 'stock consumed both reservations');
  assert.ok((sample(text, 'orderly_messages_consumed_total', { service: 'orders', type: 'PaymentDeclined' }) ?? 0) >= 1);
  assert.ok((sample(text, 'orderly_messages_published_total', { service: 'orders', type: 'AuthorizePayment' }) ?? 0) >= 2);
  assert.ok((sample(text, 'orderly_store_transaction_seconds_count', { service: 'orders' }) ?? 0) > 0);
  assert.notEqual(sample(text, 'orderly_outbox_messages', { service: 'orders', state: 'due' }), undefined);
  // The relay drops what the bus took from the outbox shortly after the commit: the gauge follows.
  let due: number | undefined;
  for (let i = 0; i < 50 && due !== 0; i++) {
    due = sample((await sys.inject({ method: 'GET', url: '/metrics' })).body, 'orderly_outbox_messages', { service: 'orders', state: 'due' });
    if (due !== 0) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(due, 0, 'nothing left unsent once the relay is done');
  assert.notEqual(sample(text, 'orderly_outbox_oldest_age_seconds', { service: 'payment' }), undefined);
});

await test('HTTP requests by route pattern and status, and the process itself', () => {
  assert.equal(sample(text, 'orderly_http_requests_total', { method: 'POST', route: '/orders/checkout/:orderId', status: '200' }), 1);
  assert.equal(sample(text, 'orderly_http_requests_total', { method: 'POST', route: '/orders/checkout/:orderId', status: '409' }), 1);
  assert.ok((sample(text, 'process_cpu_user_seconds_total') ?? 0) > 0);
  assert.ok((sample(text, 'nodejs_heap_size_used_bytes') ?? 0) > 0);
});

await sys.close();
