import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { redisBus, redisNames } from '../../src/adapters/redis/bus.ts';
import { openRedisStore } from '../../src/adapters/redis/store.ts';
import type { Envelope } from '../../src/core/message.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { cleanBroker } from '../support/cluster.ts';
import { envelope, eventually, randomName } from './helpers.ts';

const REDIS = process.env.ORDERLY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const log = createLogger('silent');

// The Redis store with the Redis Streams bus on the same server: no relay between them.
test('a Redis store whose bus is on the same server appends messages due now to their streams in the commit', async () => {
  const namespace = randomName('rs');
  const redis = new Redis(REDIS);
  const store = await openRedisStore(redis, 'sender', { prefix: `${namespace}:sender:`, log, streams: redisNames(namespace).streamOf });
  const bus = await redisBus({ url: REDIS, namespace, log });
  try {
    assert.equal(store.sendsOnCommit, true);
    await bus.declare('receiver', ['Sent']);
    const received: Envelope[] = [];
    await bus.subscribe('receiver', ['Sent'], async (m) => {
      received.push(m);
    });
    const now = envelope('now', 'Sent');
    const later = envelope('later', 'Sent', { deliverAt: Date.now() + 60_000 });
    await store.transact(['doc'], [], () => ({ writes: new Map([['doc', { n: 1 }]]), consumed: [], outbox: [now, later], cancel: [], result: undefined }));

    await eventually('the message due now arrives with no relay', () => received.length === 1);
    assert.equal(received[0]?.id, 'now');
    assert.deepEqual((await store.outbox()).map((m) => m.id), ['later'], 'only the delayed message waits in the outbox');

    // A commit that conflicts appends nothing to the stream either.
    const sent = redisNames(namespace).streamOf(envelope('retried', 'Sent'));
    const before = await redis.xlen(sent);
    let first = true;
    let attempts = 0;
    await store.transact(['doc'], [], () => {
      attempts++;
      // Another writer changes the document between this attempt's read and its commit (the
      // same connection, so Redis runs it before the commit script).
      if (first) void redis.hset(`${namespace}:sender:versions`, 'doc', '999');
      first = false;
      return { writes: new Map([['doc', { n: 2 }]]), consumed: [], outbox: [envelope('retried', 'Sent')], cancel: [], result: undefined };
    });
    assert.equal(attempts, 2, 'the first attempt conflicted');
    await eventually('the retried commit sends its message once', () => received.length === 2);
    assert.equal(await redis.xlen(sent), before + 1, 'the conflicting attempt appended nothing');
  } finally {
    await bus.close();
    await store.close();
    await cleanBroker(REDIS, namespace);
    redis.disconnect();
  }
});
