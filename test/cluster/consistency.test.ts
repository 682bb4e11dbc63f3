import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consistencyScenario } from '../../src/tools/consistency.ts';
import { cleanBroker, freshDatabase, randomName, SHARED, startCluster } from '../support/cluster.ts';

// Profiles covered: orchestration × PostgreSQL store × RabbitMQ bus, and × NATS JetStream bus;
// separate processes (npm run cluster) with 2 replicas of each service behind the gateway.
for (const [bus, busUrl] of [['RabbitMQ', SHARED.rabbitmq], ['NATS JetStream', SHARED.nats]] as const) {
  test(`course consistency scenario through the gateway, PostgreSQL + ${bus}, 2 replicas per service`, async () => {
    const database = await freshDatabase(SHARED.postgres);
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
    } finally {
      await cluster.stop();
      await cleanBroker(busUrl, namespace);
      await database.drop();
    }
  });
}
