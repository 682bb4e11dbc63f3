import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consistencyScenario } from '../../src/tools/consistency.ts';
import { cleanBroker, freshDatabase, randomName, SHARED, startCluster } from '../support/cluster.ts';

// Profiles covered (orchestration, separate processes via npm run cluster, 2 replicas of each
// service behind the gateway): PostgreSQL + RabbitMQ, PostgreSQL + NATS JetStream, Redis +
// Redis Streams, and the mixes Redis + RabbitMQ and PostgreSQL + Redis Streams.
const profiles = [
  ['PostgreSQL', 'RabbitMQ', SHARED.rabbitmq],
  ['PostgreSQL', 'NATS JetStream', SHARED.nats],
  ['Redis', 'Redis Streams', SHARED.redis],
  ['Redis', 'RabbitMQ', SHARED.rabbitmq],
  ['PostgreSQL', 'Redis Streams', SHARED.redis],
] as const;

for (const [storeName, bus, busUrl] of profiles) {
  test(`course consistency scenario through the gateway, ${storeName} + ${bus}, 2 replicas per service`, async () => {
    const database = storeName === 'PostgreSQL' ? await freshDatabase(SHARED.postgres) : { url: SHARED.redis, drop: async () => {} };
    const namespace = randomName('ct');
    const cluster = await startCluster({ storeUrl: database.url, busUrl, replicas: 2, namespace });
    try {
      const result = await consistencyScenario(cluster.url, { stock: 100, users: 1000, concurrency: 100 });
      assert.equal(result.succeeded, 100, 'exactly 100 checkouts answer 2xx');
      assert.equal(result.failed, 900);
      assert.deepEqual(result.otherStatuses, []);
      assert.equal(result.stock, 0);
      assert.equal(result.totalCredit, 900);
      assert.equal(result.paidOrders, 100);
      assert.deepEqual(result.mismatches, [], 'the 2xx orders are exactly the paid ones');
    } catch (error) {
      console.error(`cluster log:\n${cluster.logTail()}`);
      throw error;
    } finally {
      await cluster.stop();
      await cleanBroker(busUrl, namespace);
      if (storeName === 'Redis') await cleanBroker(SHARED.redis, namespace);
      await database.drop();
    }
  });
}
