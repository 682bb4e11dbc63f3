import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { inProcessBus } from '../../src/adapters/inproc/bus.ts';
import { Undeliverable } from '../../src/ports/bus.ts';
import { storeShelf } from '../../src/wiring/deadLetterShelf.ts';
import { reacting, reactions } from '../../src/core/choreography.ts';
import type { Decider } from '../../src/core/decider.ts';
import { checkoutParticipant, checkoutSaga } from '../../src/domain/order/checkoutSaga.ts';
import { checkoutContextCheck, OrderEvents } from '../../src/domain/order/order.ts';
import { stockDecider } from '../../src/domain/stock/businessLogic.ts';
import type { Store } from '../../src/ports/store.ts';
import { Relay } from '../../src/runtime/relay.ts';
import { ServiceRuntime } from '../../src/runtime/serviceRuntime.ts';
import { envelope, randomName } from './helpers.ts';
import { pgliteBackend, postgresBackend, redisBackend, type Database, type StoreBackend } from './storeBackends.ts';

// A message whose payload is not what its type says is checked once, where it is consumed: it
// is refused as Undeliverable with what is wrong with it (every bus dead-letters that at once,
// see the bus suite), changes nothing, and the consumer goes on. Through the in-process bus it
// lands in the consumer's store, listed among the bus's dead letters. On every store.

const silent = pino({ level: 'silent' });
const choreographedStock = reacting(stockDecider, new Map([[1, reactions(checkoutSaga(undefined, { sequential: true }), OrderEvents.requested, checkoutParticipant).filter((r) => r.participant === 'stock')]]), checkoutContextCheck);

function malformedConformance(backend: StoreBackend): void {
  void describe(`malformed messages on ${backend.name}`, () => {
    let db: Database;
    const opened: Store[] = [];
    before(async () => {
      db = await backend.open();
    });
    after(async () => {
      for (const store of opened) await store.close();
      await db.destroy();
    });

    async function stock(decider: Decider = stockDecider) {
      const service = randomName('stock');
      const store = await db.store(service);
      opened.push(store);
      const bus = inProcessBus({ maxDeliveries: 1, backoffMs: [1], shelf: storeShelf(() => store, silent) });
      const relay = new Relay(store, bus, { chunk: 1, tickMs: 50, now: () => Date.now(), log: silent });
      const runtime = new ServiceRuntime(service, decider, store, relay, { maxBatch: 16, now: () => Date.now(), log: silent });
      await bus.subscribe(service, runtime.consumes, (message) => runtime.consume(message));
      return { service, store, runtime, bus };
    }

    void test('a stock command without lines is dead-lettered with the reason, and nothing changes', async () => {
      const { service, store, runtime, bus } = await stock();
      const bad = envelope('bad-1', 'ReserveStock', { sagaId: 'o1.1', step: 'reserveStock', payload: { lines: 'two of a' } });
      await assert.rejects(runtime.consume(bad), (e) => e instanceof Undeliverable && /lines must be/.test(e.message));
      await bus.publish([bad]);
      const dead = await db.deadLetters(service);
      assert.deepEqual((await bus.deadLetters.list(10)).map((d) => [d.id, d.messages]), [[`${service}:bad-1`, [bad]]], 'listed as a dead letter of the bus');
      assert.deepEqual(dead.map((d) => d.consumer), [service]);
      assert.match(dead[0]?.error ?? '', /ReserveStock: lines must be a list of \[item id, quantity above 0\]/);
      assert.equal((await store.read(['reservation:o1.1'])).size, 0, 'no reservation was recorded');
      assert.deepEqual(await store.outbox(), [], 'no reply was sent');
      // The consumer goes on: a well-formed message after it is decided as usual.
      await runtime.consume(envelope('good-1', 'ReserveStock', { sagaId: 'o1.2', step: 'reserveStock', payload: { lines: [['a', 1]] } }));
      assert.deepEqual((await store.outbox()).map((m) => m.type), ['StockReservationFailed']);
    });

    void test('a message of a type the service does not take is refused, saying which it takes', async () => {
      const { runtime } = await stock();
      await assert.rejects(runtime.consume(envelope('bad-2', 'ShipParcel', { sagaId: 'o1.1', payload: {} })),
        (e) => e instanceof Undeliverable && /ShipParcel is not a message this service takes \(it takes ReserveStock, ReleaseStock, CommitStock\)/.test(e.message));
    });

    void test('choreography: an event without its context is dead-lettered with the reason', async () => {
      const { service, bus } = await stock(choreographedStock);
      await bus.publish([envelope('bad-3', OrderEvents.requested, { sagaId: 'o1.1', payload: { ctx: { orderId: 'o1' } } })]);
      const dead = await db.deadLetters(service);
      assert.match(dead[0]?.error ?? '', /CheckoutRequested: ctx: orderId and userId must be ids/);
    });
  });
}

for (const backend of [pgliteBackend, postgresBackend, redisBackend]) malformedConformance(backend);
