import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { scanAll, type Commit, type Store } from '../../src/ports/store.ts';
import { envelope, randomName, sleep } from './helpers.ts';
import { pgliteBackend, postgresBackend, redisBackend, sqliteBackend, type Database, type StoreBackend } from './storeBackends.ts';

function commit<T = undefined>(parts: Partial<Commit<T>>): Commit<T> {
  return { writes: new Map(), consumed: [], outbox: [], cancel: [], result: undefined as T, ...parts };
}

const ids = (messages: readonly { id: string }[]) => messages.map((m) => m.id);

function storeConformance(backend: StoreBackend): void {
  void describe(`Store on ${backend.name}`, () => {
    let db: Database;
    const opened: Store[] = [];
    before(async () => {
      db = await backend.open();
    });
    after(async () => {
      for (const store of opened) await store.close();
      await db.destroy();
    });

    async function open(service = randomName('s'), replica = false): Promise<Store> {
      const store = await db.store(service, replica);
      opened.push(store);
      return store;
    }

    async function counter(store: Store, key: string): Promise<unknown> {
      return (await store.read([key])).get(key);
    }

    void test('commits documents, consumed ids and outbox together', async () => {
      const store = await open();
      const result = await store.transact(['a'], ['m1'], (snapshot) => {
        assert.equal(snapshot.docs.size, 0);
        assert.equal(snapshot.seen.size, 0);
        return commit({ writes: new Map<string, unknown>([['a', { n: 1 }], ['b', 'x']]), consumed: ['m1'], outbox: [envelope('e1'), envelope('e2')], result: 42 });
      });
      assert.equal(result, 42);
      assert.deepEqual(await store.read(['a', 'b', 'missing']), new Map<string, unknown>([['a', { n: 1 }], ['b', 'x']]));
      assert.deepEqual(ids(await store.outbox()), ['e1', 'e2']);
      const seen = await store.transact([], ['m1', 'm2'], (snapshot) => commit({ result: [...snapshot.seen] }));
      assert.deepEqual(seen, ['m1']);
    });

    void test('a commit of thousands of documents and messages is whole, and loses no update to the last of them', async () => {
      const store = await open();
      const n = 2500;
      const keys = Array.from({ length: n }, (_, i) => `k${String(i).padStart(4, '0')}`);
      const consumed = keys.map((key) => `m-${key}`);
      await store.transact(keys, consumed, () => commit({
        writes: new Map(keys.map((key, i) => [key, i])),
        consumed,
        outbox: keys.map((key) => envelope(`e-${key}`)),
      }));
      assert.equal((await store.read(keys)).size, n);
      assert.equal((await store.scan('k', n + 1)).length, n);
      assert.equal((await store.transact([], consumed, (s) => commit({ result: s.seen.size }))), n);
      // One transaction adds 1000 to the last key while another adds 1 to every key: neither is lost.
      const last = keys.at(-1)!;
      const add = (names: readonly string[], k: number) => store.transact(names, [], (snapshot) =>
        commit({ writes: new Map(names.map((key) => [key, (snapshot.docs.get(key) as number) + k])) }));
      await Promise.all([add([last], 1000), add(keys, 1)]);
      const after = await store.read(keys);
      assert.equal(after.get(last), n - 1 + 1001);
      assert.equal(after.get(keys[0]!), 1);
      await store.transact([], [], () => commit({ cancel: keys.map((key) => `e-${key}`) }));
      assert.deepEqual(await store.outbox(), []);
    });

    void test('a commit of 100,000 documents (the course\'s batch_init) lands whole and reads back', async () => {
      const store = await open();
      const n = 100_000;
      const keys = Array.from({ length: n }, (_, i) => `item:${String(i).padStart(6, '0')}`);
      const doc = (i: number) => ({ stock: i, price: 10 });
      // Blind writes, as batch_init makes, then a transaction that reads every one of them.
      await store.transact([], ['init'], () => commit({ writes: new Map(keys.map((key, i) => [key, doc(i)])), consumed: ['init'] }));
      const total = await store.transact(keys, [], (snapshot) => {
        let sum = 0;
        for (const value of snapshot.docs.values()) sum += (value as { stock: number }).stock;
        return commit({ writes: new Map([[keys[0] ?? '', doc(-1)]]), result: { size: snapshot.docs.size, sum } });
      });
      assert.deepEqual(total, { size: n, sum: (n * (n - 1)) / 2 });
      const read = await store.read(keys);
      assert.equal(read.size, n);
      assert.deepEqual(read.get(keys[0] ?? ''), doc(-1));
      assert.deepEqual(read.get(keys[n - 1] ?? ''), doc(n - 1));
      let scanned = 0;
      for await (const _ of scanAll(store, 'item:')) scanned++;
      assert.equal(scanned, n);
    });

    void test('a throw inside decide commits nothing', async () => {
      const store = await open();
      await store.transact(['a'], [], () => commit({ writes: new Map([['a', 1]]), outbox: [envelope('e1')] }));
      const boom = new Error('boom');
      await assert.rejects(
        store.transact(['a'], ['m1'], () => {
          throw boom;
        }),
        (error) => error === boom,
      );
      assert.equal(await counter(store, 'a'), 1);
      assert.deepEqual(ids(await store.outbox()), ['e1']);
      assert.deepEqual(await store.transact([], ['m1'], (s) => commit({ result: s.seen.size })), 0);
    });

    void test('of many transactions asked for at once, one that throws is rolled back alone', async () => {
      const store = await open();
      const boom = new Error('boom');
      const runs = Array.from({ length: 10 }, (_, i) =>
        store.transact(['n'], [`m${i}`], (snapshot) => {
          if (i === 4) throw boom;
          const n = ((snapshot.docs.get('n') as number | undefined) ?? 0) + 1;
          return commit({ writes: new Map<string, unknown>([['n', n], [`d${i}`, i]]), consumed: [`m${i}`], outbox: [envelope(`e${i}`)], result: n });
        }),
      );
      const results = await Promise.allSettled(runs);
      assert.deepEqual(results.map((r) => r.status), results.map((_, i) => (i === 4 ? 'rejected' : 'fulfilled')));
      const counts = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])).sort((x, y) => x - y);
      assert.deepEqual(counts, [1, 2, 3, 4, 5, 6, 7, 8, 9], 'each saw the ones committed before it');
      assert.equal(await counter(store, 'n'), 9);
      assert.equal((await store.read(['d4'])).size, 0);
      assert.deepEqual(ids(await store.outbox()).sort(), ['e0', 'e1', 'e2', 'e3', 'e5', 'e6', 'e7', 'e8', 'e9']);
      assert.deepEqual(await store.transact([], ['m3', 'm4'], (s) => commit({ result: [...s.seen] })), ['m3']);
    });

    void test('a commit failing part-way rolls back the writes before it', async () => {
      const service = randomName('s');
      const store = await open(service);
      await store.transact(['a'], [], () => commit({ writes: new Map([['a', 1]]) }));
      const poisoned = await db.failLate(service);
      await assert.rejects(store.transact(['a'], ['m1'], () => commit({ writes: new Map([['a', 2], ['b', 3]]), consumed: ['m1'], outbox: [poisoned] })));
      assert.deepEqual(await store.read(['a', 'b']), new Map([['a', 1]]));
      assert.deepEqual(await store.outbox(), []);
      assert.deepEqual(await store.transact([], ['m1'], (s) => commit({ result: s.seen.size })), 0);
    });

    void test('concurrent transactions from two replicas lose no update and consume each message once', async () => {
      const service = randomName('s');
      // Both replicas start at once on a new schema: their migrations must not collide.
      const replicas = await Promise.all([open(service), open(service, true)]);
      const messages = Array.from({ length: 30 }, (_, i) => `m${i}`);
      let decisions = 0;
      // Every message reaches both replicas at once, as a redelivery to a competing consumer would.
      const runs = messages.flatMap((id) =>
        replicas.map((store) =>
          store.transact(['counter'], [id], (snapshot) => {
            decisions++;
            if (snapshot.seen.has(id)) return commit<number | undefined>({ result: undefined });
            const next = ((snapshot.docs.get('counter') as number | undefined) ?? 0) + 1;
            return commit({ writes: new Map([['counter', next]]), consumed: [id], result: next });
          }),
        ),
      );
      const results = await Promise.all(runs);
      const applied = results.filter((r) => r !== undefined).sort((x, y) => x - y);
      assert.deepEqual(applied, Array.from({ length: messages.length }, (_, i) => i + 1), 'each increment saw the one before it');
      assert.equal(await counter(replicas[0]!, 'counter'), messages.length);
      assert.ok(decisions >= runs.length);
    });

    void test('of transactions consuming one message at once, one commits and the others see it consumed', async () => {
      const service = randomName('s');
      const replicas = [await open(service), await open(service, true)];
      // No document read in common: only the inbox keeps a second one from committing.
      const runs = Array.from({ length: 10 }, (_, i) =>
        replicas[i % 2]!.transact([], ['m1'], (snapshot) =>
          snapshot.seen.has('m1')
            ? commit<string | undefined>({ result: undefined })
            : commit({ writes: new Map([[`d${i}`, i]]), consumed: ['m1'], outbox: [envelope(`out${i}`)], result: `out${i}` }),
        ),
      );
      const committed = (await Promise.all(runs)).filter((r) => r !== undefined);
      assert.equal(committed.length, 1);
      assert.deepEqual(ids(await replicas[0]!.outbox()), committed);
      assert.equal((await replicas[1]!.read(Array.from({ length: 10 }, (_, i) => `d${i}`))).size, 1);
    });

    void test('a replica decides on what another replica committed since it last read a document', async () => {
      const service = randomName('s');
      const [a, b] = [await open(service), await open(service, true)];
      const add = (store: Store, n: number) => store.transact(['x'], [], (snapshot) => {
        const x = (snapshot.docs.get('x') as number | undefined) ?? 0;
        return commit({ writes: new Map([['x', x + n]]), result: x });
      });
      await add(a, 1);
      await add(b, 10);
      assert.equal(await add(a, 100), 11, 'a saw b\'s write');
      await add(b, 1000);
      // Nothing written: no commit checks what it saw, and still it saw the latest.
      assert.equal(await a.transact(['x'], [], (snapshot) => commit({ result: snapshot.docs.get('x') })), 1111);
      await b.transact([], [], () => commit({ consumed: ['m1'] }));
      assert.equal(await a.transact(['x'], ['m1'], (snapshot) => commit({ result: snapshot.seen.has('m1') })), true);
    });

    void test('a document a replica keeps (ORDERLY_CACHE_DOCS) and another replica changed is read afresh, even by a transaction that writes nothing; a message the other consumed is skipped', async () => {
      const service = randomName('s');
      const [a, b] = [await open(service), await open(service, true)];
      await a.transact(['y', 'z'], [], () => commit({ writes: new Map([['y', 1], ['z', 1]]) }));
      await b.transact(['y'], [], (snapshot) => commit({ writes: new Map([['y', (snapshot.docs.get('y') as number) + 1]]) }));
      assert.equal(await a.transact(['y'], [], (snapshot) => commit({ result: snapshot.docs.get('y') })), 2, 'a saw b\'s write');
      await b.transact([], [], () => commit({ consumed: ['m2'] }));
      const outcome = await a.transact(['z'], ['m2'], (snapshot) => snapshot.seen.has('m2')
        ? commit({ result: 'skipped' })
        : commit({ writes: new Map([['z', 100]]), consumed: ['m2'], result: 'applied' }));
      assert.equal(outcome, 'skipped');
      assert.equal(await counter(a, 'z'), 1);
    });

    void test('a document another replica made is there for one that never read it (a cache guesses unread documents missing), whether it is updated, only read or deleted', async () => {
      const service = randomName('s');
      const [a, b] = [await open(service), await open(service, true)];
      await a.transact(['u', 'v', 'w'], [], () => commit({ writes: new Map([['u', 1], ['v', 2], ['w', 3]]) }));
      const add = (key: string) => b.transact([key], [], (snapshot) => {
        const n = snapshot.docs.get(key) as number | undefined;
        return commit({ writes: new Map([[key, (n ?? 0) + 10]]), result: n });
      });
      assert.equal(await add('u'), 1, 'an update sees the document');
      assert.equal(await counter(b, 'u'), 11);
      assert.equal(await b.transact(['v'], [], (snapshot) => commit({ result: snapshot.docs.get('v') })), 2, 'a read sees it');
      await b.transact(['w'], [], (snapshot) => commit(snapshot.docs.has('w') ? { writes: new Map([['w', null]]) } : {}));
      assert.equal((await a.read(['w'])).size, 0, 'a delete of what is there deletes it');
      assert.equal(await counter(a, 'u'), 11);
    });

    void test('a commit lands only while the documents it read and did not write are unchanged (no write skew)', async () => {
      const service = randomName('s');
      const replicas = [await open(service), await open(service, true)];
      // Each round, two transactions read both documents and, if both are still 0, set their
      // own to 1. Run one after the other, only the first writes; so must it be when they race.
      for (let round = 0; round < 20; round++) {
        const [x, y] = [`x${round}`, `y${round}`];
        await replicas[0]!.transact([], [], () => commit({ writes: new Map([[x, 0], [y, 0]]) }));
        await Promise.all([x, y].map((own, i) => replicas[i]!.transact([x, y], [], (snapshot) => {
          const sum = ((snapshot.docs.get(x) as number | undefined) ?? 0) + ((snapshot.docs.get(y) as number | undefined) ?? 0);
          return sum === 0 ? commit({ writes: new Map([[own, 1]]) }) : commit({});
        })));
        const docs = await replicas[0]!.read([x, y]);
        assert.equal([...docs.values()].filter((v) => v === 1).length, 1, `round ${round}: ${JSON.stringify([...docs])}`);
      }
    });

    void test('blind writes replace whatever is there; null deletes a read document', async () => {
      const store = await open();
      await store.transact(['x'], [], () => commit({ writes: new Map([['x', 1]]) }));
      await store.transact([], [], () => commit({ writes: new Map([['x', 2], ['y', 3]]) }));
      assert.deepEqual(await store.read(['x', 'y']), new Map([['x', 2], ['y', 3]]));
      await store.transact(['x'], [], () => commit({ writes: new Map([['x', null]]) }));
      assert.deepEqual(await store.read(['x', 'y']), new Map([['y', 3]]));
    });

    void test('null deletes a document that was not read', async () => {
      const store = await open();
      await store.transact([], [], () => commit({ writes: new Map([['y', 3]]) }));
      await store.transact([], [], () => commit({ writes: new Map([['y', null]]) }));
      assert.deepEqual(await store.read(['y']), new Map());
    });

    void test('the outbox keeps committed messages in order until delivered or cancelled', async () => {
      const store = await open();
      await store.transact([], [], () => commit({ outbox: [envelope('e1'), envelope('timer', 'Timer', { deliverAt: 1_800_000_000_000 })] }));
      await store.transact([], [], () => commit({ outbox: [envelope('e2'), envelope('e3')] }));
      const outbox = await store.outbox();
      assert.deepEqual(ids(outbox), ['e1', 'timer', 'e2', 'e3']);
      assert.deepEqual(outbox[1], envelope('timer', 'Timer', { deliverAt: 1_800_000_000_000 }), 'an envelope comes back as it went in');
      await store.delivered(['e1', 'e3']);
      assert.deepEqual(ids(await store.outbox()), ['timer', 'e2']);
      await store.transact([], [], () => commit({ cancel: ['timer'] }));
      assert.deepEqual(ids(await store.outbox()), ['e2']);
    });

    void test('the outbox keeps a message\'s trace context (traceparent)', async () => {
      const store = await open();
      const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      await store.transact([], [], () => commit({ outbox: [envelope('e1', 'Tested', { traceparent }), envelope('e2')] }));
      const kept = await store.outbox();
      assert.deepEqual(kept.map((m) => m.traceparent), [traceparent, undefined]);
      assert.deepEqual(kept[0], envelope('e1', 'Tested', { traceparent }));
    });

    void test('deadLetter keeps the message with its consumer and the error', async () => {
      const service = randomName('s');
      const store = await open(service);
      const message = envelope('poison', 'Tested', { payload: { amount: 1250 } });
      await store.deadLetter(message, 'stock', 'Error: out of luck');
      await store.deadLetter(message, 'stock', 'Error: out of luck');
      assert.deepEqual(await db.deadLetters(service), [{ consumer: 'stock', error: 'Error: out of luck', envelope: message }]);
    });

    void test('dead letters are listed by consumer, oldest first, kept again with a newer reason, and dropped one by one', async () => {
      const store = await open();
      const first = envelope('poison', 'Tested', { payload: { amount: 1250 } });
      const second = envelope('venom', 'Tested');
      await store.deadLetter(first, 'stock', 'Error: first');
      await new Promise((resolve) => setTimeout(resolve, 5));
      await store.deadLetter(second, 'stock', 'Error: second');
      await store.deadLetter(first, 'payment', 'Error: elsewhere');
      const listed = await store.deadLetters('stock', 10);
      assert.deepEqual(listed.map((d) => [d.consumer, d.message, d.error]), [['stock', first, 'Error: first'], ['stock', second, 'Error: second']]);
      assert.ok(listed.every((d) => Math.abs(d.at - Date.now()) < 60_000), 'kept with the time');
      assert.deepEqual((await store.deadLetters('stock', 1)).map((d) => d.message.id), ['poison']);
      assert.deepEqual((await store.deadLetters('stock', 10, 'venom')).map((d) => d.message.id), ['venom']);
      await store.deadLetter(first, 'stock', 'Error: again');
      assert.equal((await store.deadLetters('stock', 10, 'poison'))[0]?.error, 'Error: again');
      assert.equal(await store.dropDeadLetter('stock', 'poison'), true);
      assert.equal(await store.dropDeadLetter('stock', 'poison'), false);
      assert.deepEqual((await store.deadLetters('stock', 10)).map((d) => d.message.id), ['venom']);
      assert.deepEqual((await store.deadLetters('payment', 10)).map((d) => d.message.id), ['poison']);
    });

    void test('pruneInbox forgets only entries older than asked', async () => {
      const store = await open();
      await store.transact([], [], () => commit({ consumed: ['m1', 'm2'] }));
      assert.equal(await store.pruneInbox(60_000), 0);
      await sleep(30);
      assert.equal(await store.pruneInbox(10), 2);
      assert.equal(await store.transact([], ['m1', 'm2'], (s) => commit({ result: s.seen.size })), 0);
    });

    void test('scan pages through documents by prefix in key order', async () => {
      const store = await open();
      const docs = new Map<string, unknown>([['a:2', 2], ['a:1', 1], ['a:3', 3], ['b:1', 'b'], ['x_1', 'x'], ['xa1', 'not x_']]);
      await store.transact([], [], () => commit({ writes: docs }));
      assert.deepEqual(await store.scan('a:', 2), [['a:1', 1], ['a:2', 2]]);
      assert.deepEqual(await store.scan('a:', 2, 'a:2'), [['a:3', 3]]);
      assert.deepEqual(await store.scan('x_', 10), [['x_1', 'x']], 'a prefix is literal, not a LIKE pattern');
      assert.deepEqual(await store.scan('c:', 10), []);
    });

    void test('messages delivered before a close are gone from the outbox when the store is reopened; the others stay', async () => {
      const service = randomName('s');
      const first = await open(service);
      await first.transact([], [], () => commit({ outbox: [envelope('e1'), envelope('e2'), envelope('e3')] }));
      await first.delivered(['e2']);
      await first.transact([], [], () => commit({ writes: new Map([['a', 1]]) }));
      await first.delivered(['e1']);
      await first.close();
      await db.restart();
      const again = await open(service);
      assert.deepEqual(ids(await again.outbox()), ['e3']);
    });

    void test('a store reopened on the same data keeps everything; migrations run once', async () => {
      const service = randomName('s');
      const first = await open(service);
      await first.transact(['a'], ['m1'], () => commit({ writes: new Map([['a', 'kept']]), consumed: ['m1'], outbox: [envelope('e1')] }));
      await first.close();
      await db.restart();
      const [again] = await Promise.all([open(service), open(service, true)]);
      assert.equal(await counter(again, 'a'), 'kept');
      assert.deepEqual(ids(await again.outbox()), ['e1']);
      assert.equal(await again.transact([], ['m1'], (s) => commit({ result: s.seen.size })), 1);
      const versions = await db.layout(service);
      assert.deepEqual(versions, versions.map((_, i) => i + 1));
      assert.ok(versions.length >= 1);
    });
  });
}

storeConformance(sqliteBackend);
storeConformance(pgliteBackend);
storeConformance(postgresBackend);
storeConformance(redisBackend);
