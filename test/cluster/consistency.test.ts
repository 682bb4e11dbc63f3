import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consistencyScenario } from '../../src/tools/consistency.ts';
import type { SagaStyle } from '../../src/config.ts';
import { assertSagasSaw } from '../support/sagas.ts';
import { cleanBroker, freshDatabase, randomName, SHARED, startCluster } from '../support/cluster.ts';

// Profiles covered (separate processes via npm run cluster, 2 replicas of each service behind
// the gateway), as style × store × bus:
const profiles: readonly (readonly [SagaStyle, 'PostgreSQL' | 'Redis', string, string | undefined])[] = [
  ['orchestration', 'PostgreSQL', 'RabbitMQ', SHARED.rabbitmq],
  ['orchestration', 'PostgreSQL', 'NATS JetStream', SHARED.nats],
  ['orchestration', 'Redis', 'Redis Streams', SHARED.redis],
  ['orchestration', 'Redis', 'RabbitMQ', SHARED.rabbitmq],
  ['orchestration', 'PostgreSQL', 'Redis Streams', SHARED.redis],
  ['choreography', 'PostgreSQL', 'RabbitMQ', SHARED.rabbitmq],
  ['choreography', 'PostgreSQL', 'NATS JetStream', SHARED.nats],
  ['choreography', 'Redis', 'Redis Streams', SHARED.redis],
  ['synchronous', 'PostgreSQL', 'no bus (HTTP calls)', undefined],
  ['synchronous', 'Redis', 'no bus (HTTP calls)', undefined],
];

for (const [style, storeName, bus, busUrl] of profiles) {
  test(`${style}: course consistency scenario through the gateway, ${storeName} + ${bus}, 2 replicas per service`, async () => {
    const database = storeName === 'PostgreSQL' ? await freshDatabase(SHARED.postgres) : { url: SHARED.redis, drop: async () => {} };
    const namespace = randomName('ct');
    const cluster = await startCluster({ storeUrl: database.url, ...(busUrl ? { busUrl } : {}), replicas: 2, namespace, style });
    try {
      const result = await consistencyScenario(cluster.url, { stock: 100, users: 1000, concurrency: 100 });
      assert.equal(result.succeeded, 100, 'exactly 100 checkouts answer 2xx');
      assert.equal(result.failed, 900);
      assert.deepEqual(result.otherStatuses, []);
      assert.equal(result.stock, 0);
      assert.equal(result.totalCredit, 900);
      assert.equal(result.paidOrders, 100);
      assert.deepEqual(result.mismatches, [], 'the 2xx orders are exactly the paid ones');
      await assertSagasSaw(cluster.url, { total: 1000, completed: 100 });
      if (style === 'synchronous') await assertSagaCallsNeedTheToken(cluster.url);
    } catch (error) {
      console.error(`cluster log:\n${cluster.logTail()}`);
      throw error;
    } finally {
      await cluster.stop();
      if (busUrl) await cleanBroker(busUrl, namespace);
      if (storeName === 'Redis') await cleanBroker(SHARED.redis, namespace);
      await database.drop();
    }
  });
}

/** Nobody but the order service may call a participant's saga steps (a release mid-checkout would break its accounts). */
async function assertSagaCallsNeedTheToken(url: string): Promise<void> {
  const release = [{ id: 'x', type: 'ReleaseStock', sagaId: '1.x', step: 'reserveStock', correlationId: '1', causationId: '', at: 0, payload: { lines: [['1', 1]] } }];
  for (const headers of [{}, { 'x-orderly-token': 'not-the-deployment-token' }]) {
    const res = await fetch(`${url}/stock/_saga`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(release) });
    assert.equal(res.status, 403, `a saga call with ${JSON.stringify(headers)} is refused`);
    assert.equal(((await res.json()) as { code: string }).code, 'forbidden');
  }
}
