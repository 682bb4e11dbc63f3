import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { SagaStyle } from '../../src/config.ts';
import type { Audit } from '../../src/domain/audit.ts';
import { servicesOf } from '../../src/wiring/serviceWiring.ts';
import { CourseClient, mapLimit } from '../../src/tools/client.ts';
import { assertExactTotals } from '../support/totals.ts';
import { lifecycleTotalsProblems } from '../../src/tools/lifecycle.ts';
import { freshDatabase, randomName, startCluster } from '../support/cluster.ts';
import { natsState } from '../support/natsState.ts';
import { startNats, startPostgres, startRabbitMq, startRedis, type ServerHandle } from '../support/servers.ts';

// Profiles covered, as style × store × bus: orchestration × PostgreSQL × RabbitMQ and × Redis
// (store and streams on one server, append-only file, fsync always); choreography × PostgreSQL ×
// NATS JetStream (whose per-type consumers reorder events the most; orchestration on NATS runs
// partitioned, below); synchronous × PostgreSQL (no broker). 2 replicas of each service as separate
// processes. With partitioned consumption (8 partitions, docs/scaling.md) on every bus: Redis
// with 3 replicas, PostgreSQL + RabbitMQ and PostgreSQL + NATS JetStream with 2, where replicas
// are also hung (SIGSTOP) past their partition leases and then resumed (SIGCONT), so that a
// replica that lost its partitions finishes what it held late: the store's version checks and
// the inbox must keep that from writing stale state. The servers are private instances this
// test starts, so it can kill them (a partitioned consumer must also take its leases again on a
// restarted broker).
const USERS = 300;
const CREDIT = 5;
const ITEMS = 30;
const STOCK = 15;
const ORDERS = 600;
/**
 * A replica hung this long (SIGSTOP, then SIGCONT) has lost its partition leases (6 s, the
 * default every bus gets from the cluster): on Redis and NATS JetStream the lease expires on the
 * server 6 s after its last renewal; on RabbitMQ, whose lease lives as long as the holder's
 * connection, the broker drops the silent connection two to three AMQP heartbeats (2 s, a third
 * of the lease) after it fell silent (measured: 4.7 s), and the others take the partitions once
 * they have not heard it for 6 s.
 */
const HANG_MS = 8_000;

/** The servers of one profile; no broker in the synchronous style. */
type Profile = Readonly<{
  storeUrl: string; busUrl?: string; database: ServerHandle; broker?: ServerHandle; cleanup(): Promise<void>;
  /** Replicas of each service; default 2. */
  replicas?: number;
  /** ORDERLY_PARTITIONS; and with partitions, replicas are also hung past their leases. */
  partitions?: number;
  /** Checkouts under load; default ORDERS. */
  orders?: number;
}>;

const redisProfile = async (more: Partial<Profile> = {}): Promise<Profile> => {
  const redis = await startRedis();
  return { storeUrl: redis.url, busUrl: redis.url, database: redis, broker: redis, cleanup: () => redis.cleanup(), ...more };
};

/**
 * Style, name, servers; and a known failure the profile still shows, if any: then the test runs
 * and prints its result, but a failure does not fail the suite (node:test's `todo`).
 */
const profiles: readonly (readonly [SagaStyle, string, () => Promise<Profile>, known?: string])[] = [
  ['orchestration', 'PostgreSQL + RabbitMQ', () => withPostgres(startRabbitMq)],
  ['orchestration', 'Redis + Redis Streams', () => redisProfile()],
  ['orchestration', 'Redis + Redis Streams, 8 partitions, 3 replicas, replicas hung past their leases', () => redisProfile({ replicas: 3, partitions: 8 })],
  ['orchestration', 'PostgreSQL + RabbitMQ, 8 partitions, 2 replicas, replicas hung past their leases', () => withPostgres(startRabbitMq, { partitions: 8, orders: 400 })],
  ['orchestration', 'PostgreSQL + NATS JetStream, 8 partitions, 2 replicas, replicas hung past their leases', () => withPostgres(startNats, { partitions: 8, orders: 400 }),
    'about 1 run in 4 notifications never arrive (from 2 of 211 "confirmed" to 19 of 212 "shipped" after 150 s): a loss in partitioned NATS JetStream, not found yet (docs/scaling.md, "Known problems")'],
  ['choreography', 'PostgreSQL + NATS JetStream', () => withPostgres(startNats)],
  ['synchronous', 'PostgreSQL, no broker', () => withPostgres()],
];

for (const [style, name, start, known] of profiles) {
  const outages = style === 'synchronous' ? 'the database' : 'the broker and the database';
  test(`${style}, ${name}: replicas, ${outages} killed under load; every saga ends, totals conserve`, known ? { todo: known } : {}, async () => {
    const { storeUrl, busUrl, database: postgres, broker, cleanup, replicas = 2, partitions, orders = ORDERS } = await start();
    const namespace = randomName('crash');
    const cluster = await startCluster({
      storeUrl, ...(busUrl ? { busUrl } : {}), replicas, namespace, style, ...(partitions ? { env: { ORDERLY_PARTITIONS: String(partitions) } } : {}),
    });
    // RabbitMQ keeps queue definitions in memory for up to ~2 s before writing them down.
    if (broker && 'syncMetadata' in broker && typeof broker.syncMetadata === 'function') await (broker.syncMetadata as () => Promise<void>)();
    const client = new CourseClient(cluster.url, 32);
    try {
      await client.post(`/payment/batch_init/${USERS}/${CREDIT}`);
      await client.post(`/stock/batch_init/${ITEMS}/${STOCK}/1`);
      await client.post(`/orders/batch_init/${orders}/${ITEMS}/${USERS}/1`);
      const orderIds = Array.from({ length: orders }, (_, i) => String(i));
      const answers = new Map<string, number>();
      const cancelled = new Set<string>();
      const checkout = async (id: string) => {
        try {
          // Every tenth customer cancels while the checkout runs.
          const cancel = Number(id) % 10 === 3
            ? sleep(Math.random() * 50).then(() => client.call('POST', `/api/orders/${id}/cancel`, {}, {})).catch(() => undefined)
            : undefined;
          const { status } = await client.call('POST', `/orders/checkout/${id}`);
          if (status < 500) answers.set(id, status);
          if ((await cancel)?.status === 200) cancelled.add(id);
        } catch {
          // the replica holding the request died: the checkout (or the cancel) may or may not go on
        }
      };

      let killed = 0;
      let hung = 0;
      const firing = mapLimit(orderIds, 24, async (id) => {
        await checkout(id);
        await sleep(5);
      });
      const chaos = (async () => {
        // The kills and outages go on while a replica hangs; a hung replica is not killed (it must
        // resume late). Not hung right after the broker's outage, while replicas may still wait to
        // reconnect (a replica with no connection holds no lease to lose).
        const hanging: Promise<number>[] = [];
        const stopped = new Set<number>();
        for (let round = 1; round <= 8; round++) {
          await sleep(1500);
          killed += killReplica(namespace, style, replicas, stopped);
          if (round === 2 && broker) await outage(broker);
          if (round === 5) await outage(postgres);
          if (partitions && (round === 4 || round === 7)) hanging.push(hangReplica(namespace, style, replicas, stopped));
        }
        for (const one of await Promise.all(hanging)) hung += one;
      })();
      await Promise.all([firing, chaos]);
      console.log(`${style}, ${name}: killed ${killed} replicas, hung ${hung}, and ${outages}; ${answers.size} of ${orders} checkouts answered`);

      // Once recovery has finished every saga, ask once more for the checkouts without an answer.
      await settle(client);
      await mapLimit(orderIds.filter((id) => !answers.has(id)), 24, checkout);
      const final = await settle(client);
      console.log(`${name}: final`, JSON.stringify(final.orders.by_status));

      assert.ok(final.orders.paid > 0 && final.orders.paid < orders, `some checkouts succeed, some fail (${final.orders.paid} paid)`);
      await assertExactTotals(client, cluster.url, final, { users: USERS, credit: CREDIT, items: ITEMS, stock: STOCK, orders }, answers,
        (id) => Number(id) % 10 === 3); // cancelled after its answer, maybe
      // A replica killed while holding a message gets it back only after the broker's ack wait
      // (30 s on NATS JetStream), once per kill, and the test kills each service's replicas more
      // than once: on a loaded machine the followers may need several ack waits to agree (a CI
      // run with two simulators beside it lacked 2 of 220 notifications after 60 s; alone it
      // passed). The assertion is the same; only the wait is longer.
      assert.deepEqual(await lifecycleTotalsProblems(client, 150_000), [], 'one shipment and one message of each kind per paid order: none lost, none doubled');
    } catch (error) {
      // On NATS JetStream also where each message waits (or not), and the server's whole log (its repeated lookups of removed messages left out).
      const nats = busUrl?.startsWith('nats:') ? busUrl : undefined;
      const brokerLog = nats ? broker?.logTail(5000).split('\n').filter((l) => !l.includes('deleted message')).join('\n') : broker?.logTail(20);
      if (nats) console.error(`NATS state:\n${await natsState(nats, namespace).catch((e: unknown) => `could not read the NATS state: ${String(e)}`)}`);
      console.error(`cluster log:\n${cluster.logTail()}\ndatabase log:\n${postgres.logTail(20)}\nbroker log:\n${brokerLog ?? 'none'}`);
      throw error;
    } finally {
      await client.close();
      await cluster.stop();
      await cleanup();
    }
  });
}

async function withPostgres(startBroker?: () => Promise<ServerHandle>, more: Partial<Profile> = {}): Promise<Profile> {
  const postgres = await startPostgres();
  const broker = await startBroker?.();
  const database = await freshDatabase(postgres.url.replace(/\/postgres$/, ''));
  return {
    storeUrl: database.url,
    ...(broker ? { busUrl: broker.url, broker } : {}),
    database: postgres,
    async cleanup() {
      await broker?.cleanup();
      await postgres.cleanup();
    },
    ...more,
  };
}

/** The pids of one random service replica of this cluster that runs and is not among the `stopped`; none if five picks found none. */
function randomReplica(namespace: string, style: SagaStyle, replicas: number, stopped: ReadonlySet<number>): number[] {
  const services = servicesOf(style);
  for (let attempt = 0; attempt < 5; attempt++) {
    const service = services[Math.floor(Math.random() * services.length)]!;
    const replica = `${service}-${1 + Math.floor(Math.random() * replicas)}`;
    let pids: number[] = [];
    try {
      pids = execFileSync('pgrep', ['-f', '--', `--replica ${replica} --namespace ${namespace}`], { encoding: 'utf8' })
        .split('\n').filter(Boolean).map(Number);
    } catch {
      // none: that replica is being started again
    }
    if (pids.length > 0 && !pids.some((pid) => stopped.has(pid))) return pids;
  }
  return [];
}

/** SIGKILLs one random service replica of this cluster, not a hung one (the cluster starts it again). */
function killReplica(namespace: string, style: SagaStyle, replicas: number, stopped: ReadonlySet<number>): number {
  const pids = randomReplica(namespace, style, replicas, stopped);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  return pids.length > 0 ? 1 : 0;
}

/** Hangs one random service replica (SIGSTOP) past its partition leases, then lets it go on (SIGCONT). */
async function hangReplica(namespace: string, style: SagaStyle, replicas: number, stopped: Set<number>): Promise<number> {
  const pids = randomReplica(namespace, style, replicas, stopped);
  for (const pid of pids) {
    stopped.add(pid);
    process.kill(pid, 'SIGSTOP');
  }
  await sleep(HANG_MS);
  for (const pid of pids) {
    process.kill(pid, 'SIGCONT');
    stopped.delete(pid);
  }
  return pids.length > 0 ? 1 : 0;
}

/** Kills a server with SIGKILL, leaves it down for a while, starts it again on the same data. */
async function outage(server: ServerHandle): Promise<void> {
  await server.kill();
  await sleep(2000);
  await server.start();
}

/** Waits until no saga is under way and returns the audit. */
async function settle(client: CourseClient): Promise<Audit> {
  for (let i = 0; i < 240; i++) {
    const answer = await client.call('GET', '/admin/audit').catch(() => undefined);
    if (answer?.status === 200) {
      const audit = answer.body as Audit;
      if (audit.orders.active_sagas === 0) return audit;
    }
    await sleep(500);
  }
  throw new Error('sagas still active after 120 s');
}
