/**
 * The outbox relay's timers (src/runtime/relay.ts), on the SQLite store and the in-process bus:
 * a delayed message goes out when due, in due order, and a cancelled one never, also when most
 * timers are cancelled (every checkout cancels its 15-minute reservation timer, and the relay
 * then makes its heap again from the live ones).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { inProcessBus } from '../../src/adapters/inproc/bus.ts';
import { openSqliteStore } from '../../src/adapters/sqlite/store.ts';
import type { Envelope } from '../../src/core/message.ts';
import { Relay } from '../../src/runtime/relay.ts';
import { storeShelf } from '../../src/wiring/deadLetterShelf.ts';

const silent = pino({ level: 'silent' });
const NOW = 1_700_000_000_000;

const timer = (n: number, deliverAt: number): Envelope => ({
  id: `t${n}`, type: 'Timer', sagaId: `s${n}`, step: 'ttl', correlationId: `o${n}`, causationId: 'c', at: NOW, deliverAt, payload: { n },
});

await test('timers go out when due and in due order; cancelled ones never, though most are cancelled', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-relay-'));
  const store = openSqliteStore(join(dir, 'orders.sqlite'), 'orders');
  let now = NOW;
  const bus = inProcessBus({ maxDeliveries: 1, backoffMs: [1], shelf: storeShelf(() => store, silent) });
  const delivered: number[] = [];
  await bus.subscribe('customer', ['Timer'], async (message) => {
    delivered.push((message.payload as { n: number }).n);
  });
  const relay = new Relay(store, bus, { chunk: 64, tickMs: 2, now: () => now, log: silent });
  await relay.start();
  try {
    // 5,000 timers due in a scrambled order; all but every 500th cancelled, in many commits.
    const timers = Array.from({ length: 5_000 }, (_, n) => timer(n, NOW + 1_000 + ((n * 7_919) % 5_000)));
    relay.committed(timers, []);
    const kept = timers.filter((_, n) => n % 500 === 0);
    const cancelled = timers.filter((_, n) => n % 500 !== 0).map((t) => t.id);
    for (let i = 0; i < cancelled.length; i += 100) relay.committed([], cancelled.slice(i, i + 100));
    assert.equal(relay.state().delayed, kept.length);
    // One more, committed after the heap was made again.
    const late = timer(5_000, NOW + 3_500);
    relay.committed([late], []);

    now = NOW + 999;
    await sleep(20);
    assert.deepEqual(delivered, [], 'nothing before it is due');
    now = NOW + 10_000;
    for (let i = 0; i < 200 && delivered.length < kept.length + 1; i++) await sleep(10);
    await sleep(20);
    const expected = [...kept, late].sort((a, b) => (a.deliverAt ?? 0) - (b.deliverAt ?? 0)).map((t) => (t.payload as { n: number }).n);
    assert.deepEqual(delivered, expected, 'the kept timers, in due order, and no cancelled one');
    assert.equal(relay.state().delayed, 0);
  } finally {
    await relay.stop();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
