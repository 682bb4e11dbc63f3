import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/runtime/log.ts';
import { startEmbedded, type System } from '../../src/runtime/system.ts';
import { consistencyScenario } from '../../src/tools/consistency.ts';

// Profile covered: orchestration × embedded store (PGlite) × in-process bus, over real HTTP.
let system: System;
let dir: string;
let baseUrl: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'orderly-consistency-'));
  system = await startEmbedded(loadConfig({ ORDERLY_DATA_DIR: dir }), createLogger('silent'));
  baseUrl = await system.app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await system.close();
  rmSync(dir, { recursive: true, force: true });
});

test('course consistency scenario: 1000 checkouts of 100 units, 100 in flight', async () => {
  const result = await consistencyScenario(baseUrl, { stock: 100, users: 1000, concurrency: 100 });
  assert.equal(result.succeeded, 100, 'exactly 100 checkouts answer 2xx');
  assert.equal(result.failed, 900, 'the other 900 answer 4xx');
  assert.deepEqual(result.otherStatuses, []);
  assert.equal(result.stock, 0);
  assert.equal(result.totalCredit, 900);
  assert.equal(result.paidOrders, 100);
  assert.deepEqual(result.mismatches, [], 'the 2xx orders are exactly the paid ones');
});
