/**
 * Saga versions: checkouts start under the course checkout (version 1), the system is killed
 * in the middle of them and started again with the lifecycle checkout (version 2) as current.
 * Every saga that was in flight finishes under version 1 (paid and confirmed, not shipped);
 * the checkouts started after the upgrade run version 2 (shipped); money and stock conserve.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourseClient, mapLimit } from '../../src/tools/client.ts';
import { settle } from './helpers.ts';
import { freePort, startOrderly, stop } from '../support/child.ts';

const USERS = 200;
const CREDIT = 5;
const ITEMS = 20;
const STOCK = 15;
const ORDERS = 400;

type Saga = Readonly<{ saga_id: string; order_id: string; status: string; ended_at: string | null; definition: { name: string; version: number } }>;

for (const style of ['orchestration', 'choreography', 'synchronous'] as const) {
  await test(`${style}: sagas in flight under checkout v1 finish under v1 after a restart with v2 current; new ones run v2`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orderly-versions-'));
    const port = await freePort();
    const env = { ORDERLY_DATA_DIR: dir, SAGA_STYLE: style, ORDERLY_SAGA_STEP_TIMEOUT_MS: '2000' };
    let child = await startOrderly({ ...env, ORDERLY_CHECKOUT_VERSION: '1' }, port);
    const client = new CourseClient(`http://127.0.0.1:${port}`, 48);
    try {
      await client.post(`/payment/batch_init/${USERS}/${CREDIT}`);
      await client.post(`/stock/batch_init/${ITEMS}/${STOCK}/1`);
      await client.post(`/orders/batch_init/${ORDERS}/${ITEMS}/${USERS}/1`);
      const ids = Array.from({ length: ORDERS }, (_, i) => String(i));
      const answered = new Set<string>();
      const firing = mapLimit(ids, 32, async (id) => {
        try {
          await client.call('POST', `/orders/checkout/${id}`);
          answered.add(id);
        } catch {
          // the process died under the request
        }
      });
      for (let waited = 0; answered.size < ORDERS / 4 && waited < 30_000; waited += 10) await sleep(10);
      await stop(child, 'SIGKILL');
      await firing;
      const upgradedAt = Date.now();
      child = await startOrderly(env, port); // version 2 is the default
      await settle(client);
      await mapLimit(ids.filter((id) => !answered.has(id)), 32, (id) => client.call('POST', `/orders/checkout/${id}`));
      const final = await settle(client);

      const sagas: Saga[] = [];
      for (let after = ''; ;) {
        const page = await client.get<{ sagas: Saga[]; next: string | null }>(`/sagas?limit=1000${after ? `&after=${after}` : ''}`);
        sagas.push(...page.sagas);
        if (page.next === null) break;
        after = page.next;
      }
      const v1 = sagas.filter((s) => s.definition.version === 1);
      const v2 = sagas.filter((s) => s.definition.version === 2);
      console.log(`${style}: ${v1.length} sagas under v1 (${v1.filter((s) => s.ended_at !== null && Date.parse(s.ended_at) >= upgradedAt).length} finished after the upgrade), ${v2.length} under v2`);
      assert.ok(v1.length > 0 && v2.length > 0, 'both versions ran');
      assert.ok(v1.some((s) => s.ended_at !== null && Date.parse(s.ended_at) >= upgradedAt), 'some v1 sagas were in flight at the upgrade and finished after it');
      assert.ok(sagas.every((s) => s.status === 'completed' || s.status === 'failed'), 'every saga ended');
      for (const saga of [...v1.filter((s) => s.status === 'completed').slice(0, 20), ...v2.filter((s) => s.status === 'completed').slice(0, 20)]) {
        const order = await client.get<{ status: string; shipment: unknown }>(`/api/orders/${saga.order_id}`);
        if (saga.definition.version === 1) assert.deepEqual([order.status, order.shipment], ['CONFIRMED', null], `a v1 checkout ends confirmed, unshipped (${saga.saga_id})`);
        else assert.equal(order.status, 'SHIPPED', `a v2 checkout ships (${saga.saga_id})`);
      }
      assert.equal(final.payment.credit + final.orders.paid_amount, USERS * CREDIT, 'money conserves');
      assert.equal(final.stock.available + final.orders.paid_units, ITEMS * STOCK, 'stock conserves');
      assert.equal(final.payment.held + final.stock.reserved, 0, 'nothing held');
      assert.equal(final.fulfillment.shipments, v2.filter((s) => s.status === 'completed').length, 'one shipment per completed v2 checkout, none for v1');
    } finally {
      await client.close();
      await stop(child, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
