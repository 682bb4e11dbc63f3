/**
 * The simulator finds known kinds of bug: each is put back behind its switch
 * (src/core/mutations.ts) and must break an invariant within a few seeds. The seeds it took are
 * printed; docs/simulation.md has the figures.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MUTATIONS, setMutations } from '../../src/core/mutations.ts';
import { simulate } from '../../src/sim/run.ts';

/** Seeds tried before a bug counts as missed (ttlAfterCapture takes 13 to 19, staleRetry 4 to 18, the others under 15; docs/simulation.md). */
const LIMIT = 150;

describe('simulator: it finds the bugs put back', () => {
  after(() => setMutations([]));
  for (const bug of MUTATIONS) {
    it(`finds ${bug}`, async () => {
      setMutations([bug]);
      for (let seed = 1; seed <= LIMIT; seed++) {
        const result = await simulate(seed);
        if (result.violations.length > 0) {
          console.log(`# ${bug}: found by seed ${seed} (${seed} seeds): ${result.violations[0]}`);
          return;
        }
      }
      assert.fail(`${bug} went unnoticed for ${LIMIT} seeds`);
    });
  }

  it('finds nothing with every switch off on the same seeds', async () => {
    setMutations([]);
    for (let seed = 1; seed <= 10; seed++) assert.deepEqual((await simulate(seed)).violations, [], `seed ${seed}`);
  });
});
