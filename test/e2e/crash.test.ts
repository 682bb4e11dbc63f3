import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { SAGA_STYLES, type EmbeddedStore } from '../../src/config.ts';
import { CourseClient, mapLimit } from '../../src/tools/client.ts';
import { assertExactTotals } from '../support/totals.ts';
import { lifecycleTotalsProblems } from '../../src/tools/lifecycle.ts';
import { settle } from './helpers.ts';
import { freePort, startOrderly, stop } from '../support/child.ts';

// Profiles covered: {orchestration, choreography, synchronous} × embedded store (SQLite, and
// PGlite in orchestration) × in-process bus (none in the synchronous style), `npm start` as a
// child process killed with SIGKILL in the middle of concurrent checkouts, twice.
const USERS = 400;
const CREDIT = 5;
const ITEMS = 40;
const STOCK = 15;
const ORDERS = 800;
const PRICE = 1;

for (const style of SAGA_STYLES) {
  await test(`${style} on SQLite: SIGKILL during concurrent checkouts, every saga ends, money and stock conserve exactly`, () => crashTest(style, 'sqlite'));
}
await test('orchestration on PGlite: SIGKILL during concurrent checkouts, every saga ends, money and stock conserve exactly', () => crashTest('orchestration', 'pglite'));

async function crashTest(style: string, store: EmbeddedStore): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-crash-'));
  const port = await freePort();
  const env = { ORDERLY_DATA_DIR: dir, ORDERLY_SAGA_STEP_TIMEOUT_MS: '2000', SAGA_STYLE: style, ORDERLY_EMBEDDED_STORE: store };
  let child = await startOrderly(env, port);
  const client = new CourseClient(`http://127.0.0.1:${port}`, 64);
  try {
    await client.post(`/payment/batch_init/${USERS}/${CREDIT}`);
    await client.post(`/stock/batch_init/${ITEMS}/${STOCK}/${PRICE}`);
    await client.post(`/orders/batch_init/${ORDERS}/${ITEMS}/${USERS}/${PRICE}`);
    const orderIds = Array.from({ length: ORDERS }, (_, i) => String(i));
    const answers = new Map<string, number>();
    const cancelled = new Set<string>();

    for (let round = 1; round <= 2; round++) {
      // Fire every checkout not yet answered; kill the process while they run.
      const pending = orderIds.filter((id) => !answers.has(id));
      const firing = mapLimit(pending, 48, async (id) => {
        try {
          // Every tenth customer cancels while the checkout runs.
          const cancel = Number(id) % 10 === 3
            ? sleep(Math.random() * 20).then(() => client.call('POST', `/api/orders/${id}/cancel`, {}, {})).catch(() => undefined)
            : undefined;
          answers.set(id, (await client.call('POST', `/orders/checkout/${id}`)).status);
          if ((await cancel)?.status === 200) cancelled.add(id);
        } catch {
          // the connection died with the process: the checkout (or the cancel) may or may not have happened
        }
      });
      // Killed once a quarter, then half, of the checkouts have answers, however fast the store.
      for (let waited = 0; answers.size < (round * ORDERS) / 4 && waited < 30_000; waited += 10) await sleep(10);
      await stop(child, 'SIGKILL');
      await firing;
      console.log(`round ${round}: killed after ${answers.size} of ${ORDERS} checkouts had answers`);
      child = await startOrderly(env, port);
    }

    // Let recovery finish every saga that was under way, then ask once more for the rest.
    const audit = await settle(client);
    await mapLimit(orderIds.filter((id) => !answers.has(id)), 48, async (id) => {
      answers.set(id, (await client.call('POST', `/orders/checkout/${id}`)).status);
    });
    const final = await settle(client);
    console.log('after recovery:', JSON.stringify(audit.orders.by_status), '→ final:', JSON.stringify(final.orders.by_status));

    assert.ok(final.orders.paid > 0 && final.orders.paid < ORDERS, `some checkouts succeed and some fail (${final.orders.paid} paid)`);
    await assertExactTotals(client, `http://127.0.0.1:${port}`, final, { users: USERS, credit: CREDIT, items: ITEMS, stock: STOCK, orders: ORDERS }, answers,
      (id) => cancelled.has(id) || Number(id) % 10 === 3); // cancelled after its answer, maybe
    assert.ok(cancelled.size > 0, 'some cancels went through');
    assert.deepEqual(await lifecycleTotalsProblems(client), [], 'one shipment and one message of each kind per paid order: none lost, none doubled');
    if (style === 'choreography') {
      // The tracker saw the same sagas end the same way, from the events alone.
      const stats = await client.get<{ by_status: Record<string, number> }>('/sagas/statistics');
      assert.equal(stats.by_status.running! + stats.by_status.compensating!, 0, 'the tracker saw every saga end');
      assert.equal(stats.by_status.completed, final.orders.paid, 'the tracker counts as many completed sagas as paid orders');
    }
  } finally {
    await client.close();
    await stop(child, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

