import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourseClient } from '../../src/tools/client.ts';

type Statistics = Readonly<{ total: number; by_status: Readonly<Record<string, number>> }>;

/**
 * Waits until the saga API at `baseUrl` shows `total` sagas ended (in choreography the tracker
 * follows the events, so it may lag behind the orders), and asserts how they ended, that its
 * list filters, and that one saga shows its steps.
 */
export async function assertSagasSaw(baseUrl: string, expected: Readonly<{ total: number; completed: number }>): Promise<void> {
  const client = new CourseClient(baseUrl, 2);
  try {
    let stats: Statistics = await client.get<Statistics>('/sagas/statistics');
    for (let i = 0; i < 200 && stats.by_status.completed! + stats.by_status.failed! < expected.total; i++) {
      await sleep(100);
      stats = await client.get<Statistics>('/sagas/statistics');
    }
    assert.equal(stats.total, expected.total, 'every saga is there');
    assert.deepEqual(stats.by_status, { running: 0, compensating: 0, completed: expected.completed, failed: expected.total - expected.completed });
    const failed = await client.get<{ sagas: { status: string; saga_id: string }[]; next: string | null }>('/sagas?status=failed&limit=10');
    assert.equal(failed.sagas.length, Math.min(10, expected.total - expected.completed));
    assert.ok(failed.sagas.every((s) => s.status === 'failed'), 'the status filter holds');
    const one = failed.sagas[0] as { saga_id?: string } | undefined;
    if (one?.saga_id) {
      const saga = await client.get<{ status: string; steps: { step: string; event: string }[] }>(`/sagas/${one.saga_id}`);
      assert.equal(saga.status, 'failed');
      assert.ok(saga.steps.some((e) => e.event === 'failed'), 'the failed step is in the history');
    }
    if (failed.next !== null) {
      const page = await client.get<{ sagas: { saga_id: string }[] }>(`/sagas?status=failed&limit=10&after=${failed.next}`);
      assert.ok(page.sagas.every((s) => s.saga_id > failed.next!), 'the next page starts after the cursor');
    }
    // Once everything has ended, nothing waits on a step, retries or is stuck.
    for (const filter of ['stuck=true', 'retrying=true', 'step=reserveStock']) {
      const found = await client.get<{ sagas: unknown[] }>(`/sagas?${filter}`);
      assert.deepEqual(found.sagas, [], `no saga matches ${filter} once all have ended`);
    }
    const all = await client.get<{ sagas: { current_steps: string[]; stuck: boolean }[] }>('/sagas?stuck=false&retrying=false&limit=5');
    assert.equal(all.sagas.length, Math.min(5, expected.total));
    assert.ok(all.sagas.every((s) => s.current_steps.length === 0 && !s.stuck));
    const { definitions } = await client.get<{ definitions: { name: string; version: number; groups: { name: string }[][] }[] }>('/sagas/definitions');
    assert.deepEqual(definitions.map((d) => `${d.name} v${d.version}`), ['checkout v2', 'checkout v1'], 'the current definition first, then the one older sagas may still run under');
    assert.ok(definitions[0]?.groups.flat().some((s) => s.name === 'reserveStock'), 'the checkout definition has its steps');
  } finally {
    await client.close();
  }
}
