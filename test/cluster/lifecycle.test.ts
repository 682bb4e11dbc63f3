/**
 * The order lifecycle on separate processes, 2 replicas of each of the five services behind the
 * gateway, in every saga style on PostgreSQL + RabbitMQ and Redis + Redis Streams (the
 * synchronous style: the store alone): the happy path to DELIVERED; the transitions that need a
 * service to stall (a reservation's time to live that fires while payment does not answer, a
 * cancel after the order is confirmed while fulfillment does not answer); 200 orders with cancels
 * and time to live racing their checkouts; bad input through the gateway.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SagaStyle } from '../../src/config.ts';
import { CourseClient } from '../../src/tools/client.ts';
import { lifecycleScenario } from '../../src/tools/lifecycle.ts';
import { cleanBroker, freshDatabase, randomName, SHARED, startCluster } from '../support/cluster.ts';

const profiles: readonly (readonly [SagaStyle, 'PostgreSQL' | 'Redis', string | undefined])[] = [
  ['orchestration', 'PostgreSQL', SHARED.rabbitmq],
  ['orchestration', 'Redis', SHARED.redis],
  ['choreography', 'PostgreSQL', SHARED.rabbitmq],
  ['choreography', 'Redis', SHARED.redis],
  ['synchronous', 'PostgreSQL', undefined],
  ['synchronous', 'Redis', undefined],
];

type Order = Readonly<{ order_id: string; status: string; amounts: { authorized: number; captured: number; refunded: number }; shipment: { tracking_number: string } | null; cancelled: { by: string } | null }>;

for (const [style, storeName, busUrl] of profiles) {
  const bus = busUrl === SHARED.rabbitmq ? 'RabbitMQ' : busUrl === SHARED.redis ? 'Redis Streams' : 'no bus';
  test(`${style}, ${storeName} + ${bus}, 2 replicas of each service: the lifecycle`, async () => {
    const database = storeName === 'PostgreSQL' ? await freshDatabase(SHARED.postgres) : { url: SHARED.redis, drop: async () => {} };
    const namespace = randomName('lc');
    const env = { ORDERLY_RESERVATION_TTL_MS: '1500', ORDERLY_FRAUD_MAX_AMOUNT: '1000' };
    const cluster = await startCluster({ storeUrl: database.url, ...(busUrl ? { busUrl } : {}), replicas: 2, namespace, style, env });
    const client = new CourseClient(cluster.url, 64);
    const api = async <T>(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const answer = await client.call(method, path, headers, body);
      return { status: answer.status, body: answer.body as T };
    };
    const order = (id: string) => api<Order>('GET', `/api/orders/${id}`).then((a) => a.body);
    const until = async (id: string, done: (o: Order) => boolean, what: string) => {
      for (let i = 0; i < 300; i++) {
        const o = await order(id);
        if (done(o)) return o;
        await sleep(100);
      }
      throw new Error(`order ${id}: ${what} did not happen: ${JSON.stringify(await order(id))}`);
    };
    const user = async (credit: number) => {
      const { user_id: id } = await client.post<{ user_id: string }>('/payment/create_user');
      await client.post(`/payment/add_funds/${id}/${credit}`);
      return id;
    };
    const item = async (stock: number) => {
      const { item_id: id } = await client.post<{ item_id: string }>('/stock/item/create/10');
      await client.post(`/stock/add/${id}/${stock}`);
      return id;
    };
    const place = async (userId: string, itemId: string) => {
      const created = await api<Order>('POST', '/api/orders', { user_id: userId, items: [{ item_id: itemId, quantity: 2 }] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.order_id;
    };
    try {
      // Starting replicas are not reported as down: the start-up output says nothing alarming.
      assert.doesNotMatch(cluster.logTail(), /health probe/, 'the gateway warned of replicas that were only starting');
      // The happy path, to DELIVERED.
      const u1 = await user(100);
      const i1 = await item(5);
      const o1 = await place(u1, i1);
      const confirmed = await api<Order>('POST', `/api/orders/${o1}/checkout`);
      assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
      const shipped = await until(o1, (o) => o.status === 'SHIPPED', 'shipping');
      const tracking = shipped.shipment?.tracking_number ?? '';
      assert.equal((await api('POST', `/api/orders/${o1}/cancel`, {})).status, 409, 'no cancel after shipping');
      for (const scan of ['picked_up', 'in_transit', 'delivered']) assert.equal((await api('POST', `/api/shipments/${tracking}/scans`, { scan })).status, 200);
      await until(o1, (o) => o.status === 'DELIVERED', 'delivery');

      // The reservation's time to live fires while payment does not answer: CANCELLED, the hold
      // voided and the stock released once payment answers again.
      const u2 = await user(100);
      const i2 = await item(5);
      const o2 = await place(u2, i2);
      pause(namespace, 'payment');
      try {
        assert.equal((await api('POST', `/api/orders/${o2}/checkout`, undefined, { prefer: 'respond-async' })).status, 202);
        await until(o2, (o) => o.status === 'CANCELLED', 'the time to live');
      } finally {
        resume(namespace, 'payment');
      }
      const expired = await until(o2, (o) => o.cancelled?.by === 'timeout', 'cancelled by the clock');
      assert.equal(expired.amounts.captured - expired.amounts.refunded, 0);
      await settleOrder(client, o2);
      assert.equal((await client.get<{ credit: number }>(`/payment/find_user/${u2}`)).credit, 100, 'the hold is voided');
      assert.equal((await client.get<{ stock: number }>(`/stock/find/${i2}`)).stock, 5, 'the stock is released');

      // A cancel after the order is confirmed, while fulfillment does not answer: CANCELLED, the
      // money refunded and the committed stock given back once fulfillment answers again.
      const u3 = await user(100);
      const i3 = await item(5);
      const o3 = await place(u3, i3);
      pause(namespace, 'fulfillment');
      try {
        assert.equal((await api('POST', `/api/orders/${o3}/checkout`)).status, 200);
        assert.equal((await order(o3)).status, 'CONFIRMED');
        const cancelled = await api<Order>('POST', `/api/orders/${o3}/cancel`, { reason: 'found it cheaper' });
        assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
        assert.equal(cancelled.body.status, 'CANCELLED');
      } finally {
        resume(namespace, 'fulfillment');
      }
      const refunded = await until(o3, (o) => o.amounts.refunded === 20, 'the refund');
      assert.equal(refunded.shipment, null, 'nothing shipped');
      await settleOrder(client, o3);
      assert.equal((await client.get<{ credit: number }>(`/payment/find_user/${u3}`)).credit, 100, 'refunded');
      assert.equal((await client.get<{ stock: number }>(`/stock/find/${i3}`)).stock, 5, 'the committed units are back');

      // Bad input through the gateway: a 4xx problem from each service's part of the API.
      for (const [method, path, body, code] of [
        ['POST', '/api/orders', { user_id: 'a b' }, 'invalid-body'],
        ['GET', '/api/orders/none', undefined, 'order-not-found'],
        ['POST', '/api/shipments/OP00000000000/scans', { scan: 'delivered' }, 'shipment-not-found'],
        ['POST', `/api/shipments/${tracking}/scans`, { scan: 'lost' }, 'invalid-body'],
        ['GET', '/api/customers/a%20b/notifications', undefined, 'invalid-id'],
      ] as const) {
        const answer = await api<{ code: string }>(method, path, body);
        assert.ok(answer.status >= 400 && answer.status < 500, `${method} ${path}: ${answer.status}`);
        assert.equal(answer.body.code, code, `${method} ${path}`);
      }

      // 200 orders, cancels and time to live racing their checkouts.
      const result = await lifecycleScenario(cluster.url, { users: 50, credit: 40, items: 20, stock: 12, price: 3, orders: 200, concurrency: 64, cancelShare: 0.3, cancelWithinMs: 300 });
      console.log(`${style}, ${storeName} + ${bus}:`, JSON.stringify(result.byStatus), 'cancelled by', JSON.stringify(result.cancelledBy), `${result.seconds.toFixed(1)} s`);
      assert.deepEqual(result.problems, []);
    } catch (error) {
      console.error(`cluster log:\n${cluster.logTail()}`);
      throw error;
    } finally {
      await client.close();
      await cluster.stop();
      if (busUrl) await cleanBroker(busUrl, namespace);
      if (storeName === 'Redis') await cleanBroker(SHARED.redis, namespace);
      await database.drop();
    }
  });
}

/** Freezes (SIGSTOP) every replica of a service of this cluster: it neither answers nor dies. */
function pause(namespace: string, service: string): void {
  signal(namespace, service, 'SIGSTOP');
}

function resume(namespace: string, service: string): void {
  signal(namespace, service, 'SIGCONT');
}

function signal(namespace: string, service: string, name: NodeJS.Signals): void {
  for (let i = 1; i <= 2; i++) {
    const pids = execFileSync('pgrep', ['-f', '--', `--replica ${service}-${i} --namespace ${namespace}`], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    for (const pid of pids) process.kill(pid, name);
  }
}

/** Waits until the order's saga has ended (every compensation done). */
async function settleOrder(client: CourseClient, orderId: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const { checkout } = await client.get<{ checkout: { status: string } | null }>(`/api/orders/${orderId}`);
    if (checkout?.status === 'completed' || checkout?.status === 'failed') return;
    await sleep(100);
  }
  throw new Error(`the saga of order ${orderId} did not end`);
}
