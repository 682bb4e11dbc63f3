import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourseClient } from '../../src/tools/client.ts';
import { freePort, startOrderly, stop } from '../support/child.ts';
import { startOtlpSink } from '../support/otlpSink.ts';

// `npm start` with OTEL_EXPORTER_OTLP_ENDPOINT set sends its spans over OTLP/HTTP: each
// checkout is one trace over the order, stock and payment services; and a stop flushes them.

test('npm start with OTEL_EXPORTER_OTLP_ENDPOINT: one trace per checkout, each over orders, stock and payment', async () => {
  const sink = await startOtlpSink();
  const dir = mkdtempSync(join(tmpdir(), 'orderly-trace-'));
  const port = await freePort();
  const child = await startOrderly({ ORDERLY_DATA_DIR: dir, OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint }, port);
  const client = new CourseClient(`http://127.0.0.1:${port}`, 4);
  try {
    const { item_id: item } = await client.post<{ item_id: string }>('/stock/item/create/5');
    await client.post(`/stock/add/${item}/10`);
    const { user_id: user } = await client.post<{ user_id: string }>('/payment/create_user');
    await client.post(`/payment/add_funds/${user}/100`);
    const orders: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { order_id: order } = await client.post<{ order_id: string }>(`/orders/create/${user}`);
      await client.post(`/orders/addItem/${order}/${item}/1`);
      orders.push(order);
    }
    const answers = await Promise.all(orders.map((order) => client.call('POST', `/orders/checkout/${order}`)));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200]);
  } finally {
    await client.close();
    // A clean stop sends what is still queued.
    await stop(child, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  for (let i = 0; i < 20 && sink.spans.filter((s) => s.name === 'POST /orders/checkout/:orderId').length < 3; i++) await sleep(100);
  await sink.close();

  const checkouts = sink.spans.filter((s) => s.name === 'POST /orders/checkout/:orderId');
  assert.equal(checkouts.length, 3);
  assert.equal(new Set(checkouts.map((s) => s.traceId)).size, 3, 'one trace per checkout');
  for (const root of checkouts) {
    assert.equal(root.parentSpanId, '', 'the checkout\'s request is its trace\'s root');
    const spans = sink.spans.filter((s) => s.traceId === root.traceId);
    assert.deepEqual(new Set(spans.map((s) => s.service)), new Set(['orderly']));
    const services = new Set(spans.map((s) => s.attributes['orderly.service']));
    for (const service of ['orders', 'stock', 'payment']) assert.ok(services.has(service), `trace ${root.traceId} has spans of ${service}`);
    const sagas = new Set(spans.flatMap((s) => (s.attributes['orderly.saga_id'] ? [s.attributes['orderly.saga_id']] : [])));
    assert.equal(sagas.size, 1, 'one saga per trace');
  }
});
