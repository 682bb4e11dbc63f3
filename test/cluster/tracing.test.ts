import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourseClient } from '../../src/tools/client.ts';
import { cleanBroker, freshDatabase, randomName, SHARED, startCluster } from '../support/cluster.ts';
import { startOtlpSink, type SinkSpan } from '../support/otlpSink.ts';

// Tracing across processes: a cluster (orchestration, PostgreSQL + RabbitMQ, one replica per
// service) exporting over OTLP/HTTP to a collector run by this test. One checkout through the
// gateway is one trace, continuing the caller's traceparent, with spans from the gateway, the
// order, stock and payment processes, their store transactions and the broker hand-offs.

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

test('one checkout through the gateway is one trace over the gateway and the five services (PostgreSQL + RabbitMQ)', async () => {
  const sink = await startOtlpSink();
  const database = await freshDatabase(SHARED.postgres);
  const namespace = randomName('ct');
  const cluster = await startCluster({ storeUrl: database.url, busUrl: SHARED.rabbitmq, replicas: 1, namespace, env: { OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint } });
  const client = new CourseClient(cluster.url, 4);
  try {
    const { item_id: item } = await client.post<{ item_id: string }>('/stock/item/create/5');
    await client.post(`/stock/add/${item}/10`);
    const { user_id: user } = await client.post<{ user_id: string }>('/payment/create_user');
    await client.post(`/payment/add_funds/${user}/100`);
    const { order_id: order } = await client.post<{ order_id: string }>(`/orders/create/${user}`);
    await client.post(`/orders/addItem/${order}/${item}/2`);

    const res = await fetch(`${cluster.url}/orders/checkout/${order}`, { method: 'POST', headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`, 'x-request-id': 'checkout-42' } });
    assert.equal(res.status, 200, await res.text());
    assert.equal(res.headers.get('x-request-id'), 'checkout-42', 'the request id is echoed through the gateway');

    // The lifecycle goes on after the answer: the shipment and the customer's messages are in the same trace.
    const expected = ['orderly-gateway', 'orderly-orders', 'orderly-stock', 'orderly-payment', 'orderly-fulfillment', 'orderly-notification'];
    const inTrace = () => sink.spans.filter((s) => s.traceId === CALLER_TRACE);
    const names = (service: string) => inTrace().filter((s) => s.service === service).map((s) => s.name);
    // Spans leave each process in batches, every second.
    for (let i = 0; i < 100 && !(expected.every((service) => names(service).length > 0) && names('orderly-orders').includes('orders consume PaymentCaptured')); i++) await sleep(200);
    await sleep(1_500);
    const spans = inTrace();
    const services = new Set(spans.map((s) => s.service));
    assert.deepEqual([...services].sort(), [...expected].sort(), 'the trace covers the gateway and every service');

    const gateway = spans.find((s) => s.service === 'orderly-gateway' && s.attributes['url.path'] === `/orders/checkout/${order}`);
    assert.equal(gateway?.parentSpanId, CALLER_SPAN, 'the gateway continues the caller\'s span');
    assert.equal(gateway.attributes['orderly.request_id'], 'checkout-42');
    const route = spans.find((s) => s.service === 'orderly-orders' && s.name === 'POST /orders/checkout/:orderId');
    assert.equal(route?.parentSpanId, gateway.spanId, 'the order service continues the gateway\'s span');
    for (const name of ['stock consume ReserveStock', 'stock store transaction', 'payment consume AuthorizePayment', 'payment store transaction', 'orders consume PaymentAuthorized', 'orders consume StockReserved',
      'payment consume CapturePayment', 'stock consume CommitStock', 'orders consume PaymentCaptured']) {
      assert.ok(spans.some((s) => s.name === name), `a span ${name} (have ${spans.map((s) => `${s.service}: ${s.name}`).join(', ')})`);
    }
    // The relay's hand-offs to the broker: a span per batch sent.
    for (const service of ['orders', 'stock', 'payment']) assert.ok(spans.some((s) => s.name.startsWith(`${service} publish `)), `${service}'s messages handed to the broker`);
    // One tree, and the checkout's saga only in it.
    const ids = new Set([CALLER_SPAN, ...spans.map((s) => s.spanId)]);
    for (const span of spans) assert.ok(ids.has(span.parentSpanId), `${span.service}: ${span.name} hangs off the checkout's tree`);
    const sagaId = spans.find((s) => typeof s.attributes['orderly.saga_id'] === 'string' && s.attributes['orderly.saga_id'] !== '')?.attributes['orderly.saga_id'];
    const elsewhere = sink.spans.filter((s: SinkSpan) => s.attributes['orderly.saga_id'] === sagaId && s.traceId !== CALLER_TRACE);
    assert.deepEqual(elsewhere.map((s) => s.name), [], 'no span of the checkout\'s saga is in another trace');
  } catch (error) {
    console.error(`cluster log:\n${cluster.logTail()}`);
    throw error;
  } finally {
    await client.close();
    await cluster.stop();
    await cleanBroker(SHARED.rabbitmq, namespace);
    await database.drop();
    await sink.close();
  }
});
