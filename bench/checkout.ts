/**
 * `npm run bench`: the course stress scenario against a running Orderly (`npm start`, or any
 * deployment behind one URL). Batch-inits users, items and orders, checks out distinct orders
 * over many connections for a set time, prints throughput and latency, then verifies that no
 * money or stock was created or lost.
 *
 *   npm run bench -- --url http://127.0.0.1:8000 --seconds 30 --connections 64 --n 100000
 */
import { parseArgs } from 'node:util';
import { CourseClient } from '../src/tools/client.ts';
import { batchInit, checkoutLoad } from './load.ts';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8000' },
    seconds: { type: 'string', default: '30' },
    connections: { type: 'string', default: '64' },
    n: { type: 'string', default: '100000' },
    json: { type: 'boolean', default: false },
  },
});
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
  log(`bench: ${url}, ${n} users/items/orders, ${connections} connections, ${seconds} s`);
  const t = performance.now();
  await batchInit(client, { n, credit: 1_000_000, stock: 1_000_000, price: 1 });
  log(`init: ${Math.round(performance.now() - t)} ms`);
  const result = await checkoutLoad(client, {
    seconds,
    connections,
    n,
    onProgress: (elapsed, checkouts) => log(`  ${elapsed.toFixed(0)} s: ${checkouts} checkouts, ${Math.round(checkouts / elapsed)}/s`),
  });
  const { conserved, machineCpu: cpu } = result;
  if (args.json) console.log(JSON.stringify(result));
  else {
    console.log(`checkouts/s ${result.perSecond}  (${result.checkouts} in ${result.seconds} s, ${connections} connections)`);
    console.log(`latency ms  p50 ${result.p50ms}  p95 ${result.p95ms}  p99 ${result.p99ms}`);
    console.log(`answers     ${JSON.stringify(result.statuses)}${result.errors ? `  connection errors ${result.errors}` : ''}`);
    if (cpu) console.log(`machine CPU ${cpu.busyPercent}% busy of ${cpu.cores} cores, steal ${cpu.stealPercent}%, ${cpu.msPerCheckout} ms per checkout (everything on this machine, the bench too)`);
    console.log(`conserved   money ${conserved.money}  stock ${conserved.stock}  nothing held ${conserved.nothingHeld}  paid = 2xx ${conserved.paidMatches2xx}`);
  }
  if (!Object.values(conserved).every(Boolean)) process.exitCode = 1;
} finally {
  await client.close();
}
