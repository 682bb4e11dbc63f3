import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig, SAGA_STYLES } from '../../src/config.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { startEmbedded } from '../../src/wiring/embedded.ts';
import { consistencyScenario } from '../../src/tools/consistency.ts';
import { assertSagasSaw } from '../support/sagas.ts';

// Profiles covered: {orchestration, choreography, synchronous} × embedded store (SQLite, and
// PGlite in orchestration) × in-process bus (none in the synchronous style), over real HTTP.
const profiles = [...SAGA_STYLES.map((style) => [style, 'sqlite'] as const), ['orchestration', 'pglite'] as const];
for (const [style, store] of profiles) {
  await test(`${style} on ${store}: course consistency scenario, 1000 checkouts of 100 units, 100 in flight`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orderly-consistency-'));
    const system = await startEmbedded(loadConfig({ ORDERLY_DATA_DIR: dir, SAGA_STYLE: style, ORDERLY_EMBEDDED_STORE: store }), createLogger('silent'));
    try {
      const baseUrl = await system.app.listen({ host: '127.0.0.1', port: 0 });
      const result = await consistencyScenario(baseUrl, { stock: 100, users: 1000, concurrency: 100 });
      assert.equal(result.succeeded, 100, 'exactly 100 checkouts answer 2xx');
      assert.equal(result.failed, 900, 'the other 900 answer 4xx');
      assert.deepEqual(result.otherStatuses, []);
      assert.equal(result.stock, 0);
      assert.equal(result.totalCredit, 900);
      assert.equal(result.paidOrders, 100);
      assert.deepEqual(result.mismatches, [], 'the 2xx orders are exactly the paid ones');
      // The saga API agrees (in choreography the tracker, which only saw the events).
      await assertSagasSaw(baseUrl, { total: 1000, completed: 100 });
    } finally {
      await system.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
