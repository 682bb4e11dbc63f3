/**
 * 200 orders checked out at once on the embedded profile, in every saga style, with customers
 * cancelling a third of them at random moments and a reservation time to live short enough to
 * cancel some of the rest: each order ends in one outcome, and money, stock, shipments and
 * notifications agree with the outcomes per user and per item.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SAGA_STYLES } from '../../src/config.ts';
import { lifecycleScenario } from '../../src/tools/lifecycle.ts';
import { startTestSystem } from './helpers.ts';

for (const style of SAGA_STYLES) {
  await test(`${style} on the embedded profile: 200 orders, cancels and time to live racing their checkouts`, async () => {
    const t = await startTestSystem({ SAGA_STYLE: style, ORDERLY_RESERVATION_TTL_MS: '150', ORDERLY_SAGA_STEP_TIMEOUT_MS: '2000' });
    try {
      const url = await t.system.app.listen({ host: '127.0.0.1', port: 0 });
      const result = await lifecycleScenario(url, { users: 50, credit: 40, items: 20, stock: 12, price: 3, orders: 200, concurrency: 100, cancelShare: 0.3, cancelWithinMs: 60 });
      console.log(style, JSON.stringify(result.byStatus), 'cancelled by', JSON.stringify(result.cancelledBy), `${result.seconds.toFixed(1)} s`);
      assert.deepEqual(result.problems, []);
      assert.ok((result.byStatus.SHIPPED ?? 0) > 0, 'some orders are bought');
      assert.ok((result.byStatus.CANCELLED ?? 0) > 0, 'some are cancelled');
    } finally {
      await t.close();
    }
  });
}
