import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { startTracing } from '../../src/observability/tracing.ts';
import { createItem, createOrder, createUser, startTestSystem } from './helpers.ts';

// The default sampling: every trace begun here up to so many a second, then none until the
// budget refills. Checkouts beyond it are not recorded at all (no span of theirs anywhere), and a
// caller's sampled traceparent is recorded whatever the budget.

const exporter = new InMemorySpanExporter();
const tracing = await startTracing({ serviceName: 'orderly', exporter, sampling: { perSecond: 3 } });

const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c';

await test('at most so many traces a second are begun; a caller\'s sampled trace is recorded anyway', async () => {
  const sys = await startTestSystem();
  try {
    const item = await createItem(sys, 1, 100);
    const user = await createUser(sys, 1000);
    const orders = [];
    for (let i = 0; i < 9; i++) orders.push(await createOrder(sys, user, [[item, 1]]));
    await sleep(1_100);
    exporter.reset();
    const checkout = (order: string, headers: Record<string, string> = {}) => sys.inject({ method: 'POST', url: `/orders/checkout/${order}`, headers });

    // A burst of six: the budget (three) is spent on the first three.
    const burst = await Promise.all(orders.slice(0, 6).map((order) => checkout(order)));
    assert.deepEqual(burst.map((a) => a.statusCode), [200, 200, 200, 200, 200, 200]);
    // Over the budget, but the caller asked for it.
    assert.equal((await checkout(orders[6] ?? '', { traceparent: `00-${CALLER_TRACE}-b7ad6b7169203331-01` })).statusCode, 200);
    await sleep(300);
    const traced = () => new Set(exporter.getFinishedSpans().filter((s) => s.name === 'POST /orders/checkout/:orderId').map((s) => s.spanContext().traceId));
    const afterBurst = traced();
    assert.equal(afterBurst.size, 4, 'three of the burst and the caller\'s');
    assert.ok(afterBurst.has(CALLER_TRACE));
    const traces = new Set(exporter.getFinishedSpans().map((s) => s.spanContext().traceId));
    assert.deepEqual([...traces].sort(), [...afterBurst].sort(), 'no span of an unrecorded checkout anywhere');

    // A second later the budget has refilled.
    await sleep(1_100);
    for (const order of orders.slice(7)) assert.equal((await checkout(order)).statusCode, 200);
    await sleep(300);
    assert.equal(traced().size, 6, 'both later checkouts recorded');
  } finally {
    await sys.close();
  }
});

await tracing?.shutdown();
