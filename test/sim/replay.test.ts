/** A failure is a reproduction: one seed is one run, step for step. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { simulate } from '../../src/sim/run.ts';

describe('simulator: determinism', () => {
  it('the same seed gives the same trace, results and virtual time twice', async () => {
    // 32: partitioned, with hand-overs whose old holders commit late (the overlap).
    for (const seed of [7, 1185, 424242, 32]) {
      const [a, b] = [await simulate(seed), await simulate(seed)];
      assert.equal(a.trace.hash, b.trace.hash, `seed ${seed}`);
      assert.deepEqual(a.trace.recent, b.trace.recent);
      assert.deepEqual([a.steps, a.checkouts, a.lateCommits, a.virtualMs, a.violations], [b.steps, b.checkouts, b.lateCommits, b.virtualMs, b.violations]);
      assert.ok(a.trace.lines > 100, `seed ${seed} traced only ${a.trace.lines} lines`);
      if (seed === 32) assert.ok(a.lateCommits > 0, 'seed 32 no longer commits late after a hand-over');
    }
  });

  it('different seeds draw different worlds', async () => {
    const hashes = new Set<string>();
    for (const seed of [1, 2, 3, 4]) hashes.add((await simulate(seed)).trace.hash);
    assert.equal(hashes.size, 4);
  });
});
