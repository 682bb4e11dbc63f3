/**
 * `npm run bench:embedded`: `npm start` on each embedded store, side by side in one run, each
 * on a fresh data directory: time to the first answer, resident memory idle, after the course's
 * 100,000-entity batch_init and while checkouts run, and checkouts/s. Prints a table.
 *
 *   npm run bench:embedded -- --seconds 30 --connections 64 --stores sqlite,pglite
 *   npm run bench:embedded -- --seconds 600 --stores sqlite --orders 400000   (a 10-minute run
 *     needs more orders than the 100,000 users and items: each order is checked out once)
 *   npm run bench:embedded -- --baseline ../orderly-83a8a27   (also an earlier version, checked out
 *     and installed there, on its own default store: what a change gained, in the same run;
 *     --baseline may be given more than once)
 *   npm run bench:embedded -- --rounds 3   (each subject three times, the order reversed every
 *     other round: whoever runs first gets a few percent more; the table shows each subject's
 *     median round)
 *
 * Memory is the process's (the PGlite worker threads are in it): VmRSS and its peak VmHWM from
 * /proc/<pid>/status, so Linux only.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { EMBEDDED_STORES, type EmbeddedStore } from '../src/config.ts';
import { CourseClient } from '../src/tools/client.ts';
import { freePort, stop } from '../test/support/child.ts';
import { batchInit, checkoutLoad, type LoadResult } from './load.ts';
import { cpuMs, firstAnswer, memory, type Memory } from './process.ts';

const { values: args } = parseArgs({
  options: {
    stores: { type: 'string', default: EMBEDDED_STORES.join(',') },
    seconds: { type: 'string', default: '30' },
    connections: { type: 'string', default: '64' },
    n: { type: 'string', default: '100000' },
    orders: { type: 'string' },
    baseline: { type: 'string', multiple: true, default: [] },
    rounds: { type: 'string', default: '1' },
    'idle-seconds': { type: 'string', default: '3' },
    'sample-seconds': { type: 'string', default: '5' },
  },
});
const stores = args.stores.split(',') as EmbeddedStore[];
for (const store of stores) if (!EMBEDDED_STORES.includes(store)) throw new Error(`--stores: ${store} is not one of ${EMBEDDED_STORES.join(', ')}`);
const seconds = Number(args.seconds);
const connections = Number(args.connections);
const n = Number(args.n);
const orders = Number(args.orders ?? args.n);
const idleSeconds = Number(args['idle-seconds']);
const sampleMs = Number(args['sample-seconds']) * 1000;
const log = (line: string) => process.stderr.write(`${line}\n`);

/** What is measured: this checkout on one of its stores, or an earlier version in another directory on its default. */
type Subject = Readonly<{ label: string; cwd: string; store?: EmbeddedStore }>;

type Row = Readonly<{
  label: string;
  firstAnswerS: number;
  atFirstAnswer: Memory;
  idle: Memory;
  batchInitS: number;
  afterInit: Memory;
  load: LoadResult;
  /** CPU time of the whole embedded process per checkout (all its threads). */
  cpuMsPerCheckout: number;
  /** RSS every `sample-seconds` while the checkouts ran. */
  duringMb: readonly number[];
  afterLoad: Memory;
  /** 3 s later. */
  settled: Memory;
  stopS: number;
}>;

const subjects: Subject[] = stores.map((store) => ({ label: store === 'sqlite' ? 'SQLite' : 'PGlite', cwd: process.cwd(), store }));
for (const dir of args.baseline) subjects.push({ label: `${baselineName(dir)} (its default)`, cwd: resolve(dir) });
const rounds = Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds: ${args.rounds} is not a whole number of at least 1`);
const runs = new Map<Subject, Row[]>(subjects.map((subject) => [subject, []]));
for (let round = 0; round < rounds; round++) {
  if (rounds > 1) log(`round ${round + 1} of ${rounds}`);
  for (const subject of round % 2 === 0 ? subjects : subjects.toReversed()) runs.get(subject)?.push(await measure(subject));
}
printTable([...runs.values()]);
if (![...runs.values()].flat().every((row) => Object.values(row.load.conserved).every(Boolean))) process.exitCode = 1;

async function measure({ label, cwd, store }: Subject): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-bench-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  log(`${label}: starting on ${url}, data in ${dir}`);
  const started = performance.now();
  const child = spawn(process.execPath, ['src/main.ts'], {
    cwd,
    env: { ...process.env, ORDERLY_DATA_DIR: dir, ...(store && { ORDERLY_EMBEDDED_STORE: store }), PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const client = new CourseClient(url, connections);
  try {
    await firstAnswer(child, url);
    const firstAnswerS = (performance.now() - started) / 1000;
    const atFirstAnswer = memory(child);
    log(`${label}: first answer after ${firstAnswerS.toFixed(2)} s`);
    await sleep(idleSeconds * 1000);
    const idle = memory(child);
    let t = performance.now();
    await batchInit(client, { n, orders, credit: 100_000, stock: 100_000, price: 10 });
    const batchInitS = (performance.now() - t) / 1000;
    const afterInit = memory(child);
    log(`${label}: batch_init of ${n} users and items and ${orders} orders in ${batchInitS.toFixed(1)} s; checkouts for ${seconds} s`);
    const duringMb: number[] = [];
    const cpuBefore = cpuMs(child);
    const load = await checkoutLoad(client, {
      seconds,
      connections,
      n: orders,
      progressMs: sampleMs,
      onProgress: (elapsed, checkouts) => {
        duringMb.push(memory(child).rssMb);
        log(`  ${elapsed.toFixed(0)} s: ${checkouts} checkouts, ${Math.round(checkouts / elapsed)}/s, RSS ${duringMb.at(-1)} MB`);
      },
    });
    const cpuMsPerCheckout = (cpuMs(child) - cpuBefore) / load.checkouts;
    if (load.checkouts >= orders) log(`${label}: every one of the ${orders} orders was checked out after ${load.seconds} s, before the ${seconds} s were up; a longer run needs a larger --orders`);
    const afterLoad = memory(child);
    // npm start gives memory back a second after a bulk request (the audits just made).
    await sleep(3000);
    const settled = memory(child);
    t = performance.now();
    await client.close();
    await stop(child, 'SIGTERM');
    const stopS = (performance.now() - t) / 1000;
    return { label, firstAnswerS, atFirstAnswer, idle, batchInitS, afterInit, load, cpuMsPerCheckout, duringMb, afterLoad, settled, stopS };
  } finally {
    await client.close().catch(() => undefined);
    await stop(child, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The baseline's commit, from its checkout (`git -C dir describe --always --dirty`), or the directory's name. */
function baselineName(dir: string): string {
  try {
    return `Orderly at ${execFileSync('git', ['-C', dir, 'describe', '--always', '--dirty'], { encoding: 'utf8' }).trim()}`;
  } catch {
    return basename(resolve(dir));
  }
}

/** The run with the median checkouts/s (the lower of the two middle ones for an even count). */
function medianRun(runs: readonly Row[]): Row {
  const sorted = runs.toSorted((a, b) => a.load.perSecond - b.load.perSecond);
  const median = sorted[Math.floor((sorted.length - 1) / 2)];
  if (!median) throw new Error('no run to take the median of');
  return median;
}

/** One column per subject: its median round, and every round's checkouts/s when there were several. */
function printTable(runsBySubject: readonly (readonly Row[])[]): void {
  const results = runsBySubject.map(medianRun);
  // Stores as columns, measures as rows: it reads as a side-by-side comparison.
  const row = (title: string, cell: (r: Row, runs: readonly Row[]) => string | number) =>
    `| ${title} | ${results.map((r, i) => String(cell(r, runsBySubject[i] ?? [r]))).join(' | ')} |`;
  const drift = (mb: readonly number[]) => {
    const [first, last] = [mb[0], mb.at(-1)];
    return first === undefined || last === undefined ? '–' : `${last >= first ? '+' : ''}${Math.round(((last - first) / first) * 100)}%`;
  };
  console.log(`\nUp to ${seconds} s of checkouts at ${connections} connections (until the ${orders} orders of the batch_init are checked out)${rounds > 1 ? `; each subject's median of ${rounds} rounds` : ''}\n`);
  console.log(`| | ${results.map((r) => r.label).join(' | ')} |`);
  console.log(`|---|${results.map(() => '---:').join('|')}|`);
  for (const line of [
    row('first answer', (r) => `${r.firstAnswerS.toFixed(2)} s`),
    row('peak RSS until then', (r) => `${r.atFirstAnswer.peakMb} MB`),
    row('idle RSS', (r) => `${r.idle.rssMb} MB`),
    row(`batch_init of ${n} users and items${orders === n ? '' : `, ${orders} orders`}`, (r) => `${r.batchInitS.toFixed(1)} s`),
    row('RSS after batch_init', (r) => `${r.afterInit.rssMb} MB`),
    row('seconds of checkouts', (r) => r.load.seconds),
    row(`checkouts/s, ${connections} connections`, (r) => r.load.perSecond),
    ...(rounds > 1 ? [row('checkouts/s in each round', (_, runs) => runs.map((run) => run.load.perSecond).join(', '))] : []),
    row('CPU per checkout: Orderly (all its threads)', (r) => `${r.cpuMsPerCheckout.toFixed(2)} ms`),
    row('CPU per checkout: the machine (the bench too)', (r) => (r.load.machineCpu ? `${r.load.machineCpu.msPerCheckout} ms, ${r.load.machineCpu.busyPercent}% of ${r.load.machineCpu.cores} cores busy` : '–')),
    row('latency p50 / p99', (r) => `${r.load.p50ms} / ${r.load.p99ms} ms`),
    row(`RSS during checkouts (every ${sampleMs / 1000} s)`, (r) => (r.duringMb.length === 0 ? '– (no sample: a shorter run)' : `${Math.min(...r.duringMb)}–${Math.max(...r.duringMb)} MB`)),
    row('RSS first to last sample', (r) => drift(r.duringMb)),
    row('RSS after checkouts (and the audits)', (r) => `${r.afterLoad.rssMb} MB`),
    row('RSS 3 s later', (r) => `${r.settled.rssMb} MB`),
    row('peak RSS of the run', (r) => `${r.afterLoad.peakMb} MB`),
    row('stop (SIGTERM)', (r) => `${r.stopS.toFixed(1)} s`),
    row(`money and stock conserved${rounds > 1 ? ' (every round)' : ''}`, (_, runs) => {
      const broken = runs.find((run) => !Object.values(run.load.conserved).every(Boolean));
      return broken ? `NO ${JSON.stringify(broken.load.conserved)}` : 'yes';
    }),
  ]) console.log(line);
}
