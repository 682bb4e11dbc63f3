/**
 * `npm run bench`: the course stress scenario against a running Orderly (`npm start`, or any
 * deployment behind one URL). Batch-inits users, items and orders, checks out distinct orders
 * over many connections for a set time, prints throughput and latency, then verifies that no
 * money or stock was created or lost. `--scenario lifecycle` runs customers' orders through the
 * lifecycle API instead (create, check out until confirmed; a share cancelled, a share failing
 * the fraud check when the system runs with ORDERLY_FRAUD_MAX_AMOUNT=100).
 *
 *   npm run bench -- --url http://127.0.0.1:8000 --seconds 30 --connections 64 --n 100000
 *   npm run bench -- --scenario lifecycle --cancel-share 0.1 --fraud-share 0.1
 */
import { parseArgs } from 'node:util';
import { CourseClient } from '../src/tools/client.ts';
import { batchInit, checkoutLoad, lifecycleLoad } from './load.ts';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8000' },
    seconds: { type: 'string', default: '30' },
    connections: { type: 'string', default: '64' },
    n: { type: 'string', default: '100000' },
    json: { type: 'boolean', default: false },
    scenario: { type: 'string', default: 'course' },
    'cancel-share': { type: 'string', default: '0.1' },
    'fraud-share': { type: 'string', default: '0.1' },
  },
});
if (args.scenario !== 'course' && args.scenario !== 'lifecycle') throw new Error(`--scenario is course or lifecycle, not ${args.scenario}`);
const lifecycle = args.scenario === 'lifecycle';
const url = args.url;
const seconds = Number(args.seconds);
const connections = Number(args.connections);
const n = Number(args.n);

const client = new CourseClient(url, connections);
const log = (line: string) => process.stderr.write(`${line}\n`);

try {
  await client.get('/healthz').catch((error: unknown) => {
    throw new Error(`No Orderly answers at ${url} (${String(error)}). Start one with \`npm start\`, or pass --url.`);
  });
  log(`bench: ${args.scenario} scenario, ${url}, ${n} users/items${lifecycle ? '' : '/orders'}, ${connections} connections, ${seconds} s`);
  const t = performance.now();
  await batchInit(client, { n, credit: 1_000_000, stock: 1_000_000, price: 1 });
  log(`init: ${Math.round(performance.now() - t)} ms`);
  const onProgress = (elapsed: number, done: number) => log(`  ${elapsed.toFixed(0)} s: ${done} ${lifecycle ? 'orders' : 'checkouts'}, ${Math.round(done / elapsed)}/s`);
  const result = lifecycle
    ? await lifecycleLoad(client, { seconds, connections, n, price: 1, cancelShare: Number(args['cancel-share']), fraudShare: Number(args['fraud-share']), fraudAbove: 100, onProgress })
    : await checkoutLoad(client, { seconds, connections, n, onProgress });
  const { conserved, machineCpu: cpu } = result;
  if (args.json) console.log(JSON.stringify(result));
  else {
    console.log(`${lifecycle ? 'orders/s   ' : 'checkouts/s'} ${result.perSecond}  (${result.checkouts} in ${result.seconds} s, ${connections} connections)`);
    if ('outcomes' in result) console.log(`outcomes    ${JSON.stringify(result.outcomes)}`);
    console.log(`latency ms  p50 ${result.p50ms}  p95 ${result.p95ms}  p99 ${result.p99ms}`);
    console.log(`answers     ${JSON.stringify(result.statuses)}${result.errors ? `  connection errors ${result.errors}` : ''}`);
    if (cpu) console.log(`machine CPU ${cpu.busyPercent}% busy of ${cpu.cores} cores, steal ${cpu.stealPercent}%, ${cpu.msPerCheckout} ms per ${lifecycle ? 'order' : 'checkout'} (everything on this machine, the bench too)`);
    console.log(`conserved   money ${conserved.money}  stock ${conserved.stock}  nothing held ${conserved.nothingHeld}  paid = 2xx ${conserved.paidMatches2xx}`);
  }
  if (!Object.values(conserved).every(Boolean)) process.exitCode = 1;
} finally {
  await client.close();
}
