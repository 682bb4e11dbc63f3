import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourseClient } from '../../src/tools/client.ts';

type Statistics = Readonly<{ total: number; by_status: Readonly<Record<string, number>> }>;

/**
 * Waits until the saga tracker at `baseUrl` has seen `total` sagas end (it follows the events,
 * so it may lag behind the orders), and asserts how they ended, and that its list filters.
 */
export async function assertTrackerSaw(baseUrl: string, expected: Readonly<{ total: number; completed: number }>): Promise<void> {
  const client = new CourseClient(baseUrl, 2);
  try {
    let stats: Statistics = await client.get<Statistics>('/sagas/statistics');
    for (let i = 0; i < 200 && stats.by_status.completed! + stats.by_status.failed! < expected.total; i++) {
      await sleep(100);
      stats = await client.get<Statistics>('/sagas/statistics');
    }
    assert.equal(stats.total, expected.total, 'the tracker saw every saga');
    assert.deepEqual(stats.by_status, { running: 0, compensating: 0, completed: expected.completed, failed: expected.total - expected.completed });
    const failed = await client.get<{ sagas: { status: string }[]; next: string | null }>('/sagas?status=failed&limit=10');
    assert.equal(failed.sagas.length, Math.min(10, expected.total - expected.completed));
    assert.ok(failed.sagas.every((s) => s.status === 'failed'), 'the status filter holds');
  } finally {
    await client.close();
  }
}
