import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { connect as amqpConnect } from 'amqplib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startNats, startPostgres, startRabbitMq, startRedis, type ServerHandle } from './servers.ts';

const SHARED_PORTS = [5432, 6379, 5672, 4222];

/** Pids of the processes listening on the machine's shared server ports. */
function sharedServerPids(): Map<number, number[]> {
  const lines = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' }).split('\n');
  return new Map(
    SHARED_PORTS.map((port) => [
      port,
      lines.filter((line) => line.split(/\s+/)[3]?.endsWith(`:${port}`)).flatMap((line) => [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]))),
    ]),
  );
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** Runs `body` on a fresh server, then checks that kill() left nothing listening and cleanup() left no data. */
async function withServer<H extends ServerHandle>(start: () => Promise<H>, body: (server: H) => Promise<void>): Promise<void> {
  const server = await start();
  try {
    await body(server);
  } finally {
    await server.cleanup();
    await server.cleanup(); // twice is fine
  }
  assert.equal(existsSync(server.dataDir), false, 'cleanup() deletes the data directory');
}

async function crash(server: ServerHandle): Promise<void> {
  await server.kill();
  assert.equal(await refusesConnections(server.port), true, 'nothing listens after kill()');
  await server.start();
}

describe('private servers keep acknowledged data across SIGKILL', () => {
  let shared: Map<number, number[]>;
  before(() => {
    shared = sharedServerPids();
  });
  after(() => {
    assert.deepEqual(sharedServerPids(), shared, 'the shared servers still run, as the same processes');
  });

  test('PostgreSQL', () =>
    withServer(startPostgres, async (server) => {
      assert.match(server.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
      const before = new pg.Client({ connectionString: server.url });
      before.on('error', () => {}); // the kill cuts this connection
      await before.connect();
      await before.query('create table orders (id int primary key, total_cents bigint not null)');
      await before.query('insert into orders values (1, 4200)');
      await crash(server);
      await before.end().catch(() => {});
      assert.match(server.logTail(50), /not properly shut down; automatic recovery in progress/, 'the restart after kill() is a crash recovery');
      const afterwards = new pg.Client({ connectionString: server.url });
      await afterwards.connect();
      try {
        const { rows } = await afterwards.query('select id, total_cents::int as total from orders');
        assert.deepEqual(rows, [{ id: 1, total: 4200 }]);
      } finally {
        await afterwards.end();
      }
    }));

  test('Redis', () =>
    withServer(startRedis, async (server) => {
      assert.match(server.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
      const redis = new Redis(server.url, { maxRetriesPerRequest: 1, retryStrategy: (attempt) => (attempt > 100 ? null : 100) });
      redis.on('error', () => {});
      try {
        assert.equal(await redis.set('orderly:test', 'survives'), 'OK');
        await crash(server);
        assert.equal(await redis.get('orderly:test'), 'survives');
      } finally {
        redis.disconnect();
      }
    }));

  test('NATS JetStream', () =>
    withServer(startNats, async (server) => {
      assert.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
      const nc = await natsConnect({ servers: server.url, reconnect: false });
      try {
        const jsm = await jetstreamManager(nc);
        await jsm.streams.add({ name: 'ORDERLY_TEST', subjects: ['orderly.test.>'], storage: StorageType.File });
        const ack = await jetstream(nc).publish('orderly.test.created', 'survives');
        assert.equal(ack.seq, 1);
      } finally {
        await nc.close();
      }
      await crash(server);
      const again = await natsConnect({ servers: server.url, reconnect: false });
      try {
        const message = await (await jetstreamManager(again)).streams.getMessage('ORDERLY_TEST', { seq: 1 });
        assert.equal(message?.string(), 'survives');
      } finally {
        await again.close();
      }
    }));

  test('RabbitMQ', () =>
    withServer(startRabbitMq, async (server) => {
      assert.match(server.url, /^amqp:\/\/guest:guest@127\.0\.0\.1:\d+$/);
      const queue = 'orderly.test.durable';
      const connection = await amqpConnect(server.url);
      try {
        const channel = await connection.createConfirmChannel();
        await channel.assertQueue(queue, { durable: true });
        // The declaration itself may still sit in Mnesia's write cache (see syncMetadata); the message needs only its confirm.
        await server.syncMetadata();
        channel.sendToQueue(queue, Buffer.from('survives'), { persistent: true });
        await channel.waitForConfirms();
      } finally {
        await connection.close();
      }
      await crash(server);
      const again = await amqpConnect(server.url);
      try {
        const message = await (await again.createChannel()).get(queue, { noAck: true });
        assert.ok(message, 'the persistent message is still in the durable queue');
        assert.equal(message.content.toString(), 'survives');
      } finally {
        await again.close();
      }
    }));
});
