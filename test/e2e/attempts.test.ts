import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SAGA_STYLES } from '../../src/config.ts';
import { assertProblem, createItem, createOrder, createUser, ok, startTestSystem, type TestSystem } from './helpers.ts';

// Every checkout attempt is kept: an order whose first checkout failed and whose retry
// succeeded still shows the failed saga, its failure and its compensation, in every style.

type SagaView = Readonly<{ saga_id: string; status: string; reason: string | null; compensated: boolean; steps: readonly Readonly<{ step: string; event: string }>[] }>;
type Statistics = Readonly<{ total: number; by_status: Readonly<Record<string, number>>; compensations_triggered: number; failures_by_reason: Readonly<Record<string, number>> }>;

/** The statistics once `total` sagas have ended (the choreography's tracker follows the events, so it may lag). */
async function endedStatistics(sys: TestSystem, total: number): Promise<Statistics> {
  let stats = ok<Statistics>(await sys.inject({ method: 'GET', url: '/sagas/statistics' }));
  for (let i = 0; i < 100 && (stats.by_status.completed ?? 0) + (stats.by_status.failed ?? 0) < total; i++) {
    await sleep(50);
    stats = ok<Statistics>(await sys.inject({ method: 'GET', url: '/sagas/statistics' }));
  }
  return stats;
}

for (const style of SAGA_STYLES) {
  await test(`${style}: a retried checkout keeps its failed saga, with its failure and compensation`, async () => {
    const sys = await startTestSystem({ SAGA_STYLE: style, ORDERLY_CHECKOUT_WAIT_MS: '10000' });
    try {
      const itemId = await createItem(sys, 10, 5);
      const userId = await createUser(sys, 5);
      const orderId = await createOrder(sys, userId, [[itemId, 1]]);

      const declined = await sys.inject({ method: 'POST', url: `/orders/checkout/${orderId}` });
      assert.equal(assertProblem(declined, 'checkout without credit').code, 'checkout-failed');
      const first = ok<{ checkout: { saga_id: string; status: string } }>(await sys.inject({ method: 'GET', url: `/orders/find/${orderId}` }));
      assert.equal(first.checkout.status, 'failed');
      const failedId = first.checkout.saga_id;

      ok(await sys.inject({ method: 'POST', url: `/payment/add_funds/${userId}/100` }), 'add funds');
      ok(await sys.inject({ method: 'POST', url: `/orders/checkout/${orderId}` }), 'retried checkout');
      const second = ok<{ paid: boolean; checkout: { saga_id: string; status: string } }>(await sys.inject({ method: 'GET', url: `/orders/find/${orderId}` }));
      assert.equal(second.paid, true);
      assert.notEqual(second.checkout.saga_id, failedId, 'the retry is a saga of its own');

      const stats = await endedStatistics(sys, 2);
      assert.equal(stats.total, 2, 'both attempts are counted');
      assert.deepEqual(stats.by_status, { running: 0, compensating: 0, completed: 1, failed: 1 });
      assert.equal(stats.compensations_triggered, 1, 'the failed attempt\'s compensation is counted');
      assert.deepEqual(stats.failures_by_reason, { 'authorizePayment failed': 1 });

      const failed = ok<SagaView>(await sys.inject({ method: 'GET', url: `/sagas/${failedId}` }), 'the failed saga');
      assert.equal(failed.status, 'failed');
      assert.equal(failed.compensated, true);
      assert.ok(failed.steps.some((e) => e.step === 'authorizePayment' && e.event === 'failed'), 'the failure is in its history');
      assert.ok(failed.steps.some((e) => e.step === 'reserveStock' && e.event === 'compensated'), 'the compensation is in its history');

      const listed = ok<{ sagas: readonly SagaView[] }>(await sys.inject({ method: 'GET', url: '/sagas' }));
      assert.deepEqual(listed.sagas.map((s) => s.saga_id).sort(), [failedId, second.checkout.saga_id].sort(), '/sagas lists both attempts');
      const onlyFailed = ok<{ sagas: readonly SagaView[] }>(await sys.inject({ method: 'GET', url: '/sagas?status=failed' }));
      assert.deepEqual(onlyFailed.sagas.map((s) => s.saga_id), [failedId]);
    } finally {
      await sys.close();
    }
  });
}
