import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Audit } from '../../src/domain/audit.ts';
import { CourseClient, mapLimit } from '../../src/tools/client.ts';
import { consistencyScenario } from '../../src/tools/consistency.ts';
import type { SagaStyle } from '../../src/config.ts';
import { assertSagasSaw } from '../support/sagas.ts';
import { cleanBroker, freshDatabase, randomName, SHARED, startCluster } from '../support/cluster.ts';

// Profiles covered (separate processes via npm run cluster, 2 replicas of each service behind
// the gateway unless said, competing consumers unless partitions are set), as style × store × bus:
type Scale = Readonly<{ replicas: number; partitions?: number }>;
const profiles: readonly (readonly [SagaStyle, 'PostgreSQL' | 'Redis', string, string | undefined, Scale?])[] = [
  ['orchestration', 'PostgreSQL', 'RabbitMQ', SHARED.rabbitmq],
  ['orchestration', 'PostgreSQL', 'NATS JetStream', SHARED.nats],
  ['orchestration', 'Redis', 'Redis Streams', SHARED.redis],
  ['orchestration', 'Redis', 'RabbitMQ', SHARED.rabbitmq],
  ['orchestration', 'PostgreSQL', 'Redis Streams', SHARED.redis],
  ['choreography', 'PostgreSQL', 'RabbitMQ', SHARED.rabbitmq],
  ['choreography', 'PostgreSQL', 'NATS JetStream', SHARED.nats],
  ['choreography', 'Redis', 'Redis Streams', SHARED.redis],
  ['orchestration', 'Redis', 'Redis Streams', SHARED.redis, { replicas: 1, partitions: 8 }],
  ['orchestration', 'Redis', 'Redis Streams', SHARED.redis, { replicas: 3, partitions: 8 }],
  ['choreography', 'Redis', 'Redis Streams', SHARED.redis, { replicas: 2, partitions: 8 }],
  ['orchestration', 'PostgreSQL', 'NATS JetStream', SHARED.nats, { replicas: 2, partitions: 8 }],
  ['choreography', 'PostgreSQL', 'NATS JetStream', SHARED.nats, { replicas: 2, partitions: 8 }],
  ['orchestration', 'PostgreSQL', 'RabbitMQ', SHARED.rabbitmq, { replicas: 2, partitions: 8 }],
  ['synchronous', 'PostgreSQL', 'no bus (HTTP calls)', undefined],
  ['synchronous', 'Redis', 'no bus (HTTP calls)', undefined],
];

for (const [style, storeName, bus, busUrl, { replicas, partitions } = { replicas: 2 }] of profiles) {
  const scale = `${replicas} replica${replicas > 1 ? 's' : ''} per service${partitions ? `, ${partitions} partitions` : ''}`;
  test(`${style}: course consistency scenario through the gateway, ${storeName} + ${bus}, ${scale}`, async () => {
    const database = storeName === 'PostgreSQL' ? await freshDatabase(SHARED.postgres) : { url: SHARED.redis, drop: async () => {} };
    const namespace = randomName('ct');
    const cluster = await startCluster({
      storeUrl: database.url, ...(busUrl ? { busUrl } : {}), replicas, namespace, style, ...(partitions ? { env: { ORDERLY_PARTITIONS: String(partitions) } } : {}),
    });
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
      if (storeName === 'Redis' && busUrl === SHARED.redis && style === 'orchestration' && !partitions) await assertCourseBatchInit(cluster.url);
    } catch (error) {
      console.error(`cluster log:\n${cluster.logTail()}`);
      throw error;
    } finally {
      await cluster.stop();
      if (busUrl) await cleanBroker(busUrl, namespace, partitions);
      if (storeName === 'Redis') await cleanBroker(SHARED.redis, namespace);
      await database.drop();
    }
  });
}

/**
 * The course stress test's `init_orders.py` sizes: 100,000 items, users and orders, each made by
 * one batch_init call (each service commits them in one transaction), then checkouts of some.
 */
async function assertCourseBatchInit(url: string): Promise<void> {
  const n = 100_000;
  const client = new CourseClient(url, 64);
  try {
    const before = await client.get<Audit>('/admin/audit');
    await client.post(`/stock/batch_init/${n}/1000000/1`);
    await client.post(`/payment/batch_init/${n}/1000000`);
    await client.post(`/orders/batch_init/${n}/${n}/${n}/1`);
    const orders = Array.from({ length: 200 }, (_, i) => String(i * 499));
    const statuses = await mapLimit(orders, 64, async (id) => (await client.call('POST', `/orders/checkout/${id}`)).status);
    assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every checkout of a batch order succeeds');
    const after = await client.get<Audit>('/admin/audit');
    assert.equal(after.stock.items - before.stock.items, n);
    assert.equal(after.payment.users - before.payment.users, n);
    assert.equal(after.orders.count - before.orders.count, n);
    const paid = after.orders.paid_amount - before.orders.paid_amount;
    assert.ok(paid > 0);
    assert.equal(after.payment.credit - before.payment.credit, n * 1_000_000 - paid, 'the credit taken is what the paid orders cost');
    assert.equal(after.stock.available - before.stock.available, n * 1_000_000 - (after.orders.paid_units - before.orders.paid_units), 'the stock taken is what the paid orders hold');
  } finally {
    await client.close();
  }
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
