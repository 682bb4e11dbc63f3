/**
 * A few hundred seeds of the simulation (docs/simulation.md), about 10 s on a free core (a fixed count, not a time budget, so a busy machine cannot change the verdict): every
 * style and checkout version under swarm faults, every invariant after every commit and at the end.
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
    for (let seed = FIRST; seed < FIRST + MAX_SEEDS; seed++) {
      const result = await simulate(seed);
      seeds++;
      checkouts += result.checkouts;
      styles.add(`${result.params.style} v${result.params.version}`);
      assert.deepEqual(result.violations, [], report(result, []));
    }
    console.log(`# ${seeds} seeds, ${checkouts} simulated checkouts, ${((performance.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(styles.size, 6, `not every style and version ran: ${[...styles].join(', ')}`);
  });
});
