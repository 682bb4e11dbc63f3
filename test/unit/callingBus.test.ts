/**
 * callingBus (src/adapters/calls/bus.ts), the synchronous style's transport, with a `call` that
 * runs the real stock and payment deciders in memory (no network): commands go to their owner,
 * its answers to the local subscribers before `publish` resolves; other types stay local or
 * are dropped; a failed call rejects `publish`; owned types cannot be subscribed here.
 */
import assert from 'node:assert/strict';
import { setImmediate } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { callingBus, Unreachable, type Call } from '../../src/adapters/calls/bus.ts';
import type { Decider, Read } from '../../src/core/decider.ts';
import { envelopesFrom, type Envelope } from '../../src/core/message.ts';
import { SAGA_TIMER } from '../../src/core/saga.ts';
import { paymentDecider } from '../../src/domain/payment/businessLogic.ts';
import { stockDecider } from '../../src/domain/stock/businessLogic.ts';
import { deadLetterId, type DeadLetter, type DeadLetterShelf } from '../../src/ports/deadLetters.ts';

const NOW = 1_700_000_000_000;
const SAGA = 'o1.1';
const participants: Record<string, Decider> = { stock: stockDecider, payment: paymentDecider() };
const owners: ReadonlyMap<string, readonly string[]> = new Map(
  Object.entries(participants).flatMap(([name, decider]) => decider.consumes.map((type) => [type, [name]] as const)),
);

/** Stock and payment in memory: their documents, the calls they got, and a `call` that runs them. */
function inMemory(fail?: (participant: string) => boolean) {
  const docs: Record<string, Record<string, unknown>> = {
    stock: { 'item:i1': { price: 10, available: 10, reserved: 0 } },
    payment: { 'user:u1': { credit: 100, held: 0 } },
  };
  const calls: [participant: string, types: string[]][] = [];
  const call: Call = async (participant, commands) => {
    calls.push([participant, commands.map((c) => c.type)]);
    await setImmediate();
    if (fail?.(participant)) throw new Error(`${participant} is unreachable`);
    const decider = participants[participant];
    assert.ok(decider, `no participant ${participant}`);
    return commands.map((command) => {
      const keys = new Set(decider.keys(command));
      const read: Read = <T>(key: string): T | undefined => {
        assert.ok(keys.has(key), `${command.type} read ${key}, which keys() did not name`);
        return docs[participant]![key] as T | undefined;
      };
      const decision = decider.decide(command, read, NOW);
      Object.assign(docs[participant]!, decision.writes ?? {});
      return envelopesFrom(command, decision.send ?? [], NOW);
    });
  };
  return { docs, calls, call };
}

const message = (type: string, payload: unknown, step = '', id = `m:${type}`): Envelope =>
  ({ id, type, sagaId: SAGA, step, correlationId: 'o1', causationId: 'x', at: NOW, payload });
const reserve = message('ReserveStock', { lines: [['i1', 2]] }, 'reserveStock');
const authorize = message('AuthorizePayment', { userId: 'u1', amount: 30 }, 'authorizePayment');
const timer = { ...message(SAGA_TIMER, { seq: 0 }, '', `${SAGA}/timer/0`), deliverAt: NOW + 10_000 };

/** A dead-letter shelf in memory: what was parked, as [participant, command id, reason]. */
function shelf() {
  const kept = new Map<string, DeadLetter>();
  const parked = () => [...kept.values()].map((d) => [d.consumer, d.messages[0]?.id ?? '', d.reason] as [string, string, string]);
  const on: DeadLetterShelf = {
    keep: async (consumer, message, reason) => void kept.set(deadLetterId(consumer, message.id), { id: deadLetterId(consumer, message.id), consumer, reason, at: NOW, messages: [message] }),
    list: async (consumer) => [...kept.values()].filter((d) => d.consumer === consumer),
    get: async (consumer, local) => kept.get(deadLetterId(consumer, local)),
    remove: async (consumer, local) => kept.delete(deadLetterId(consumer, local)),
  };
  return { shelf: on, parked };
}

/** A local consumer that records what it got only after a tick, so `publish` must wait for it. */
function consumer() {
  const got: Envelope[] = [];
  const handler = async (m: Envelope) => {
    await setImmediate();
    got.push(m);
  };
  return { got, handler };
}

void describe('callingBus: commands are called on their owner', () => {
  void it('publish of ReserveStock runs stock and delivers its answer to the local subscriber before resolving', async () => {
    const { docs, calls, call } = inMemory();
    const bus = callingBus(owners, call);
    const orders = consumer();
    await bus.subscribe('orders', ['StockReserved', 'StockReservationFailed'], orders.handler);
    await bus.publish([reserve]);
    assert.deepEqual(calls, [['stock', ['ReserveStock']]]);
    assert.deepEqual(docs.stock?.['item:i1'], { price: 10, available: 8, reserved: 2 }, 'the real decider ran');
    assert.deepEqual(orders.got.map((m) => [m.type, m.sagaId, m.step, m.correlationId, m.causationId]), [
      ['StockReserved', SAGA, 'reserveStock', 'o1', reserve.id],
    ]);
  });

  void it('one call per participant, with all of its commands; every answer is delivered', async () => {
    const { calls, call } = inMemory();
    const bus = callingBus(owners, call);
    const orders = consumer();
    await bus.subscribe('orders', ['StockReserved', 'StockReleased', 'PaymentAuthorized'], orders.handler);
    const release = message('ReleaseStock', { lines: [['i1', 2]] }, 'reserveStock', 'm:release');
    await bus.publish([reserve, authorize, release]);
    assert.deepEqual([...calls].sort(), [['payment', ['AuthorizePayment']], ['stock', ['ReserveStock', 'ReleaseStock']]]);
    assert.deepEqual(orders.got.map((m) => m.type).sort(), ['PaymentAuthorized', 'StockReleased', 'StockReserved']);
  });

  void it('a business failure is an answer like any other', async () => {
    const { docs, call } = inMemory();
    docs.stock = { 'item:i1': { price: 10, available: 1, reserved: 0 } };
    const bus = callingBus(owners, call);
    const orders = consumer();
    await bus.subscribe('orders', ['StockReserved', 'StockReservationFailed'], orders.handler);
    await bus.publish([reserve]);
    assert.deepEqual(orders.got.map((m) => [m.type, m.payload]), [
      ['StockReservationFailed', { reason: 'out-of-stock', detail: 'item i1 has 1 in stock, 2 wanted' }],
    ]);
  });
});

void describe('callingBus: messages nobody owns', () => {
  void it('go to the local subscriber of their type (a timer), without any call', async () => {
    const { calls, call } = inMemory();
    const bus = callingBus(owners, call);
    const timers = consumer();
    await bus.subscribe('orders', [SAGA_TIMER], timers.handler);
    await bus.publish([timer]);
    assert.deepEqual(timers.got, [timer]);
    assert.deepEqual(calls, []);
  });

  void it('are dropped when nobody here subscribed to them', async () => {
    const { calls, call } = inMemory();
    const bus = callingBus(owners, call);
    const orders = consumer();
    await bus.subscribe('orders', [SAGA_TIMER], orders.handler);
    await bus.publish([message('CheckoutCompleted', {}), message('Unheard', {})]);
    assert.deepEqual([orders.got, calls], [[], []]);
  });
});

void describe('callingBus: failures', () => {
  void it('a failing call rejects publish; the retry calls again and the participant answers the same', async () => {
    let down = true;
    const { docs, calls, call } = inMemory((participant) => down && participant === 'stock');
    const bus = callingBus(owners, call);
    const orders = consumer();
    await bus.subscribe('orders', ['StockReserved', 'PaymentAuthorized'], orders.handler);
    await assert.rejects(bus.publish([reserve]), /stock is unreachable/);
    assert.equal(orders.got.length, 0, 'no answer delivered');
    down = false;
    await bus.publish([reserve]);
    await bus.publish([reserve]); // once more, as after a crash before the outbox was cleared
    assert.deepEqual(calls, [['stock', ['ReserveStock']], ['stock', ['ReserveStock']], ['stock', ['ReserveStock']]]);
    assert.deepEqual(orders.got.map((m) => [m.type, m.id]), [['StockReserved', `${reserve.id}>0`], ['StockReserved', `${reserve.id}>0`]]);
    assert.deepEqual(docs.stock?.['item:i1'], { price: 10, available: 8, reserved: 2 }, 'reserved once');
  });

  void it('a failing call rejects publish even when another participant answered', async () => {
    const { call } = inMemory((participant) => participant === 'payment');
    const bus = callingBus(owners, call);
    await bus.subscribe('orders', ['StockReserved'], consumer().handler);
    await assert.rejects(bus.publish([reserve, authorize]), /payment is unreachable/);
  });

  void it('a local handler that rejects rejects publish', async () => {
    const bus = callingBus(owners, inMemory().call);
    await bus.subscribe('orders', ['StockReserved'], async () => {
      throw new Error('store down');
    });
    await assert.rejects(bus.publish([reserve]), /store down/);
  });

  void it('a command its participant keeps failing is parked after the last try, and not called again', async () => {
    const { shelf: on, parked } = shelf();
    let calls = 0;
    const failing: Call = async (participant, commands) => {
      calls++;
      throw new Error(`${participant} failed on ${commands.map((c) => c.type).join()}`);
    };
    const bus = callingBus(owners, failing, { maxFailures: 3, shelf: on });
    await assert.rejects(bus.publish([reserve]), /stock failed/);
    await assert.rejects(bus.publish([reserve]), /stock failed/);
    assert.equal(parked().length, 0, 'tried again until the last try');
    await bus.publish([reserve]); // the third failure parks it: publish resolves, the relay drops it
    assert.deepEqual(parked().map(([participant, id]) => [participant, id]), [['stock', reserve.id]]);
    assert.match(parked()[0]?.[2] ?? '', /stock failed it 3 times; last: stock failed on ReserveStock/);
    await bus.publish([reserve]); // as after a crash before the outbox dropped it
    assert.equal(calls, 3, 'a parked command is not called again');
    assert.deepEqual((await bus.deadLetters.list(10)).map((d) => d.id), [deadLetterId('stock', reserve.id)], 'listed as a dead letter of stock');
  });

  void it('a parked command redriven is called again, its answer delivered, and its dead letter forgotten', async () => {
    const { shelf: on, parked } = shelf();
    let broken = true;
    const { call, calls } = inMemory(() => broken);
    const bus = callingBus(owners, call, { maxFailures: 1, shelf: on });
    const orders = consumer();
    await bus.subscribe('orders', ['StockReserved'], orders.handler);
    await bus.publish([reserve]);
    assert.equal(parked().length, 1);
    assert.equal(await bus.deadLetters.redrive('stock:no-such-id'), false);
    assert.equal(await bus.deadLetters.redrive(`payment:${reserve.id}`), false, 'the id names the participant it failed on');
    broken = false;
    assert.equal(await bus.deadLetters.redrive(deadLetterId('stock', reserve.id)), true);
    for (let i = 0; i < 50 && parked().length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.deepEqual(parked(), [], 'forgotten once answered');
    assert.deepEqual(orders.got.map((m) => m.type), ['StockReserved']);
    assert.equal(calls.length, 2);
  });

  void it('a participant that cannot be reached is tried for as long as it takes, never parked', async () => {
    const { shelf: on, parked } = shelf();
    let reachable = false;
    const { call } = inMemory();
    const sometimes: Call = async (participant, commands) => {
      if (!reachable) throw new Unreachable(`${participant} refused the connection`);
      return call(participant, commands);
    };
    const bus = callingBus(owners, sometimes, { maxFailures: 2, shelf: on });
    const orders = consumer();
    await bus.subscribe('orders', ['StockReserved'], orders.handler);
    for (let i = 0; i < 5; i++) await assert.rejects(bus.publish([reserve]), /refused the connection/);
    reachable = true;
    await bus.publish([reserve]);
    assert.deepEqual(parked(), []);
    assert.deepEqual(orders.got.map((m) => m.type), ['StockReserved']);
  });

  void it('subscribing here to a command type a participant owns throws', async () => {
    const bus = callingBus(owners, inMemory().call);
    for (const type of ['ReserveStock', 'CommitStock', 'AuthorizePayment', 'VoidPayment']) {
      await assert.rejects(bus.subscribe('orders', [type], consumer().handler), new RegExp(`${type} is called on ${owners.get(type)}`));
    }
  });

  void it('after close: publish rejects and the bus is not connected', async () => {
    const { calls, call } = inMemory();
    const bus = callingBus(owners, call);
    assert.equal(bus.connected(), true);
    await bus.close();
    assert.equal(bus.connected(), false);
    await assert.rejects(bus.publish([reserve]), /closed/);
    assert.deepEqual(calls, []);
  });
});
