import { isMutation, MUTATIONS, setMutations, type Mutation } from '../core/mutations.ts';
import { describe } from './params.ts';
import { simulate, type SeedResult } from './run.ts';

/**
 * npm run simulate [-- --seed S | --seeds N [--from S0]] [--bug <kind>] [--seconds T]
 * Runs seeds of the deterministic simulation (docs/simulation.md) and stops at the first that
 * breaks an invariant, printing the command that replays it and the end of its trace.
 */
function parse(argv: readonly string[]) {
  const opts = { seed: undefined as number | undefined, seeds: 200, from: undefined as number | undefined, bugs: [] as Mutation[], seconds: Infinity, verbose: false, keepGoing: false };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    const num = () => {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${flag} needs a whole number, not ${value}`);
      i++;
      return n;
    };
    switch (flag) {
      case '--seed': opts.seed = num(); break;
      case '--seeds': opts.seeds = num(); break;
      case '--from': opts.from = num(); break;
      case '--seconds': opts.seconds = num(); break;
      case '--verbose': opts.verbose = true; break;
      case '--keep-going': opts.keepGoing = true; break;
      case '--bug':
        if (!value || !isMutation(value)) throw new Error(`--bug takes one of ${MUTATIONS.join(', ')}`);
        opts.bugs.push(value);
        i++;
        break;
      case undefined:
      default: throw new Error(`unknown option ${flag}; use --seed S, --seeds N, --from S0, --bug <${MUTATIONS.join('|')}>, --seconds T`);
    }
  }
  return opts;
}

export function replayCommand(seed: number, bugs: readonly Mutation[]): string {
  return `npm run simulate -- --seed ${seed}${bugs.map((b) => ` --bug ${b}`).join('')}`;
}

export function report(result: SeedResult, bugs: readonly Mutation[]): string {
  return [
    `seed ${result.seed} FAILED: ${describe(result.params)}`,
    ...result.violations.map((v) => `  ✗ ${v}`),
    `last ${result.trace.recent.length} of ${result.trace.lines} trace lines (virtual ms since the shop opened; trace ${result.trace.hash}):`,
    ...result.trace.recent.map((l) => `  ${l}`),
    `replay: ${replayCommand(result.seed, bugs)}`,
  ].join('\n');
}

async function main(): Promise<number> {
  const opts = parse(process.argv.slice(2));
  setMutations(opts.bugs);
  if (opts.seed !== undefined) {
    const result = await simulate(opts.seed);
    if (result.violations.length > 0) {
      console.log(report(result, opts.bugs));
      return 1;
    }
    console.log(`seed ${result.seed} ok: ${describe(result.params)}\n  ${result.checkouts} checkouts, ${result.lateCommits} late commits, ${result.steps} steps, ${result.virtualMs} virtual ms, trace ${result.trace.hash} (${result.trace.lines} lines)`);
    if (opts.verbose) for (const l of result.trace.recent) console.log(`  ${l}`);
    return 0;
  }
  const from = opts.from ?? (Date.now() % 1_000_000_000);
  const started = performance.now();
  let checkouts = 0;
  let late = 0;
  let seeds = 0;
  let lastPrint = started;
  let failed = 0;
  for (let seed = from; seed < from + opts.seeds; seed++) {
    const result = await simulate(seed);
    seeds++;
    checkouts += result.checkouts;
    late += result.lateCommits;
    if (result.violations.length > 0) {
      console.log(report(result, opts.bugs));
      console.log(`found after ${seeds} seeds (${checkouts} checkouts)`);
      failed++;
      if (!opts.keepGoing) return 1;
    }
    const now = performance.now();
    if (now - lastPrint > 10_000) {
      lastPrint = now;
      const s = (now - started) / 1000;
      console.log(`… ${seeds} seeds, ${checkouts} checkouts in ${s.toFixed(0)} s (${(seeds / s).toFixed(1)} seeds/s, ${(checkouts / s).toFixed(0)} checkouts/s), at seed ${seed}`);
    }
    if ((now - started) / 1000 > opts.seconds) break;
  }
  const s = (performance.now() - started) / 1000;
  if (failed > 0) {
    console.log(`${failed} of ${seeds} seeds from ${from} FAILED; ${checkouts} simulated checkouts, ${late} late commits after hand-overs`);
    return 1;
  }
  console.log(`${seeds} seeds from ${from} passed: ${checkouts} simulated checkouts in ${s.toFixed(1)} s — ${(seeds / s).toFixed(1)} seeds/s, ${(checkouts / s).toFixed(0)} simulated checkouts/s; ${late} late commits after hand-overs`);
  return 0;
}

main().then((code) => {
  process.exitCode = code;
}, (error: unknown) => {
  console.error(error);
  process.exitCode = 2;
});
