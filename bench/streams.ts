/**
 * `npm run bench:streams`: what 1,000 open /events streams cost `npm start`. The same checkout
 * load twice, each on a fresh process and data directory: without streams, and with
 * --streams streams open (--stalled of them never read, so their buffers fill and the server
 * drops their events), side by side in one run. Prints resident memory, checkouts/s,
 * latency and the server's CPU time per checkout.
 *
 *   npm run bench:streams -- --streams 1000 --stalled 300 --seconds 20 --rounds 3
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CourseClient } from '../src/tools/client.ts';
import { freePort, stop } from '../test/support/child.ts';
import { batchInit, checkoutLoad, type LoadResult } from './load.ts';
import { cpuMs, firstAnswer, memory } from './process.ts';

const { values: args } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    stalled: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '20' },
    connections: { type: 'string', default: '32' },
    n: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '1' },
  },
});
const streams = Number(args.streams);
const stalled = Number(args.stalled);
const seconds = Number(args.seconds);
const connections = Number(args.connections);
const n = Number(args.n);
const rounds = Number(args.rounds);
const log = (line: string) => process.stderr.write(`${line}\n`);

type Row = Readonly<{ label: string; before: number; withStreams: number; peak: number; load: LoadResult; cpuMsPerCheckout: number; open: number; refused: number }>;

/** Opens `count` event streams on raw sockets: `stalled` of them never read. Resolves once each has its answer's first bytes. */
async function openStreams(port: number, count: number, stalledCount: number): Promise<{ sockets: Socket[]; open: number; refused: number }> {
  let open = 0;
  let refused = 0;
  const sockets = await Promise.all(Array.from({ length: count }, (_, i) => new Promise<Socket>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`));
    socket.once('data', (chunk) => {
      if (/^HTTP\/1\.1 200/.test(chunk.toString('latin1'))) open++;
      else refused++;
      if (i < stalledCount) socket.pause();
      else socket.on('data', () => undefined);
      resolve(socket);
    });
    socket.once('error', reject);
  })));
  return { sockets, open, refused };
}

async function measure(label: string, streamCount: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'orderly-bench-streams-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['src/main.ts'], {
    env: { ...process.env, ORDERLY_DATA_DIR: dir, PORT: String(port), LOG_LEVEL: 'warn', ORDERLY_MAX_EVENT_STREAMS: String(Math.max(streamCount, 1000)) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const client = new CourseClient(url, connections);
  let sockets: Socket[] = [];
  try {
    await firstAnswer(child, url);
    await batchInit(client, { n, credit: 100_000, stock: 100_000, price: 10 });
    await sleep(2000);
    const before = memory(child).rssMb;
    const opened = await openStreams(port, streamCount, Math.min(stalled, streamCount));
    sockets = opened.sockets;
    await sleep(1000);
    const withStreams = memory(child).rssMb;
    log(`${label}: ${opened.open} streams open (${opened.refused} refused), RSS ${before} → ${withStreams} MB; checkouts for ${seconds} s`);
    const cpuBefore = cpuMs(child);
    const load = await checkoutLoad(client, { seconds, connections, n });
    const cpuMsPerCheckout = (cpuMs(child) - cpuBefore) / Math.max(1, load.checkouts);
    const peak = memory(child).peakMb;
    log(`${label}: ${load.perSecond} checkouts/s, p50 ${load.p50ms} ms, p99 ${load.p99ms} ms, ${cpuMsPerCheckout.toFixed(2)} ms CPU per checkout`);
    return { label, before, withStreams, peak, load, cpuMsPerCheckout, open: opened.open, refused: opened.refused };
  } finally {
    for (const socket of sockets) socket.destroy();
    await client.close().catch(() => undefined);
    await stop(child, 'SIGTERM').catch(() => stop(child, 'SIGKILL'));
    rmSync(dir, { recursive: true, force: true });
  }
}

const subjects = [['no streams', 0], [`${streams} streams (${Math.min(stalled, streams)} stalled)`, streams]] as const;
const results = new Map<string, Row[]>(subjects.map(([label]) => [label, []]));
for (let round = 0; round < rounds; round++) {
  // Whoever runs first gets a few percent more: the order is reversed every other round.
  for (const [label, count] of round % 2 === 0 ? subjects : subjects.toReversed()) results.get(label)!.push(await measure(label, count));
}

const median = (rows: readonly Row[]) => rows.toSorted((a, b) => a.load.perSecond - b.load.perSecond)[Math.floor((rows.length - 1) / 2)]!;
const table = [...results.values()].map(median);
const row = (title: string, cell: (r: Row) => string | number) => console.log(`| ${title} | ${table.map((r) => String(cell(r))).join(' | ')} |`);
console.log(`\nnpm start, ${n} orders, ${seconds} s of checkouts at ${connections} connections${rounds > 1 ? `, median of ${rounds} rounds` : ''}\n`);
console.log(`| | ${table.map((r) => r.label).join(' | ')} |`);
console.log(`|---|${table.map(() => '---:').join('|')}|`);
row('streams open / refused', (r) => `${r.open} / ${r.refused}`);
row('RSS before the streams', (r) => `${r.before} MB`);
row('RSS with the streams open', (r) => `${r.withStreams} MB`);
row('peak RSS of the run', (r) => `${r.peak} MB`);
row('checkouts/s', (r) => r.load.perSecond);
if (rounds > 1) row('checkouts/s in each round', (r) => results.get(r.label)!.map((x) => x.load.perSecond).join(', '));
row('latency p50 / p95 / p99', (r) => `${r.load.p50ms} / ${r.load.p95ms} / ${r.load.p99ms} ms`);
row('CPU per checkout: Orderly', (r) => `${r.cpuMsPerCheckout.toFixed(2)} ms`);
row('CPU per checkout: the machine (the bench too)', (r) => (r.load.machineCpu ? `${r.load.machineCpu.msPerCheckout} ms, ${r.load.machineCpu.busyPercent}% busy` : '–'));
row('money and stock conserved', (r) => (Object.values(r.load.conserved).every(Boolean) ? 'yes' : `NO ${JSON.stringify(r.load.conserved)}`));
if (!table.every((r) => Object.values(r.load.conserved).every(Boolean))) process.exitCode = 1;
