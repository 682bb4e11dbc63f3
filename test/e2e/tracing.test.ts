import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SAGA_STYLES } from '../../src/config.ts';
import type { Envelope } from '../../src/core/message.ts';
import { publishSpan, startTracing } from '../../src/observability/tracing.ts';
import { createItem, createOrder, createUser, startTestSystem } from './helpers.ts';

// The embedded system (npm start) with tracing on, its spans in the SDK's in-memory exporter:
// one checkout is one trace, continuing the caller's traceparent, whose spans cover the HTTP
// request, every service the checkout touched (the tracker too, in choreography), the store
// transactions and the messages handed to the bus, all connected to one root.

const exporter = new InMemorySpanExporter();
const tracing = await startTracing({ serviceName: 'orderly', exporter });

/** Waits until no span has ended for a while (the saga's last messages commit after the answer). */
async function quiet(): Promise<ReadableSpan[]> {
  let count = -1;
  for (let i = 0; i < 100 && exporter.getFinishedSpans().length !== count; i++) {
    count = exporter.getFinishedSpans().length;
    await sleep(150);
  }
  return exporter.getFinishedSpans();
}

const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN = 'b7ad6b7169203331';

for (const style of SAGA_STYLES) {
  await test(`${style}: one checkout is one trace over HTTP, the services, the store and the bus`, async () => {
    const sys = await startTestSystem({ SAGA_STYLE: style });
    try {
      const item = await createItem(sys, 2, 10);
      const user = await createUser(sys, 100);
      const order = await createOrder(sys, user, [[item, 3]]);
      await quiet();
      exporter.reset();

      const res = await sys.inject({ method: 'POST', url: `/orders/checkout/${order}`, headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } });
      assert.equal(res.statusCode, 200, res.body);
      const spans = await quiet();
      const traces = new Set(spans.map((s) => s.spanContext().traceId));
      assert.deepEqual([...traces], [CALLER_TRACE], 'every span of the checkout is in the caller\'s trace');
      const http = spans.filter((s) => s.name === 'POST /orders/checkout/:orderId');
      assert.equal(http.length, 1, 'one HTTP span');
      assert.equal(http[0]?.kind, SpanKind.SERVER);
      assert.equal(http[0]?.parentSpanContext?.spanId, CALLER_SPAN, 'the HTTP span continues the caller\'s');

      const services = new Set(spans.map((s) => s.attributes['orderly.service']));
      for (const service of style === 'choreography' ? ['orders', 'stock', 'payment', 'tracker'] : ['orders', 'stock', 'payment']) {
        assert.ok(services.has(service), `a span of ${service} (have ${[...services].join(', ')})`);
        assert.ok(spans.some((s) => s.name === `${service} store transaction` && s.kind === SpanKind.CLIENT), `a store span of ${service}`);
      }
      assert.ok(spans.some((s) => s.kind === SpanKind.PRODUCER && s.name.startsWith('orders publish ')), 'the order service\'s messages handed to the bus');
      const handled = {
        orchestration: ['stock consume ReserveStock', 'payment consume AuthorizePayment', 'orders consume StockReserved'],
        choreography: ['stock consume CheckoutRequested', 'payment consume StockReserved', 'tracker consume PaymentCaptured'],
        synchronous: ['stock call ReserveStock', 'payment call AuthorizePayment', 'orders consume StockReserved'],
      }[style];
      for (const name of handled) assert.ok(spans.some((s) => s.name === name), `a span ${name} (have ${spans.map((s) => s.name).join(', ')})`);
      assert.ok(spans.some((s) => s.name === 'orders Checkout'), 'the checkout command');

      // One tree: every span's parent is the caller's span or another span of the checkout.
      const ids = new Set([CALLER_SPAN, ...spans.map((s) => s.spanContext().spanId)]);
      for (const span of spans) assert.ok(ids.has(span.parentSpanContext?.spanId ?? ''), `${span.name} hangs off the checkout's tree`);
      // The saga's messages all belong to the one checkout.
      const sagas = new Set(spans.flatMap((s) => (typeof s.attributes['orderly.saga_id'] === 'string' && s.attributes['orderly.saga_id'] !== '' ? [s.attributes['orderly.saga_id']] : [])));
      assert.equal(sagas.size, 1, `one saga: ${[...sagas].join(', ')}`);
    } finally {
      await sys.close();
    }
  });
}

await test('a checkout without a caller\'s traceparent starts a trace of its own, one per checkout', async () => {
  const sys = await startTestSystem();
  try {
    const item = await createItem(sys, 2, 10);
    const user = await createUser(sys, 100);
    const orders = [await createOrder(sys, user, [[item, 1]]), await createOrder(sys, user, [[item, 1]])];
    await quiet();
    exporter.reset();
    const answers = await Promise.all(orders.map((order) => sys.inject({ method: 'POST', url: `/orders/checkout/${order}` })));
    assert.deepEqual(answers.map((a) => a.statusCode), [200, 200]);
    const spans = await quiet();
    const roots = spans.filter((s) => s.parentSpanContext === undefined);
    assert.deepEqual(roots.map((s) => s.name), ['POST /orders/checkout/:orderId', 'POST /orders/checkout/:orderId']);
    const traces = new Set(spans.map((s) => s.spanContext().traceId));
    assert.equal(traces.size, 2, 'two checkouts, two traces');
    for (const trace of traces) {
      const services = new Set(spans.filter((s) => s.spanContext().traceId === trace).map((s) => s.attributes['orderly.service']));
      assert.ok(['orders', 'stock', 'payment'].every((name) => services.has(name)), `trace ${trace} covers every service`);
    }
  } finally {
    await sys.close();
  }
});

await test('a caller\'s trace that is not sampled is passed on, and nothing is recorded', async () => {
  const sys = await startTestSystem();
  try {
    const order = await createOrder(sys, await createUser(sys, 100), [[await createItem(sys, 2, 10), 1]]);
    await quiet();
    exporter.reset();
    const sent: Envelope[] = [];
    for (const runtime of Object.values(sys.system.services)) runtime.onCommitted((messages) => sent.push(...messages));
    const traceparent = `00-${CALLER_TRACE}-${CALLER_SPAN}-00`;
    assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${order}`, headers: { traceparent } })).statusCode, 200);
    assert.deepEqual(await quiet(), [], 'no span recorded');
    assert.ok(sent.some((m) => m.type === 'ReserveStock'));
    assert.deepEqual(new Set(sent.map((m) => m.traceparent)), new Set([traceparent]), 'every message carries the caller\'s trace context as it came');
  } finally {
    await sys.close();
  }
});

await test('the relay sends a batch in one span: in its first recorded message\'s trace, linked to the others\'', async () => {
  exporter.reset();
  const message = (id: string, traceparent?: string): Envelope => ({ id, type: 'ReserveStock', sagaId: 's', step: 'reserve', correlationId: 'c', causationId: 'x', at: 0, payload: {}, ...(traceparent === undefined ? {} : { traceparent }) });
  const other = '1bf7651916cd43dd8448eb211c80319d';
  const unsampled = '2cf7651916cd43dd8448eb211c80319e';
  assert.equal(publishSpan('orders', [message('a'), message('b', `00-${unsampled}-${CALLER_SPAN}-00`)]), undefined, 'nothing recorded, no span');
  const end = publishSpan('orders', [message('a'), message('b', `00-${unsampled}-${CALLER_SPAN}-00`), message('c', `00-${CALLER_TRACE}-${CALLER_SPAN}-01`), message('d', `00-${other}-${CALLER_SPAN}-01`)]);
  end?.();
  const [span, ...more] = exporter.getFinishedSpans();
  assert.equal(more.length, 0, 'one span for the batch');
  assert.equal(span?.name, 'orders publish ReserveStock');
  assert.equal(span.kind, SpanKind.PRODUCER);
  assert.equal(span.attributes['messaging.batch.message_count'], 4);
  assert.equal(span.spanContext().traceId, CALLER_TRACE, 'in the first recorded message\'s trace');
  assert.equal(span.parentSpanContext?.spanId, CALLER_SPAN, 'a child of the span that committed it');
  assert.deepEqual(span.links.map((l) => l.context.traceId), [other], 'linked to the other recorded trace');
});

await tracing?.shutdown();
