import { appendFileSync } from 'node:fs';
import type { SagaStyle } from '../../src/config.ts';
import { servicesOf } from '../../src/wiring/serviceWiring.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect } from 'amqplib';
import { Redis } from 'ioredis';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { defaultRetry } from '../../src/adapters/broker/delivery.ts';
import { natsNames } from '../../src/adapters/nats/bus.ts';
import { rabbitExchanges, rabbitQueues } from '../../src/adapters/rabbitmq/bus.ts';
import { SERVICES } from '../../src/wiring/serviceWiring.ts';
import { createServer } from 'node:net';
import { stop } from './child.ts';

export const SHARED = {
  postgres: 'postgres://postgres@127.0.0.1:5432',
  rabbitmq: 'amqp://guest:guest@127.0.0.1:5672',
  nats: 'nats://127.0.0.1:4222',
  redis: 'redis://127.0.0.1:6379',
} as const;

export const randomName = (prefix: string) => `${prefix}${randomBytes(5).toString('hex')}`;

/** A fresh database on a PostgreSQL server; `drop` removes it. */
export async function freshDatabase(serverUrl: string) {
  const name = randomName('orderly_test_');
  const admin = new pg.Client({ connectionString: `${serverUrl}/postgres` });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  return {
    url: `${serverUrl}/${name}`,
    async drop() {
      const client = new pg.Client({ connectionString: `${serverUrl}/postgres` });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}

/** Deletes what a namespace left on a broker (queues and exchange, or streams). */
export async function cleanBroker(busUrl: string, namespace: string, partitions = 0): Promise<void> {
  if (busUrl.startsWith('amqp')) {
    await cleanRabbit(namespace, SERVICES, defaultRetry.backoffMs, partitions, busUrl);
  } else if (busUrl.startsWith('redis')) {
    const redis = new Redis(busUrl);
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
  } else if (busUrl.startsWith('nats')) {
    const nc = await natsConnect({ servers: busUrl.replace('nats://', '') });
    const jsm = await jetstreamManager(nc);
    const names = natsNames(namespace);
    for (const stream of [names.stream, names.deadStream, names.leaseStream]) await jsm.streams.delete(stream).catch(() => false);
    await nc.close();
  }
}

/** Deletes the queues of `consumers` in a namespace on RabbitMQ (partitioned: every partition's) and its exchanges. */
export async function cleanRabbit(namespace: string, consumers: readonly string[], backoffMs: readonly number[], partitions = 0, url: string = SHARED.rabbitmq): Promise<void> {
  const connection = await amqpConnect(url);
  const channel = await connection.createChannel();
  for (const consumer of consumers) {
    const queues = rabbitQueues(namespace, consumer, backoffMs, partitions);
    const work = partitions > 0 ? queues.partitions : [queues.main];
    for (const queue of [...work, queues.dead, ...queues.delays.values()]) await channel.deleteQueue(queue);
  }
  const exchanges = rabbitExchanges(namespace);
  for (const exchange of partitions > 0 ? [exchanges.main, exchanges.delay, exchanges.members] : [exchanges.main]) await channel.deleteExchange(exchange);
  await connection.close();
}

export type Cluster = Readonly<{ url: string; process: ChildProcess; stop(): Promise<void>; logTail(): string }>;

/** `npm run cluster` as a child process; resolves once the gateway says every service is ready. */
export async function startCluster(options: {
  storeUrl: string;
  /** None in the synchronous style. */
  busUrl?: string;
  replicas: number;
  namespace: string;
  style?: SagaStyle;
  /** More settings for every process (ORDERLY_…, OTEL_EXPORTER_OTLP_ENDPOINT, …). */
  env?: Readonly<Record<string, string>>;
}): Promise<Cluster> {
  const style = options.style ?? 'orchestration';
  const port = await freeBlock(1 + servicesOf(style).length * options.replicas);
  const child = spawn(process.execPath, ['src/cli.ts', 'cluster', '--store', options.storeUrl, ...(options.busUrl ? ['--bus', options.busUrl] : []),
    '--replicas', String(options.replicas), '--port', String(port), '--namespace', options.namespace], {
    env: { ...process.env, LOG_LEVEL: 'warn', SAGA_STYLE: style, ...options.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  // DEBUG_CLUSTER_LOG=<file>: every line the cluster logs, appended there (a failure prints only the last 20 kB).
  const keep = process.env.DEBUG_CLUSTER_LOG;
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
    if (keep) appendFileSync(keep, chunk);
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`the cluster exited with ${child.exitCode}: ${stderr}`);
    const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ready) return { url, process: child, stop: () => stop(child, 'SIGTERM'), logTail: () => stderr };
    await sleep(200);
  }
  await stop(child, 'SIGKILL');
  throw new Error(`the cluster was not ready within 60 s: ${stderr}`);
}

/**
 * The first of `size` consecutive free ports (the cluster puts its services on the ports after
 * the gateway's), below the ephemeral range, where outgoing connections would take them.
 */
export async function freeBlock(size: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 10_000);
    const free = await Promise.all(Array.from({ length: size }, (_, i) => isFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no ${size} consecutive free ports found`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
