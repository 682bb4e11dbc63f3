/**
 * `npm run bench:replicas`: what each added replica costs, side by side in one run. For each
 * subject (a number of replicas per service, on this checkout or an earlier one given with
 * --baseline), starts `npm run cluster` on a fresh namespace, batch-inits, runs the course
 * checkout load through the gateway, and prints checkouts/s, the machine's CPU per checkout, each
 * kind of process's CPU per checkout and its largest RSS, and the store server's CPU.
 *
 *   npm run bench:replicas -- --store redis://127.0.0.1:6379 --bus redis://127.0.0.1:6379 --replicas 1,2,3
 *   npm run bench:replicas -- --replicas 1,2 --baseline ../orderly-before   (an earlier version, checked out and installed there)
 *   npm run bench:replicas -- --replicas 1,2,3 --rate 30   (30 checkouts started a second: what a checkout costs at a load every subject carries)
 *
 * Linux only (/proc). The store and broker servers are this machine's; their CPU is read from
 * /proc for the processes named redis-server, postgres or beam.smp.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { CourseClient } from '../src/tools/client.ts';
import { SERVICES } from '../src/wiring/serviceNames.ts';
import { stop } from '../test/support/child.ts';
import { cleanBroker, freeBlock, freshDatabase } from '../test/support/cluster.ts';
import { batchInit, checkoutLoad, type LoadResult } from './load.ts';

const { values: args } = parseArgs({
  options: {
    store: { type: 'string', default: 'redis://127.0.0.1:6379' },
    bus: { type: 'string', default: 'redis://127.0.0.1:6379' },
    replicas: { type: 'string', default: '1,2' },
    /** Partition counts to measure this checkout with (ORDERLY_PARTITIONS); default what the environment says. */
    partitions: { type: 'string' },
    /** Document cache sizes to measure this checkout with (ORDERLY_CACHE_DOCS, 0: none); default what the environment says. */
    cache: { type: 'string' },
    baseline: { type: 'string', multiple: true, default: [] },
    seconds: { type: 'string', default: '20' },
    connections: { type: 'string', default: '64' },
    /** Checkouts started per second (an open load over the connections); default as many as the connections keep going. */
    rate: { type: 'string' },
    n: { type: 'string', default: '30000' },
  },
});
const seconds = Number(args.seconds);
const connections = Number(args.connections);
const rate = args.rate === undefined ? undefined : Number(args.rate);
const n = Number(args.n);
const log = (line: string) => process.stderr.write(`${line}\n`);

type Subject = Readonly<{ label: string; cwd: string; replicas: number; partitions?: number | undefined; cacheDocs?: number | undefined }>;
type Row = Readonly<{
  label: string; load: LoadResult; cpuMsByKind: Record<string, number>; rssMbByKind: Record<string, number>; serverCpuMs: number;
  /** Redis commands per checkout by command, when the store or the bus is Redis. */
  redisCalls: Record<string, number>;
  /** PostgreSQL transactions (committed and rolled back) in the subject's database per checkout, when the store is PostgreSQL. */
  pgTransactions: number | undefined;
}>;

const ticksMs = 10;
/** utime + stime of a process, ms. */
const cpuOf = (pid: number) => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return (Number(fields[11]) + Number(fields[12])) * ticksMs;
  } catch {
    return 0;
  }
};
const rssMbOf = (pid: number) => {
  try {
    return Math.round(Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
};
/** The cluster's processes by kind (gateway, orders, …): the children of the cluster process, named by their command line. */
function members(clusterPid: number): Map<number, string> {
  const kinds = new Map<number, string>();
  for (const task of readdirSync(`/proc/${clusterPid}/task`)) {
    for (const child of readFileSync(`/proc/${clusterPid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
      const cmd = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0');
      kinds.set(Number(child), cmd.includes('gateway') ? 'gateway' : (cmd[cmd.indexOf('service') + 1] ?? 'other'));
    }
  }
  return kinds;
}
/** The store and broker servers' processes on this machine. */
function servers(): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((pid) => {
    try {
      return /^(redis-server|postgres|beam\.smp|nats-server)$/.test(readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
    } catch {
      return false;
    }
  }).map(Number);
}

/** `INFO commandstats` of the Redis server at `url`: calls by command. */
async function redisCalls(url: string): Promise<Record<string, number>> {
  const redis = new Redis(url, { lazyConnect: true });
  try {
    await redis.connect();
    const info = await redis.info('commandstats');
    return Object.fromEntries([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map(([, command, calls]) => [command!, Number(calls)]));
  } finally {
    redis.disconnect();
  }
}
const redisUrl = [args.store, args.bus].find((url) => url.startsWith('redis'));
/** Transactions the database at `url` has ended so far. */
async function pgTransactions(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>('select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()');
    return Number(rows[0]!.n);
  } finally {
    await client.end();
  }
}
/** The PostgreSQL server of a PostgreSQL store: each subject gets a database of its own there. */
const pgServer = args.store.startsWith('postgres') ? (({ protocol, username, host }) => `${protocol}//${username ? `${username}@` : ''}${host}`)(new URL(args.store)) : undefined;

async function measure({ label, cwd, replicas, partitions, cacheDocs }: Subject): Promise<Row> {
  // The cluster's processes take the ports after the gateway's: a block outside the ephemeral range, which outgoing connections may hold.
  const port = await freeBlock(1 + SERVICES.length * replicas);
  const url = `http://127.0.0.1:${port}`;
  const namespace = `bench${randomBytes(4).toString('hex')}`;
  const database = pgServer ? await freshDatabase(pgServer) : undefined;
  const store = database?.url ?? args.store;
  log(`${label}: starting the cluster on ${url} (namespace ${namespace}${database ? `, database ${database.url}` : ''})`);
  const cluster = spawn(process.execPath, ['src/cli.ts', 'cluster', '--store', store, '--bus', args.bus, '--replicas', String(replicas), '--port', String(port), '--namespace', namespace], {
    cwd, env: { ...process.env, LOG_LEVEL: 'warn', LOG_FORMAT: 'json', ...(partitions === undefined ? {} : { ORDERLY_PARTITIONS: String(partitions) }), ...(cacheDocs === undefined ? {} : { ORDERLY_CACHE_DOCS: String(cacheDocs) }) }, stdio: ['ignore', 'ignore', 'inherit'],
  });
  const client = new CourseClient(url, connections);
  try {
    for (let i = 0; ; i++) {
      if (cluster.exitCode !== null) throw new Error(`the cluster exited with ${cluster.exitCode}`);
      const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
      if (ready) break;
      if (i > 600) throw new Error('the cluster was not ready within 60 s');
      await sleep(100);
    }
    await batchInit(client, { n, credit: 100_000, stock: 100_000, price: 10 });
    const kinds = members(cluster.pid!);
    const serverPids = servers();
    const before = new Map([...kinds.keys()].map((pid) => [pid, cpuOf(pid)]));
    const serverBefore = serverPids.reduce((sum, pid) => sum + cpuOf(pid), 0);
    const rss = new Map<string, number>();
    const callsBefore = redisUrl ? await redisCalls(redisUrl) : {};
    const transactionsBefore = database ? await pgTransactions(database.url) : 0;
    const load = await checkoutLoad(client, {
      seconds, connections, n, rate, progressMs: 5000,
      onProgress: (elapsed, done) => {
        for (const [pid, kind] of kinds) rss.set(kind, Math.max(rss.get(kind) ?? 0, rssMbOf(pid)));
        log(`  ${elapsed.toFixed(0)} s: ${done} checkouts`);
      },
    });
    const cpuMsByKind: Record<string, number> = {};
    for (const [pid, kind] of kinds) cpuMsByKind[kind] = (cpuMsByKind[kind] ?? 0) + (cpuOf(pid) - (before.get(pid) ?? 0)) / load.checkouts;
    const callsAfter = redisUrl ? await redisCalls(redisUrl) : {};
    // pg_stat_database is updated when a backend reports, at most every half second or so.
    const transactions = database ? ((await sleep(1000).then(() => pgTransactions(database.url))) - transactionsBefore) / load.checkouts : undefined;
    const calls = Object.fromEntries(Object.entries(callsAfter).map(([command, count]) => [command, (count - (callsBefore[command] ?? 0)) / load.checkouts]));
    const serverCpuMs = (serverPids.reduce((sum, pid) => sum + cpuOf(pid), 0) - serverBefore) / load.checkouts;
    log(`${label}: ${load.perSecond} checkouts/s, ${load.machineCpu?.msPerCheckout ?? '?'} ms of machine CPU each`);
    return { label, load, cpuMsByKind, rssMbByKind: Object.fromEntries(rss), serverCpuMs, redisCalls: calls, pgTransactions: transactions };
  } finally {
    await client.close().catch(() => undefined);
    await stop(cluster, 'SIGTERM').catch(() => stop(cluster, 'SIGKILL'));
    // What the namespace left on the broker and on a Redis store, and the subject's database.
    for (const url of new Set([store, args.bus])) {
      if (url !== database?.url) await cleanBroker(url, namespace, partitions).catch((err: unknown) => log(`could not clean ${namespace} up: ${String(err)}`));
    }
    await database?.drop();
  }
}

const name = (dir: string) => {
  try {
    return execFileSync('git', ['-C', dir, 'describe', '--always', '--dirty'], { encoding: 'utf8' }).trim();
  } catch {
    return basename(resolve(dir));
  }
};
const counts = args.replicas.split(',').map(Number);
const replicasLabel = (replicas: number) => `${replicas} replica${replicas > 1 ? 's' : ''}`;
const partitionCounts = args.partitions?.split(',').map(Number) ?? [undefined];
const cacheSizes = args.cache?.split(',').map(Number) ?? [undefined];
const subjects: Subject[] = [
  ...args.baseline.flatMap((dir) => counts.map((replicas) => ({ label: `${name(dir)}, ${replicasLabel(replicas)}`, cwd: resolve(dir), replicas }))),
  ...partitionCounts.flatMap((partitions) => cacheSizes.flatMap((cacheDocs) => counts.map((replicas) => ({
    label: `this${partitions === undefined ? '' : `, ${partitions} partitions`}${cacheDocs === undefined ? '' : `, cache ${cacheDocs}`}, ${replicasLabel(replicas)}`,
    cwd: process.cwd(), replicas, partitions, cacheDocs,
  })))),
];
const rows: Row[] = [];
for (const subject of subjects) rows.push(await measure(subject));

const kinds = [...new Set(rows.flatMap((r) => Object.keys(r.cpuMsByKind)))].sort();
const line = (title: string, cell: (r: Row) => string | number) => console.log(`| ${title} | ${rows.map((r) => String(cell(r))).join(' | ')} |`);
console.log(`\nstore ${args.store}, bus ${args.bus}; ${seconds} s of course checkouts at ${connections} connections${rate === undefined ? '' : `, ${rate} started per second`}, one run\n`);
console.log(`| | ${rows.map((r) => r.label).join(' | ')} |`);
console.log(`|---|${rows.map(() => '---:').join('|')}|`);
line('checkouts/s', (r) => r.load.perSecond);
line('latency p50 / p99', (r) => `${r.load.p50ms} / ${r.load.p99ms} ms`);
line('machine CPU per checkout', (r) => (r.load.machineCpu ? `${r.load.machineCpu.msPerCheckout} ms (${r.load.machineCpu.busyPercent}% busy)` : '–'));
line('store and broker servers', (r) => `${r.serverCpuMs.toFixed(2)} ms`);
line('Orderly processes', (r) => `${Object.values(r.cpuMsByKind).reduce((sum, ms) => sum + ms, 0).toFixed(2)} ms`);
for (const kind of kinds) line(`${kind} (all replicas)`, (r) => `${(r.cpuMsByKind[kind] ?? 0).toFixed(2)} ms, ≤ ${r.rssMbByKind[kind] ?? '–'} MB each`);
if (pgServer) line('PostgreSQL transactions per checkout', (r) => r.pgTransactions?.toFixed(2) ?? '–');
const commands = Object.entries(Object.fromEntries(rows.flatMap((r) => Object.entries(r.redisCalls))))
  .filter(([command]) => rows.some((r) => (r.redisCalls[command] ?? 0) >= 0.05)).map(([command]) => command).sort();
for (const command of commands) line(`Redis ${command} per checkout`, (r) => (r.redisCalls[command] ?? 0).toFixed(2));
line('money and stock conserved', (r) => (Object.values(r.load.conserved).every(Boolean) ? 'yes' : `NO ${JSON.stringify(r.load.conserved)}`));
if (!rows.every((r) => Object.values(r.load.conserved).every(Boolean))) process.exitCode = 1;
