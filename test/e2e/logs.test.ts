import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Envelope } from '../../src/core/message.ts';
import { loadConfig } from '../../src/config.ts';
import { policyOf } from '../../src/http/access.ts';
import { buildApp } from '../../src/http/app.ts';
import { tracingOn } from '../../src/observability/tracing.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { startEmbedded } from '../../src/wiring/embedded.ts';
import { createItem, createOrder, createUser, type TestSystem } from './helpers.ts';

// Request ids on every HTTP answer and in the request's log lines; saga ids, correlation ids
// and trace ids in the log lines about saga messages; and, with tracing off (no
// OTEL_EXPORTER_OTLP_ENDPOINT), no trace context anywhere.

/** A JSON logger writing into an array. */
function capturing() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('info', 'json', { write: (text: string) => lines.push(JSON.parse(text) as Record<string, unknown>) });
  return { log, lines };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('every answer carries a request id: the caller\'s when sensible, else a new one', async () => {
  const app = buildApp({ log: createLogger('silent'), routes: () => {}, notReady: async () => [], audit: async () => ({}), access: policyOf(loadConfig({}), true), maxEventStreams: 10 });
  const fresh = await app.inject({ method: 'GET', url: '/healthz' });
  assert.match(String(fresh.headers['x-request-id']), UUID);
  const other = await app.inject({ method: 'GET', url: '/healthz' });
  assert.notEqual(other.headers['x-request-id'], fresh.headers['x-request-id'], 'a new id per request');
  assert.equal((await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } })).headers['x-request-id'], 'abc-123');
  assert.equal((await app.inject({ method: 'GET', url: '/nowhere', headers: { 'x-request-id': 'abc-404' } })).headers['x-request-id'], 'abc-404', 'errors too');
  for (const bad of ['has spaces', 'x'.repeat(200), 'quote"d']) {
    assert.match(String((await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': bad } })).headers['x-request-id']), UUID, `${bad.slice(0, 20)} is replaced`);
  }
  await app.close();
});

test('a request\'s log line carries its request id', async () => {
  const { log, lines } = capturing();
  const app = buildApp({
    log, notReady: async () => [], audit: async () => ({}), access: policyOf(loadConfig({}), true), maxEventStreams: 10,
    routes: (a) => a.get('/broken', async () => {
      throw new Error('a bug');
    }),
  });
  const res = await app.inject({ method: 'GET', url: '/broken', headers: { 'x-request-id': 'req-7' } });
  assert.equal(res.statusCode, 500);
  const line = lines.find((l) => l.msg === 'request failed');
  assert.equal(line?.reqId, 'req-7');
  assert.equal(line.url, '/broken');
  await app.close();
});

test('tracing off: no trace context in any message; a saga message\'s log line carries its saga, correlation and trace ids', async () => {
  assert.equal(tracingOn(), false);
  const dir = mkdtempSync(join(tmpdir(), 'orderly-logs-'));
  const { log, lines } = capturing();
  const system = await startEmbedded(loadConfig({ ORDERLY_DATA_DIR: dir }), log);
  try {
    const sys: TestSystem = { system, inject: (options) => system.app.inject(options), close: async () => {} };
    const sent: Envelope[] = [];
    for (const runtime of Object.values(system.services)) runtime.onCommitted((messages) => sent.push(...messages));
    const order = await createOrder(sys, await createUser(sys, 100), [[await createItem(sys, 2, 10), 1]]);
    assert.equal((await sys.inject({ method: 'POST', url: `/orders/checkout/${order}` })).statusCode, 200);
    assert.ok(sent.some((m) => m.type === 'ReserveStock'), 'the saga ran');
    assert.deepEqual(sent.filter((m) => m.traceparent !== undefined), [], 'no message carries a traceparent');

    // A message that came traced from elsewhere (a process with tracing on) and is malformed.
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    // The runtime refuses it as undeliverable (the bus then dead-letters it) and says so.
    await assert.rejects(system.services.stock!.consume({ id: 'bad-1', type: 'ReserveStock', sagaId: 'o9.s1', step: 'reserveStock', correlationId: 'o9', causationId: 'c', at: 0, payload: { lines: 'none' }, traceparent }), /malformed/);
    const line = lines.find((l) => l.msg === 'malformed message refused');
    assert.equal(line?.sagaId, 'o9.s1');
    assert.equal(line.correlationId, 'o9');
    assert.equal(line.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  } finally {
    await system.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
