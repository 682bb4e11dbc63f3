import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectStore } from '../../src/adapters/connect.ts';
import { redisBus } from '../../src/adapters/redis/bus.ts';
import { loadConfig } from '../../src/config.ts';
import type { Envelope } from '../../src/core/message.ts';
import { itemKey, type Item } from '../../src/domain/stock/stock.ts';
import type { Store } from '../../src/ports/store.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { runService } from '../../src/wiring/serviceWiring.ts';
import { cleanBroker } from '../support/cluster.ts';
import { eventually, randomName, sleep } from './helpers.ts';
import { startProxy } from './proxy.ts';

// A forced hand-over overlap (docs/scaling.md): replica A of the stock service takes a
// ReserveStock and hangs in its commit; cut off from Redis, it loses its partitions, and replica B
// takes the message over and commits it. Then A wakes up and commits too. A's late commit must
// change nothing: the stock reserved once, StockReserved sent once. Two defences keep it so, the
// inbox (the message id committed by B) and the decider itself (one reservation per saga); with
// the inbox's dedup switched off (src/core/mutations.ts) this test still passes on the second.

const REDIS_URL = 'redis://127.0.0.1:6379';
const LEASE_MS = 600;
const log = createLogger('silent');

await test('a replica that hung past its lease and commits late changes nothing: the stock is reserved once', async (t) => {
  const ns = randomName('ov');
  const config = loadConfig({ LOG_LEVEL: 'silent' });
  const proxy = await startProxy({ host: '127.0.0.1', port: 6379 });
  const stores: { close(): Promise<void> }[] = [];
  const stops: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const stop of stops.toReversed()) await stop().catch(() => undefined);
    for (const store of stores) await store.close().catch(() => undefined);
    await proxy.cut().catch(() => undefined);
    await cleanBroker(REDIS_URL, ns);
  });
  const bus = (url: string, name: string) => redisBus({ url, namespace: ns, consumerName: name, partitions: 4, leaseMs: LEASE_MS, claimIdleMs: 30_000, log });
  const replica = async (name: string, busUrl: string, wrap?: (store: Store) => Store) => {
    const opened = await connectStore(REDIS_URL, 'stock', ns, REDIS_URL, log, 4);
    stores.push(opened);
    const b = await bus(busUrl, name);
    const running = runService('stock', wrap ? wrap(opened.store) : opened.store, b, { config, log, publishChunk: 64, sweepMs: 0 });
    await running.subscribe();
    await running.start();
    stops.push(async () => {
      await running.stop();
      await b.close();
    });
    return opened.store;
  };

  // What the order service would hear.
  const publisher = await bus(REDIS_URL, 'publisher');
  stops.push(() => publisher.close());
  const replies: Envelope[] = [];
  await publisher.subscribe('orders', ['StockReserved', 'StockReservationFailed'], async (m) => {
    replies.push(m);
  });

  // Replica A, on Redis through the proxy for its bus; its commits of the ReserveStock wait for `wake`.
  let wake: () => void = () => {};
  const woken = new Promise<void>((resolve) => (wake = resolve));
  let aTook = false;
  let aCommitted = false;
  const store = await replica('stock-a', `redis://127.0.0.1:${proxy.port}`, (real) => ({
    ...real,
    transact: async (keys, ids, decide) => {
      if (!ids.includes('s1:ReserveStock')) return real.transact(keys, ids, decide);
      aTook = true;
      await woken;
      const result = await real.transact(keys, ids, decide);
      aCommitted = true;
      return result;
    },
  }));
  await store.transact([itemKey('i1')], [], () => ({ writes: new Map([[itemKey('i1'), { price: 5, available: 10, reserved: 0 } satisfies Item]]), consumed: [], outbox: [], cancel: [], result: undefined }));

  await publisher.publish([{ id: 's1:ReserveStock', type: 'ReserveStock', sagaId: 's1', step: 'reserveStock', correlationId: 'o1', causationId: 'o1:checkout', at: Date.now(), payload: { lines: [['i1', 2]] } }]);
  await eventually('A took the message', () => aTook);

  // A is cut off: its leases run out, B takes the partition and what A held in it.
  const bStore = await replica('stock-b', REDIS_URL);
  await proxy.cut();
  await eventually('B reserved the stock', () => replies.length >= 1, 15_000);
  const reserved = (await bStore.read([itemKey('i1')])).get(itemKey('i1')) as Item;
  assert.deepEqual({ available: reserved.available, reserved: reserved.reserved }, { available: 8, reserved: 2 });

  // A wakes up and commits the same message late.
  wake();
  await eventually('A committed (or gave up) late', () => aCommitted, 10_000).catch(() => undefined);
  await proxy.restore();
  await sleep(LEASE_MS * 2);
  const after = (await bStore.read([itemKey('i1')])).get(itemKey('i1')) as Item;
  assert.deepEqual({ available: after.available, reserved: after.reserved }, { available: 8, reserved: 2 }, 'reserved once, not twice');
  assert.deepEqual(replies.map((m) => m.type), ['StockReserved'], 'one reply');
  t.diagnostic(`A's late commit ${aCommitted ? 'ran and changed nothing' : 'did not run'}`);
});
