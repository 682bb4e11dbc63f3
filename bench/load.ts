/**
 * The course stress scenario's parts, shared by `npm run bench` (checkout.ts) and
 * `npm run bench:embedded` (embedded.ts): batch_init, checkouts of distinct orders over many
 * connections for a set time, and the audit that says whether money and stock were conserved.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Audit } from '../src/domain/audit.ts';
import type { CourseClient } from '../src/tools/client.ts';
import { settled as settledWithin } from '../src/tools/lifecycle.ts';
import { percentile } from './latency.ts';

/** `n` users and items, and `orders` orders of theirs (`n` unless given). */
export type Population = Readonly<{ n: number; orders?: number; credit: number; stock: number; price: number }>;

/** Users, items and orders through the course's batch_init routes. */
export async function batchInit(client: CourseClient, { n, orders = n, credit, stock, price }: Population): Promise<void> {
  await client.post(`/payment/batch_init/${n}/${credit}`);
  await client.post(`/stock/batch_init/${n}/${stock}/${price}`);
  await client.post(`/orders/batch_init/${orders}/${n}/${n}/${price}`);
}

/** The audit once no saga is under way (a long run's backlog may take minutes to drain). */
export const settled = (client: CourseClient): Promise<Audit> => settledWithin(client, 60 * 60_000, readAudit);

/**
 * The audit, also from Orderly before the lifecycle (a `bench:embedded --baseline` of 2026-11),
 * which spelled three of the order totals in camelCase.
 */
async function readAudit(client: CourseClient): Promise<Audit> {
  const audit = await client.get<Audit & { orders: Partial<Record<'activeSagas' | 'paidAmount' | 'paidUnits', number>> }>('/admin/audit');
  const { activeSagas, paidAmount = 0, paidUnits = 0, ...orders } = audit.orders;
  return activeSagas === undefined ? audit : { ...audit, orders: { ...orders, active_sagas: activeSagas, paid_amount: paidAmount, paid_units: paidUnits } };
}

export type LoadResult = Readonly<{
  checkouts: number;
  seconds: number;
  perSecond: number;
  p50ms: number;
  p95ms: number;
  p99ms: number;
  statuses: Readonly<Record<number, number>>;
  errors: number;
  conserved: Readonly<{ money: boolean; stock: boolean; nothingHeld: boolean; paidMatches2xx: boolean }>;
  machineCpu?: ReturnType<typeof cpuUse>;
}>;

/**
 * Checks out orders 0, 1, 2… (each once) over `connections` for `seconds` (or until `n`),
 * then waits for every saga to end and compares the audits before and after. `onProgress`
 * is called every `progressMs` with the seconds elapsed and the checkouts answered.
 */
export async function checkoutLoad(
  client: CourseClient,
  options: Readonly<{ seconds: number; connections: number; n: number; rate?: number | undefined; progressMs?: number; onProgress?: (elapsedS: number, checkouts: number) => void }>,
): Promise<LoadResult> {
  const before = await settled(client);
  const run = await drive(options, async (orderId) => (await client.call('POST', `/orders/checkout/${orderId}`)).status);
  const after = await settled(client);
  return { ...run.result, conserved: conserved(before, after, run.statuses.get(200) ?? 0) };
}

/**
 * Runs `request(0)`, `request(1)`… (each once) over `connections` for `seconds` (or until `n`),
 * timing each and counting its status; `onProgress` hears every `progressMs` how many ended.
 * With a `rate`, request i starts no sooner than i / rate seconds in (an open load, as long as
 * the connections suffice): the cost of a checkout at a load every subject can carry.
 */
async function drive(
  options: Readonly<{ seconds: number; connections: number; n: number; rate?: number | undefined; progressMs?: number; onProgress?: (elapsedS: number, done: number) => void }>,
  request: (i: number) => Promise<number>,
) {
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  let errors = 0;
  const t = performance.now();
  const deadline = t + options.seconds * 1000;
  const cpuBefore = machineCpu();
  const progress = setInterval(() => options.onProgress?.((performance.now() - t) / 1000, latencies.length), options.progressMs ?? 5000);
  await Promise.all(Array.from({ length: options.connections }, async () => {
    while (performance.now() < deadline && next < options.n) {
      const i = next++;
      const due = options.rate === undefined ? 0 : t + (i * 1000) / options.rate;
      if (due >= deadline) break;
      if (due > performance.now()) await sleep(due - performance.now());
      const start = performance.now();
      try {
        const status = await request(i);
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
  latencies.sort((a, b) => a - b);
  const result = {
    checkouts: latencies.length,
    seconds: Number(elapsed.toFixed(1)),
    perSecond: Math.round(latencies.length / elapsed),
    p50ms: percentile(latencies, 50),
    p95ms: percentile(latencies, 95),
    p99ms: percentile(latencies, 99),
    statuses: Object.fromEntries(statuses),
    errors,
    ...(cpu && { machineCpu: cpu }),
  };
  return { result, statuses };
}

/** Whether money and stock were conserved between two audits, and the orders paid are `paid`. */
function conserved(before: Audit, after: Audit, paid: number): LoadResult['conserved'] {
  return {
    money: after.payment.credit + after.orders.paid_amount === before.payment.credit + before.orders.paid_amount,
    stock: after.stock.available + after.orders.paid_units === before.stock.available + before.orders.paid_units,
    nothingHeld: after.payment.held === 0 && after.stock.reserved === 0,
    paidMatches2xx: after.orders.paid - before.orders.paid === paid,
  };
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

export type LifecycleLoadResult = LoadResult & Readonly<{ outcomes: Readonly<Record<string, number>> }>;

/**
 * The lifecycle scenario: each request is a customer's order through the lifecycle API — create
 * it with one item (users and items "0" … "n-1" from batch_init), check it out and wait until it
 * is confirmed — with a share the customer cancels right after asking for the checkout, and a
 * share priced above `fraudAbove` (start the system with ORDERLY_FRAUD_MAX_AMOUNT=`fraudAbove`
 * for them to fail the fraud check). Counted per order (create + checkout, + cancel).
 */
export async function lifecycleLoad(
  client: CourseClient,
  options: Readonly<{ seconds: number; connections: number; n: number; price: number; cancelShare: number; fraudShare: number; fraudAbove: number; progressMs?: number; onProgress?: (elapsedS: number, orders: number) => void }>,
): Promise<LifecycleLoadResult> {
  const before = await settled(client);
  const outcomes = new Map<string, number>();
  const count = (outcome: string) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  const share = (i: number, s: number, offset: number) => ((i * 0.618033 + offset) % 1) < s;
  const run = await drive(options, async (i) => {
    const quantity = share(i, options.fraudShare, 0.5) ? Math.floor(options.fraudAbove / options.price) + 1 : 1;
    const created = await client.call('POST', '/api/orders', {}, { user_id: String(i), items: [{ item_id: String(i), quantity }] });
    if (created.status !== 201) throw new Error(`create answered ${created.status}`);
    const orderId = (created.body as { order_id: string }).order_id;
    if (share(i, options.cancelShare, 0)) {
      await client.call('POST', `/api/orders/${orderId}/checkout`, { prefer: 'respond-async' });
      const { status } = await client.call('POST', `/api/orders/${orderId}/cancel`, {}, {});
      count(status === 200 ? 'cancelled' : 'cancel came too late');
      return status;
    }
    const { status } = await client.call('POST', `/api/orders/${orderId}/checkout`);
    count(status === 200 ? 'confirmed' : status === 409 ? 'failed' : `answered ${status}`);
    return status;
  });
  const after = await settled(client);
  const paid = (outcomes.get('confirmed') ?? 0) + (outcomes.get('cancel came too late') ?? 0);
  return { ...run.result, outcomes: Object.fromEntries(outcomes), conserved: conserved(before, after, paid) };
}
