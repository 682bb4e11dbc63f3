import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig, SAGA_STYLES } from '../../src/config.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { startEmbedded } from '../../src/runtime/system.ts';
import { CourseClient } from '../../src/tools/client.ts';
import { consistencyScenario } from '../../src/tools/consistency.ts';

// Profiles covered: {orchestration, choreography, synchronous} × embedded store (PGlite) ×
// in-process bus (none in the synchronous style), over real HTTP.
for (const style of SAGA_STYLES) {
  await test(`${style}: course consistency scenario, 1000 checkouts of 100 units, 100 in flight`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orderly-consistency-'));
    const system = await startEmbedded(loadConfig({ ORDERLY_DATA_DIR: dir, SAGA_STYLE: style }), createLogger('silent'));
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
      if (style === 'choreography') await trackerAgrees(baseUrl);
    } finally {
      await system.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** The tracker, which only saw the events, ends up with the same outcomes as the orders. */
async function trackerAgrees(baseUrl: string): Promise<void> {
  const client = new CourseClient(baseUrl, 2);
  try {
    let stats: { total: number; by_status: Record<string, number>; compensations_triggered: number } | undefined;
    for (let i = 0; i < 100; i++) {
      stats = await client.get('/sagas/statistics');
      if (stats.by_status.completed! + stats.by_status.failed! === 1000) break;
      await sleep(100);
    }
    assert.equal(stats?.total, 1000);
    assert.deepEqual(stats?.by_status, { running: 0, compensating: 0, completed: 100, failed: 900 });
    const failed = await client.get<{ sagas: { status: string }[]; next: string | null }>('/sagas?status=failed&limit=10');
    assert.equal(failed.sagas.length, 10);
    assert.ok(failed.sagas.every((s) => s.status === 'failed'));
    assert.ok(failed.next !== null);
  } finally {
    await client.close();
  }
}
