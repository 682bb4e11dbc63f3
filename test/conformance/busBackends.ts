import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { connect as amqpConnect, type ChannelModel } from 'amqplib';
import { Redis } from 'ioredis';
import { decodeBatch, type RetryPolicy } from '../../src/adapters/broker/delivery.ts';
import { inProcessBus } from '../../src/adapters/inproc/bus.ts';
import { natsBus, natsNames } from '../../src/adapters/nats/bus.ts';
import { rabbitBus, rabbitExchanges, rabbitQueues } from '../../src/adapters/rabbitmq/bus.ts';
import { BATCH, redisBus, redisNames } from '../../src/adapters/redis/bus.ts';
import type { Bus } from '../../src/ports/bus.ts';
import { deadLetterId, type DeadLetter as StoredLetter } from '../../src/ports/deadLetters.ts';
import type { KeptLetter } from '../../src/ports/store.ts';
import { createLogger } from '../../src/runtime/log.ts';

const log = createLogger(process.env.ORDERLY_TEST_LOG ?? 'silent');
const RABBIT = { host: '127.0.0.1', port: 5672 };
const NATS = { host: '127.0.0.1', port: 4222 };
const REDIS = { host: '127.0.0.1', port: 6379 };

export type DeadLetter = Readonly<{ id: string; error: string }>;
export type Endpoint = Readonly<{ host: string; port: number }>;

/** What the bus suite needs to know about one bus adapter, beyond the Bus port itself. */
export type BusBackend = Readonly<{
  name: string;
  /** Where a broker listens; absent for the in-process bus (one instance per process, keeps nothing). */
  broker?: Endpoint;
  open(namespace: string, retry: RetryPolicy, via?: Endpoint): Promise<Bus>;
  /** Messages the broker holds for `consumer` and `type`, not yet delivered. */
  waiting(namespace: string, consumer: string, type: string): Promise<number>;
  deadLetters(namespace: string, consumer: string): Promise<DeadLetter[]>;
  /** Deletes whatever the namespace left on the broker. */
  cleanup(namespace: string, consumers: readonly string[], retry: RetryPolicy): Promise<void>;
  close(): Promise<void>;
}>;

export function inProcessBackend(): BusBackend {
  // What a store keeps for the in-process bus, by namespace/consumer and message id.
  const dead = new Map<string, Map<string, KeptLetter>>();
  const of = (namespace: string, consumer: string) => dead.get(`${namespace}/${consumer}`) ?? dead.set(`${namespace}/${consumer}`, new Map()).get(`${namespace}/${consumer}`)!;
  const letter = (kept: KeptLetter): StoredLetter => ({ id: deadLetterId(kept.consumer, kept.message.id), consumer: kept.consumer, reason: kept.error, at: kept.at, messages: [kept.message] });
  return {
    name: 'the in-process bus',
    async open(namespace, retry) {
      return inProcessBus({
        ...retry,
        shelf: {
          keep: async (consumer, message, error) => void of(namespace, consumer).set(message.id, { consumer, message, error, at: Date.now() }),
          list: async (consumer, max) => [...of(namespace, consumer).values()].slice(0, max).map(letter),
          get: async (consumer, id) => {
            const kept = of(namespace, consumer).get(id);
            return kept && letter(kept);
          },
          remove: async (consumer, id) => of(namespace, consumer).delete(id),
        },
      });
    },
    waiting: () => Promise.reject(new Error('The in-process bus holds no messages')),
    deadLetters: async (namespace, consumer) => [...of(namespace, consumer).values()].map((d) => ({ id: d.message.id, error: d.error })),
    async cleanup(namespace) {
      for (const key of dead.keys()) if (key.startsWith(`${namespace}/`)) dead.delete(key);
    },
    async close() {},
  };
}

/** RabbitMQ; with `partitions`, each consumer's messages partitioned among its replicas (docs/scaling.md). */
export function rabbitBackend(partitions = 0): BusBackend {
  let admin: Promise<ChannelModel> | undefined;
  const connection = () => (admin ??= amqpConnect(`amqp://guest:guest@${RABBIT.host}:${RABBIT.port}`));
  // A channel per inspection: a failed one (404) is closed by the broker and must not be reused.
  async function inspect<T>(fn: (channel: Awaited<ReturnType<ChannelModel['createChannel']>>) => Promise<T>): Promise<T> {
    const channel = await (await connection()).createChannel();
    channel.on('error', () => {});
    try {
      return await fn(channel);
    } finally {
      await channel.close().catch(() => {});
    }
  }
  return {
    name: partitions > 0 ? `RabbitMQ, ${partitions} partitions` : 'RabbitMQ',
    broker: RABBIT,
    open: (namespace, retry, via = RABBIT) => rabbitBus({ url: `amqp://guest:guest@${via.host}:${via.port}`, namespace, prefetch: 4, ...(partitions > 0 ? { partitions, leaseMs: 600 } : {}), ...retry, log }),
    waiting: (namespace, consumer) => inspect(async (ch) => {
      const queues = rabbitQueues(namespace, consumer, [], partitions);
      let waiting = 0;
      for (const queue of partitions > 0 ? queues.partitions : [queues.main]) waiting += (await ch.checkQueue(queue)).messageCount;
      return waiting;
    }),
    deadLetters: (namespace, consumer) =>
      inspect(async (ch) => {
        const found: DeadLetter[] = [];
        // Unacknowledged gets; closing the channel puts them back for the next look.
        for (let m = await ch.get(rabbitQueues(namespace, consumer, []).dead); m !== false; m = await ch.get(rabbitQueues(namespace, consumer, []).dead)) {
          for (const e of decodeBatch(m.content)) found.push({ id: e.id, error: String(m.properties.headers?.['x-orderly-error']) });
        }
        return found;
      }),
    cleanup: (namespace, consumers, retry) =>
      inspect(async (ch) => {
        for (const consumer of consumers) {
          const queues = rabbitQueues(namespace, consumer, retry.backoffMs, partitions);
          for (const queue of [...(partitions > 0 ? queues.partitions : [queues.main]), queues.dead, ...queues.delays.values()]) await ch.deleteQueue(queue);
        }
        const exchanges = rabbitExchanges(namespace);
        for (const exchange of partitions > 0 ? [exchanges.main, exchanges.delay, exchanges.members] : [exchanges.main]) await ch.deleteExchange(exchange);
      }),
    async close() {
      await (await admin)?.close();
    },
  };
}

/** NATS JetStream; with `partitions`, each consumer's messages partitioned among its replicas (docs/scaling.md). */
export function natsBackend(partitions = 0): BusBackend {
  let admin: Promise<{ nc: NatsConnection; jsm: JetStreamManager }> | undefined;
  const manager = async () => {
    admin ??= natsConnect({ servers: `${NATS.host}:${NATS.port}` }).then(async (nc) => ({ nc, jsm: await jetstreamManager(nc) }));
    return (await admin).jsm;
  };
  return {
    name: partitions > 0 ? `NATS JetStream, ${partitions} partitions` : 'NATS JetStream',
    broker: NATS,
    open: (namespace, retry, via = NATS) => natsBus({ servers: `nats://${via.host}:${via.port}`, namespace, prefetch: 4, ...(partitions > 0 ? { partitions, leaseMs: 600 } : {}), ...retry, log }),
    async waiting(namespace, consumer, type) {
      const names = natsNames(namespace, partitions);
      const durables = partitions > 0 ? Array.from({ length: partitions }, (_, p) => names.durable(consumer, type, p)) : [names.durable(consumer, type)];
      let waiting = 0;
      for (const durable of durables) waiting += (await (await manager()).consumers.info(names.stream, durable)).num_pending;
      return waiting;
    },
    async deadLetters(namespace, consumer) {
      const jsm = await manager();
      const names = natsNames(namespace);
      const { state } = await jsm.streams.info(names.deadStream);
      const found: DeadLetter[] = [];
      for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(names.deadStream, { seq });
        if (m?.subject === names.deadSubject(consumer)) for (const e of decodeBatch(m.data)) found.push({ id: e.id, error: m.header.get('Orderly-Error') });
      }
      return found;
    },
    async cleanup(namespace) {
      const jsm = await manager();
      const names = natsNames(namespace);
      // Deleting a stream deletes its consumers.
      for (const stream of [names.stream, names.deadStream, names.leaseStream]) await jsm.streams.delete(stream).catch(() => false);
    },
    async close() {
      await (await admin)?.nc.close();
    },
  };
}

/** Redis Streams; with `partitions`, each consumer's messages partitioned among its replicas (docs/scaling.md). */
export function redisBackend(partitions = 0): BusBackend {
  let admin: Redis | undefined;
  const client = () => (admin ??= new Redis({ ...REDIS, protocol: 2 }));
  const field = (fields: readonly string[], name: string) => fields[fields.indexOf(name) + 1] ?? '';
  return {
    name: partitions > 0 ? `Redis Streams, ${partitions} partitions` : 'Redis Streams',
    broker: REDIS,
    // Maintenance every 50 ms and a short claim timeout: every test runs while its streams are
    // trimmed and messages left pending (not acknowledged) come back within the test.
    open: (namespace, retry, via = REDIS) =>
      redisBus({ url: `redis://${via.host}:${via.port}`, namespace, prefetch: 4, maintenanceMs: 50, claimIdleMs: 250, partitions, leaseMs: 600, ...retry, log }),
    async waiting(namespace, consumer, type) {
      let waiting = 0;
      for (const stream of redisNames(namespace, partitions).streamsOf(type)) {
        const groups = (await client().call('XINFO', ['GROUPS', stream])) as string[][];
        const group = groups.find((g) => field(g, 'name') === consumer);
        if (group === undefined) throw new Error(`No group ${consumer} on ${stream}`);
        waiting += (await client().xrange(stream, `(${field(group, 'last-delivered-id')}`, '+')).length;
      }
      return waiting;
    },
    async deadLetters(namespace, consumer) {
      const entries = await client().xrange(redisNames(namespace).dead(consumer), '-', '+');
      return entries.flatMap(([, fields]) => decodeBatch(Buffer.from(field(fields, BATCH))).map((e) => ({ id: e.id, error: field(fields, 'error') })));
    },
    async cleanup(namespace) {
      // Namespaces are [a-z0-9_]: nothing in them is a glob pattern.
      for (let cursor = '0'; ;) {
        const [next, keys] = await client().scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
        if (keys.length > 0) await client().unlink(...keys);
        cursor = next;
        if (cursor === '0') break;
      }
    },
    async close() {
      await admin?.quit();
    },
  };
}
