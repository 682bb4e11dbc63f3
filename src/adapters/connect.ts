import type { Bus } from '../ports/bus.ts';
import type { Store } from '../ports/store.ts';
import type { Logger } from '../ports/log.ts';

// Each adapter, and the client library under it, is imported only when its URL is given: a
// replica on PostgreSQL and RabbitMQ never loads ioredis or the NATS client, and the other way
// round (docs/performance.md#memory).

/**
 * A service's store from a URL: postgres://… (each service owns a schema named after it) or
 * redis://… (each service owns the keys under `<namespace>:<service>:`).
 */
/** `cacheDocs`: documents kept in memory between transactions (`DocCache`). */
export async function connectStore(url: string, service: string, namespace: string, busUrl: string, log: Logger, partitions: number, cacheDocs = 0): Promise<Readonly<{ store: Store; close(): Promise<void> }>> {
  const scheme = schemeOf(url);
  switch (scheme) {
    case 'postgres':
    case 'postgresql': {
      const [{ openPostgres }, { openSqlStore }] = await Promise.all([import('./postgres/client.ts'), import('./sql/store.ts')]);
      const client = await openPostgres(url, { max: 8 });
      const store = await openSqlStore(client, service, { cacheDocs });
      return { store, close: async () => { await store.close(); await client.close(); } };
    }
    case 'redis':
    case 'rediss': {
      const [{ Redis }, { redisNames }, { openRedisStore }] = await Promise.all([import('ioredis'), import('./redis/bus.ts'), import('./redis/store.ts')]);
      const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: null });
      await redis.connect();
      // With the bus on the same Redis, commits append their messages to the streams themselves.
      const streams = busUrl === url ? redisNames(namespace, partitions).streamOf : undefined;
      const store = await openRedisStore(redis, service, { prefix: `${namespace}:${service}:`, log, cacheDocs, ...(streams ? { streams } : {}) });
      return { store, close: async () => { await store.close(); redis.disconnect(); } };
    }
    default:
      throw new Error(`Unsupported store URL ${redact(url)}: use postgres://user@host:port/database or redis://host:port`);
  }
}

/**
 * A bus from a URL: amqp://… (RabbitMQ), nats://… (NATS JetStream) or redis://… (Redis Streams).
 * `partitions`: how many partitions each consumer's messages are split into, each read by one
 * replica at a time (Redis Streams, NATS JetStream and RabbitMQ: docs/scaling.md).
 */
export async function connectBus(url: string, namespace: string, replica: string, log: Logger, partitions: number): Promise<Bus> {
  const scheme = schemeOf(url);
  switch (scheme) {
    case 'amqp':
    case 'amqps': {
      const { rabbitBus } = await import('./rabbitmq/bus.ts');
      return rabbitBus({ url, namespace, log, replica, partitions });
    }
    case 'nats': {
      const { natsBus } = await import('./nats/bus.ts');
      return natsBus({ servers: url, namespace, log, replica, partitions });
    }
    case 'redis':
    case 'rediss': {
      const { redisBus } = await import('./redis/bus.ts');
      return redisBus({ url, namespace, log, consumerName: replica, partitions });
    }
    default:
      throw new Error(`Unsupported bus URL ${redact(url)}: use amqp://user:pass@host:port, nats://host:port or redis://host:port`);
  }
}

function schemeOf(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (!match?.[1]) throw new Error(`${redact(url)} is not a URL (expected scheme://…)`);
  return match[1].toLowerCase();
}

/** A URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}
