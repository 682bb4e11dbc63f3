/**
 * `npm run bench`: the course stress scenario against a running Orderly (`npm start`, or any
 * deployment behind one URL). Batch-inits users, items and orders, checks out distinct orders
 * over many connections for a set time, prints throughput and latency, then verifies that no
 * money or stock was created or lost.
 *
 *   npm run bench -- --url http://127.0.0.1:8000 --seconds 30 --connections 64 --n 100000
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Audit } from '../src/domain/audit.ts';
import { CourseClient } from '../src/tools/client.ts';
import { percentile } from './latency.ts';

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
const CREDIT = 1_000_000;
const STOCK = 1_000_000;
const PRICE = 1;

const client = new CourseClient(url, connections);
const log = (line: string) => process.stderr.write(`${line}\n`);

try {
  await client.get('/healthz').catch((error: unknown) => {
    throw new Error(`No Orderly answers at ${url} (${String(error)}). Start one with \`npm start\`, or pass --url.`);
  });
  log(`bench: ${url}, ${n} users/items/orders, ${connections} connections, ${seconds} s`);
  let t = performance.now();
  await client.post(`/payment/batch_init/${n}/${CREDIT}`);
  await client.post(`/stock/batch_init/${n}/${STOCK}/${PRICE}`);
  await client.post(`/orders/batch_init/${n}/${n}/${n}/${PRICE}`);
  log(`init: ${Math.round(performance.now() - t)} ms`);
  const before = await settled();

  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  t = performance.now();
  const cpuBefore = machineCpu();
  const progress = setInterval(() => {
    const elapsed = (performance.now() - t) / 1000;
    log(`  ${elapsed.toFixed(0)} s: ${latencies.length} checkouts, ${Math.round(latencies.length / elapsed)}/s`);
  }, 5000);
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < deadline && next < n) {
      const orderId = next++;
      const start = performance.now();
      try {
        const { status } = await client.call('POST', `/orders/checkout/${orderId}`);
        latencies.push(performance.now() - start);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      } catch {
        errors++;
      }
    }
  }));
  clearInterval(progress);
  const elapsed = (performance.now() - t) / 1000;
  const cpu = cpuUse(cpuBefore, machineCpu(), latencies.length, elapsed * 1000);
  const after = await settled();

  latencies.sort((a, b) => a - b);
  const conserved = {
    money: after.payment.credit + after.orders.paidAmount === before.payment.credit + before.orders.paidAmount,
    stock: after.stock.available + after.orders.paidUnits === before.stock.available + before.orders.paidUnits,
    nothingHeld: after.payment.held === 0 && after.stock.reserved === 0,
    paidMatches2xx: after.orders.paid - before.orders.paid === (statuses.get(200) ?? 0),
  };
  const result = {
    checkouts: latencies.length,
    seconds: Number(elapsed.toFixed(1)),
    perSecond: Math.round(latencies.length / elapsed),
    p50ms: percentile(latencies, 50),
    p95ms: percentile(latencies, 95),
    p99ms: percentile(latencies, 99),
    statuses: Object.fromEntries(statuses),
    errors,
    conserved,
    ...(cpu && { machineCpu: cpu }),
  };
  if (args.json) console.log(JSON.stringify(result));
  else {
    console.log(`checkouts/s ${result.perSecond}  (${result.checkouts} in ${result.seconds} s, ${connections} connections)`);
    console.log(`latency ms  p50 ${result.p50ms}  p95 ${result.p95ms}  p99 ${result.p99ms}`);
    console.log(`answers     ${JSON.stringify(result.statuses)}${errors ? `  connection errors ${errors}` : ''}`);
    if (cpu) console.log(`machine CPU ${cpu.busyPercent}% busy of ${cpu.cores} cores, steal ${cpu.stealPercent}%, ${cpu.msPerCheckout} ms per checkout (everything on this machine, the bench too)`);
    console.log(`conserved   money ${conserved.money}  stock ${conserved.stock}  nothing held ${conserved.nothingHeld}  paid = 2xx ${conserved.paidMatches2xx}`);
  }
  if (!Object.values(conserved).every(Boolean)) process.exitCode = 1;
} finally {
  await client.close();
}

/** The audit once no saga is under way. */
async function settled(): Promise<Audit> {
  for (;;) {
    const audit = await client.get<Audit>('/admin/audit');
    if (audit.orders.activeSagas === 0) return audit;
    await sleep(250);
  }
}

type CpuTimes = Readonly<{ busy: number; total: number; steal: number; cores: number }>;

/** This machine's CPU times so far, summed over its cores (Linux /proc/stat, in clock ticks); undefined elsewhere. */
function machineCpu(): CpuTimes | undefined {
  let lines: string[];
  try {
    lines = readFileSync('/proc/stat', 'utf8').split('\n');
  } catch {
    return undefined;
  }
  // cpu  user nice system idle iowait irq softirq steal …
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = (lines[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq;
  return { busy, total: busy + idle + iowait + steal, steal, cores: lines.filter((line) => /^cpu\d/.test(line)).length };
}

/** How busy the machine was between two readings: it tells whether a run was bound by the CPU. */
function cpuUse(before: CpuTimes | undefined, after: CpuTimes | undefined, checkouts: number, elapsedMs: number) {
  if (!before || !after || after.total <= before.total || after.cores === 0) return undefined;
  const total = after.total - before.total;
  const busy = after.busy - before.busy;
  // Each core ticked total / cores times in elapsedMs.
  const msPerTick = elapsedMs / (total / after.cores);
  return {
    cores: after.cores,
    busyPercent: Math.round((busy / total) * 100),
    stealPercent: Number((((after.steal - before.steal) / total) * 100).toFixed(1)),
    msPerCheckout: checkouts > 0 ? Number(((busy * msPerTick) / checkouts).toFixed(2)) : 0,
  };
}
