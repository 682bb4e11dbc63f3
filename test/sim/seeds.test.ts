/**
 * A few hundred seeds of the simulation (docs/simulation.md), about 10 s on a free core (a fixed count, not a time budget, so a busy machine cannot change the verdict): every
 * style and checkout version under swarm faults, with and without partitions (replicas, hangs,
 * hand-overs), every invariant after every commit and at the end.
 * A failing seed prints the command that replays it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setMutations } from '../../src/core/mutations.ts';
import { report } from '../../src/sim/main.ts';
import { simulate } from '../../src/sim/run.ts';

const FIRST = 20_260_000;
const MAX_SEEDS = 300;

describe('simulator: seeds', () => {
  it(`passes every invariant on up to ${MAX_SEEDS} seeds from ${FIRST}`, async () => {
    setMutations([]);
    const started = performance.now();
    const styles = new Set<string>();
    let seeds = 0;
    let checkouts = 0;
    let partitioned = 0;
    let lateCommits = 0;
    for (let seed = FIRST; seed < FIRST + MAX_SEEDS; seed++) {
      const result = await simulate(seed);
      seeds++;
      checkouts += result.checkouts;
      if (result.params.partitions > 0) partitioned++;
      lateCommits += result.lateCommits;
      styles.add(`${result.params.style} v${result.params.version}`);
      assert.deepEqual(result.violations, [], report(result, []));
    }
    console.log(`# ${seeds} seeds (${partitioned} partitioned, ${lateCommits} late commits after hand-overs), ${checkouts} simulated checkouts, ${((performance.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(styles.size, 6, `not every style and version ran: ${[...styles].join(', ')}`);
    // The partitioned world ran, and partitions moved while their old holders still committed (the overlap).
    assert.ok(partitioned > 50 && lateCommits > 0, `${partitioned} partitioned seeds, ${lateCommits} late commits`);
  });
});
