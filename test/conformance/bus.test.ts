import assert from 'node:assert/strict';
import { after, describe, test, type TestContext } from 'node:test';
import type { RetryPolicy } from '../../src/adapters/broker/delivery.ts';
import type { Envelope } from '../../src/core/message.ts';
import { Undeliverable, type Bus, type Handler } from '../../src/ports/bus.ts';
import { inProcessBackend, natsBackend, rabbitBackend, redisBackend, type BusBackend, type Endpoint } from './busBackends.ts';
import { envelope, eventually, randomName, sleep } from './helpers.ts';
import { startProxy } from './proxy.ts';

const retry: RetryPolicy = { maxDeliveries: 3, backoffMs: [20, 50] };
/** Long enough for any redelivery still to come under `retry` to have happened. */
const QUIET_MS = 400;

/** Messages each consumer handled, in order of arrival. */
function recorder() {
  const got = new Map<string, Envelope[]>();
  return {
    handler: (consumer: string): Handler => async (message) => {
      got.set(consumer, [...(got.get(consumer) ?? []), message]);
    },
    ids: (consumer: string) => (got.get(consumer) ?? []).map((m) => m.id).sort(),
    messages: (consumer: string) => got.get(consumer) ?? [],
    total: () => [...got.values()].reduce((n, list) => n + list.length, 0),
  };
}

function busConformance(backend: BusBackend): void {
  const broker = backend.broker;
  void describe(`Bus on ${backend.name}`, () => {
    after(() => backend.close());

    /** A namespace of its own for one test; buses opened in it are closed and its broker objects deleted after the test. */
    function namespace(t: TestContext) {
      const ns = randomName('ct');
      const live = new Set<Bus>();
      const consumers = new Set<string>();
      t.after(async () => {
        for (const bus of live) await bus.close();
        await backend.cleanup(ns, [...consumers], retry);
      });
      return {
        ns,
        async open(via?: Endpoint): Promise<Bus> {
          const bus = await backend.open(ns, retry, via);
          live.add(bus);
          return {
            deadLetters: bus.deadLetters,
            publish: (messages) => bus.publish(messages),
            connected: () => bus.connected(),
            declare: (consumer, types) => {
              consumers.add(consumer);
              return bus.declare(consumer, types);
            },
            subscribe: (consumer, types, handler) => {
              consumers.add(consumer);
              return bus.subscribe(consumer, types, handler);
            },
            close: () => (live.delete(bus) ? bus.close() : Promise.resolve()),
          };
        },
      };
    }

    void test('every consumer of a type gets each message of it, and nothing else', async (t) => {
      const bus = await namespace(t).open();
      const got = recorder();
      await bus.subscribe('alpha', ['Ordered', 'Paid'], got.handler('alpha'));
      await bus.subscribe('beta', ['Ordered'], got.handler('beta'));
      await bus.subscribe('gamma', ['Paid'], got.handler('gamma'));
      const ordered = envelope('o1', 'Ordered', { payload: { orderId: 'o-1', total: 1999, lines: [{ sku: 'a', qty: 2 }] } });
      await bus.publish([ordered, envelope('p1', 'Paid'), envelope('o2', 'Ordered'), envelope('x1', 'Unheard')]);
      await eventually('all deliveries', () => got.total() >= 6);
      await sleep(QUIET_MS);
      assert.deepEqual(got.ids('alpha'), ['o1', 'o2', 'p1']);
      assert.deepEqual(got.ids('beta'), ['o1', 'o2']);
      assert.deepEqual(got.ids('gamma'), ['p1']);
      assert.deepEqual(got.messages('beta').find((m) => m.id === 'o1'), ordered, 'the envelope arrives as it was sent');
    });

    void test('the trace context (traceparent) arrives with the envelope', async (t) => {
      const bus = await namespace(t).open();
      const got = recorder();
      await bus.subscribe('alpha', ['Traced'], got.handler('alpha'));
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const traced = envelope('t1', 'Traced', { traceparent });
      await bus.publish([traced, envelope('t2', 'Traced')]);
      await eventually('both deliveries', () => got.total() >= 2);
      const byId = new Map(got.messages('alpha').map((m) => [m.id, m]));
      assert.equal(byId.get('t1')?.traceparent, traceparent);
      assert.deepEqual(byId.get('t1'), traced, 'the traced envelope arrives as it was sent');
      assert.equal(byId.get('t2')?.traceparent, undefined, 'an untraced one gets none');
    });

    void test('a message whose handler rejects is delivered again', async (t) => {
      const space = namespace(t);
      const bus = await space.open();
      let calls = 0;
      await bus.subscribe('flaky', ['Job'], async () => {
        calls++;
        if (calls < retry.maxDeliveries) throw new Error(`not yet (${calls})`);
      });
      const steady = recorder();
      await bus.subscribe('steady', ['Job'], steady.handler('steady'));
      await bus.publish([envelope('j1', 'Job')]);
      await eventually('the third delivery', () => calls >= retry.maxDeliveries);
      await sleep(QUIET_MS);
      assert.equal(calls, retry.maxDeliveries, 'acknowledged once the handler resolved, so not delivered again');
      assert.deepEqual(steady.ids('steady'), ['j1'], "one consumer's retries are not another's deliveries");
      assert.deepEqual(await backend.deadLetters(space.ns, 'flaky'), []);
    });

    /** A bus with a consumer 'picky' that refuses the message 'poison'; counts the calls per message. */
    async function picky(t: TestContext) {
      const space = namespace(t);
      const bus = await space.open();
      const calls = new Map<string, number>();
      await bus.subscribe('picky', ['Job'], async (message) => {
        calls.set(message.id, (calls.get(message.id) ?? 0) + 1);
        if (message.id === 'poison') throw new Error(`refused ${message.id}`);
      });
      return { space, bus, calls };
    }

    void test('after maxDeliveries a message is dead-lettered with the error and not delivered again', async (t) => {
      const { space, bus, calls } = await picky(t);
      await bus.publish([envelope('poison', 'Job')]);
      await bus.publish([envelope('fine', 'Job')]);
      await eventually('a dead letter', async () => (await backend.deadLetters(space.ns, 'picky')).length > 0);
      await sleep(QUIET_MS);
      assert.equal(calls.get('poison'), retry.maxDeliveries);
      assert.equal(calls.get('fine'), 1);
      const dead = await backend.deadLetters(space.ns, 'picky');
      assert.deepEqual(dead.map((d) => d.id), ['poison']);
      assert.match(dead[0]!.error, /refused poison/);
    });

    void test('a message that fails does not take the messages published with it to the dead letters', async (t) => {
      const { space, bus, calls } = await picky(t);
      // Published together: a broker may carry them as one message.
      await bus.publish([envelope('fine1', 'Job'), envelope('poison', 'Job'), envelope('fine2', 'Job')]);
      await eventually('a dead letter', async () => (await backend.deadLetters(space.ns, 'picky')).length > 0);
      await sleep(QUIET_MS);
      assert.equal(calls.get('poison'), retry.maxDeliveries);
      // Handled at least once (a broker may hand them again with the failing one; consumers deduplicate).
      assert.ok((calls.get('fine1') ?? 0) >= 1 && (calls.get('fine2') ?? 0) >= 1);
      assert.deepEqual((await backend.deadLetters(space.ns, 'picky')).map((d) => d.id), ['poison']);
    });

    void test('a dead letter is listed with its reason, shown with its payload, and redriven to its consumer alone', async (t) => {
      const bus = await namespace(t).open();
      let broken = true;
      const picky = recorder();
      const other = recorder();
      await bus.subscribe('picky', ['Job'], async (message) => {
        if (broken) throw new Error(`refused ${message.id}`);
        await picky.handler('picky')(message);
      });
      await bus.subscribe('other', ['Job'], other.handler('other'));
      const poison = envelope('poison', 'Job', { payload: { lines: [['a', 2]], note: 'kept whole' } });
      await bus.publish([poison]);
      await eventually('a dead letter', async () => (await bus.deadLetters.list(100)).length > 0);
      const [dead, ...more] = await bus.deadLetters.list(100);
      assert.ok(dead);
      assert.deepEqual(more, []);
      assert.equal(dead.consumer, 'picky');
      assert.match(dead.reason, /refused poison/);
      assert.match(dead.id, /^picky:/);
      assert.deepEqual((await bus.deadLetters.get(dead.id))?.messages, [poison], 'shown with the envelope as it was sent, payload included');
      for (const unknown of ['picky:0', 'picky:1-1', 'nobody:1', 'nonsense']) assert.equal(await bus.deadLetters.get(unknown), undefined, unknown);
      assert.equal(await bus.deadLetters.redrive('picky:0'), false);

      broken = false; // the fix
      assert.equal(await bus.deadLetters.redrive(dead.id), true);
      await eventually('the redriven message consumed', () => picky.ids('picky').length > 0);
      await eventually('the dead letter gone', async () => (await bus.deadLetters.list(100)).length === 0);
      await sleep(QUIET_MS);
      assert.deepEqual(picky.ids('picky'), ['poison'], 'consumed once');
      assert.deepEqual(other.ids('other'), ['poison'], 'the other consumer of its type does not get it again');
      assert.equal(await bus.deadLetters.get(dead.id), undefined);
      assert.equal(await bus.deadLetters.redrive(dead.id), false, 'a dead letter is redriven once');
    });

    void test('a redriven dead letter that fails again is dead-lettered again', async (t) => {
      const { bus, calls } = await picky(t);
      await bus.publish([envelope('poison', 'Job')]);
      await eventually('a dead letter', async () => (await bus.deadLetters.list(100)).length > 0);
      const [dead] = await bus.deadLetters.list(100);
      assert.ok(dead);
      assert.equal(await bus.deadLetters.redrive(dead.id), true);
      await eventually('delivered again, to its last try', () => calls.get('poison') === 2 * retry.maxDeliveries);
      await eventually('a dead letter again', async () => (await bus.deadLetters.list(100)).length === 1);
      assert.match((await bus.deadLetters.list(100))[0]?.reason ?? '', /refused poison/);
    });

    void test('a discarded dead letter is gone', async (t) => {
      const { bus, calls } = await picky(t);
      await bus.publish([envelope('poison', 'Job')]);
      await eventually('a dead letter', async () => (await bus.deadLetters.list(100)).length > 0);
      const [dead] = await bus.deadLetters.list(100);
      assert.ok(dead);
      assert.equal(await bus.deadLetters.discard(dead.id), true);
      assert.equal(await bus.deadLetters.get(dead.id), undefined);
      assert.deepEqual(await bus.deadLetters.list(100), []);
      assert.equal(await bus.deadLetters.discard(dead.id), false);
      assert.equal(await bus.deadLetters.discard('picky:0'), false);
      await sleep(QUIET_MS);
      assert.equal(calls.get('poison'), retry.maxDeliveries, 'not delivered again');
    });

    void test('a message its consumer refuses as Undeliverable is dead-lettered at once, with the reason', async (t) => {
      const bus = await namespace(t).open();
      let calls = 0;
      await bus.subscribe('strict', ['Job'], async () => {
        calls++;
        throw new Undeliverable('malformed: lines must be a list');
      });
      await bus.publish([envelope('bad', 'Job')]);
      await eventually('a dead letter', async () => (await bus.deadLetters.list(100)).length > 0);
      await sleep(QUIET_MS);
      assert.equal(calls, 1, 'not delivered again');
      assert.match((await bus.deadLetters.list(100))[0]?.reason ?? '', /malformed: lines must be a list/);
    });

    void test('publish resolves once the messages are accepted', async (t) => {
      const space = namespace(t);
      if (broker === undefined) {
        // In-process, accepted means handled: the relay deletes from the outbox right after.
        const bus = await space.open();
        const committed: string[] = [];
        await bus.subscribe('slow', ['Job'], async (message) => {
          await sleep(30);
          committed.push(message.id);
        });
        await bus.publish([envelope('j1', 'Job'), envelope('j2', 'Job')]);
        assert.deepEqual(committed.sort(), ['j1', 'j2']);
        return;
      }
      // On a broker, accepted means stored: the messages wait there for a consumer that is away.
      const consumer = await space.open();
      await consumer.subscribe('away', ['Job'], async () => {});
      await consumer.close();
      const publisher = await space.open();
      for (const id of ['j1', 'j2', 'j3']) await publisher.publish([envelope(id, 'Job')]);
      assert.equal(await backend.waiting(space.ns, 'away', 'Job'), 3);
    });

    void test('a consumer that was away gets what was published meanwhile', { skip: broker === undefined && 'the in-process bus keeps nothing' }, async (t) => {
      const space = namespace(t);
      const first = await space.open();
      await first.subscribe('away', ['Job'], async () => {});
      await first.close();
      await (await space.open()).publish([envelope('j1', 'Job'), envelope('j2', 'Job')]);
      const got = recorder();
      await (await space.open()).subscribe('away', ['Job'], got.handler('away'));
      await eventually('both messages', () => got.total() >= 2);
      assert.deepEqual(got.ids('away'), ['j1', 'j2']);
    });

    void test('a declared consumer gets what was published before it subscribed, for the types declared', { skip: broker === undefined && 'the in-process bus keeps nothing' }, async (t) => {
      const space = namespace(t);
      const publisher = await space.open();
      await publisher.declare('later', ['Job']);
      await publisher.publish([envelope('j1', 'Job'), envelope('x1', 'Other')]);
      const got = recorder();
      await (await space.open()).subscribe('later', ['Job', 'Other'], got.handler('later'));
      await eventually('the declared message', () => got.total() >= 1);
      await sleep(QUIET_MS);
      assert.deepEqual(got.ids('later'), ['j1']);
    });

    void test('replicas of a consumer share its messages, each handled once', { skip: broker === undefined && 'one in-process bus per process' }, async (t) => {
      const space = namespace(t);
      const replicas = [await space.open(), await space.open()];
      const got = recorder();
      for (const [i, bus] of replicas.entries()) {
        const record = got.handler(`replica${i}`);
        await bus.subscribe('shared', ['Work'], async (message) => {
          await sleep(5); // a little work, so that one replica cannot take everything
          await record(message);
        });
      }
      const ids = Array.from({ length: 40 }, (_, i) => `w${String(i).padStart(2, '0')}`);
      // Partitioned buses share out their partitions among the replicas they see: let them.
      await sleep(QUIET_MS);
      // One publish each: what is published together may travel as one broker message, to one
      // replica; and one order each: a partitioned bus gives one order's messages to one replica.
      for (const id of ids) await replicas[0]!.publish([envelope(id, 'Work', { correlationId: `order-${id}` })]);
      await eventually('every message handled', () => got.total() >= ids.length);
      await sleep(QUIET_MS);
      const handled = [...got.ids('replica0'), ...got.ids('replica1')].sort();
      assert.deepEqual(handled, ids, 'each message handled by exactly one replica');
      assert.ok(got.ids('replica0').length > 0 && got.ids('replica1').length > 0, 'both replicas took a share');
    });

    void test('a message whose handler never finished comes back when its process goes away', { skip: broker === undefined && 'the in-process bus dies with its process' }, async (t) => {
      const space = namespace(t);
      const crashing = await space.open();
      let started = false;
      await crashing.subscribe('worker', ['Job'], () => {
        started = true;
        return new Promise<void>(() => {}); // hangs, as a process about to die
      });
      await crashing.publish([envelope('j1', 'Job')]);
      await eventually('the first delivery', () => started);
      await crashing.close();
      const got = recorder();
      await (await space.open()).subscribe('worker', ['Job'], got.handler('worker'));
      await eventually('the redelivery', () => got.total() >= 1);
      assert.deepEqual(got.ids('worker'), ['j1']);
    });

    void test('after the connection to the broker is cut, the bus reconnects and resumes', { skip: broker === undefined && 'no connection' }, async (t) => {
      const space = namespace(t);
      const proxy = await startProxy(broker!);
      // Registered after the namespace's hook, so it runs after the bus is closed.
      t.after(() => proxy.cut());
      const bus = await space.open({ host: '127.0.0.1', port: proxy.port });
      const got = recorder();
      await bus.subscribe('survivor', ['Ping'], got.handler('survivor'));
      await bus.publish([envelope('before', 'Ping')]);
      await eventually('the first message', () => got.total() >= 1);
      await proxy.cut();
      // During the outage publish may reject (the relay retries) or wait for the reconnect.
      const during = bus.publish([envelope('during', 'Ping')]).then(() => true, () => false);
      await sleep(300);
      await proxy.restore();
      if (!(await during)) await eventually('a publish after the reconnect', () => bus.publish([envelope('during', 'Ping')]).then(() => true, () => false));
      await eventually('the message published around the outage', () => got.ids('survivor').includes('during'), 20_000);
      await bus.publish([envelope('after', 'Ping')]);
      await eventually('the message after the outage', () => got.ids('survivor').includes('after'));
      assert.deepEqual([...new Set(got.ids('survivor'))], ['after', 'before', 'during']);
    });

    void test('connected() tells whether the broker is reachable', { skip: broker === undefined && 'no connection' }, async (t) => {
      const space = namespace(t);
      const proxy = await startProxy(broker!);
      t.after(() => proxy.cut());
      const bus = await space.open({ host: '127.0.0.1', port: proxy.port });
      await eventually('connected', () => bus.connected());
      await proxy.cut();
      await eventually('the outage noticed', () => !bus.connected());
      await proxy.restore();
      await eventually('connected again', () => bus.connected(), 20_000);
    });
  });
}

busConformance(inProcessBackend());
busConformance(rabbitBackend());
busConformance(rabbitBackend(4));
busConformance(natsBackend());
busConformance(natsBackend(4));
busConformance(redisBackend());
busConformance(redisBackend(4));
