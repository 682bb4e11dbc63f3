import assert from 'node:assert/strict';
import type { Audit } from '../../src/domain/audit.ts';
import type { CourseClient } from '../../src/tools/client.ts';
import { verifyEveryEntity, type BatchInit } from '../../src/tools/consistency.ts';

/**
 * What a test that crashed, hung or cut off parts of Orderly under load checks once every saga
 * has ended (`final`, the audit then): nothing left reserved or held, money and stock conserved,
 * each checkout's answer true of its order (2xx paid, 4xx not; `skip` leaves out those that may
 * have been cancelled after their answer), and every user and item exact.
 */
export async function assertExactTotals(
  client: CourseClient, url: string, final: Audit, init: BatchInit,
  answers: Iterable<readonly [id: string, status: number]>, skip: (id: string) => boolean = () => false,
): Promise<void> {
  assert.equal(final.orders.active_sagas, 0, 'every saga ended');
  assert.equal(final.stock.reserved, 0, 'no stock left reserved');
  assert.equal(final.payment.held, 0, 'no credit left on hold');
  assert.equal(final.payment.credit + final.orders.paid_amount, init.users * init.credit, 'money conserves');
  assert.equal(final.stock.available + final.orders.paid_units, init.items * init.stock, 'stock conserves');
  for (const [id, status] of answers) {
    if (skip(id)) continue;
    const order = await client.get<{ paid: boolean }>(`/orders/find/${id}`);
    if (status >= 200 && status < 300) assert.equal(order.paid, true, `order ${id} answered ${status} but is not paid`);
    if (status >= 400 && status < 500) assert.equal(order.paid, false, `order ${id} answered ${status} but is paid`);
  }
  assert.deepEqual(await verifyEveryEntity(url, init), [], 'every user charged exactly for their paid orders, every item short exactly its paid units');
}
