import { countDeadLetters } from '../../observability/metrics.ts';
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type GetMessage, type Options } from 'amqplib';
import { randomUUID } from 'node:crypto';
import type { Envelope } from '../../core/message.ts';
import { aboutMessages } from '../../observability/tracing.ts';
import type { Bus, Handler } from '../../ports/bus.ts';
import { deadLetterId, splitDeadLetterId, type DeadLetter, type DeadLetters } from '../../ports/deadLetters.ts';
import {
  DEFAULT_PREFETCH, backoffAfter, type BrokerBusOptions, batchesBy, batchesByType, brokerLetter, checkName, decodeBatch, encodeBatch, errorText, handleBatch, retryPolicy,
} from '../broker/delivery.ts';
import { partitionLeases, type PartitionLeases } from '../broker/leases.ts';
import { partitionOf } from '../broker/partitions.ts';
import { rabbitLeases, type RabbitLeases } from './leases.ts';

export type RabbitBusOptions = BrokerBusOptions & Readonly<{
  url: string;
  /**
   * Partitions of each consumer's messages, each read by one replica at a time
   * (docs/scaling.md); default 0: none, the replicas of a consumer compete for its queue.
   * Every process of a deployment must use the same number.
   */
  partitions?: number;
  /** This process among a consumer's replicas (partitioned only); default a random id. */
  replica?: string;
  /**
   * Partitioned only: how long a replica that stopped renewing (died, hung, cut off) keeps its
   * partitions; default 6 s. It also sets the connection's AMQP heartbeat (unless the URL does),
   * a third of it in whole seconds, at least 1: the broker drops a silent connection, with its
   * leases and its unacknowledged deliveries, two to three heartbeats after it fell silent.
   */
  leaseMs?: number;
}>;

const DELIVERY = 'x-orderly-delivery';
const ERROR = 'x-orderly-error';
const CONSUMER = 'x-orderly-consumer';
/** A dead letter's own id and when it was kept (a broker message id may repeat). */
const DEAD_ID = 'x-orderly-dead-id';
const DEAD_AT = 'x-orderly-dead-at';

/**
 * The queues of one consumer: its work queue, its dead letters, and one delay queue per
 * distinct backoff, whose expired messages fall back into the work queue. One queue per delay
 * (rather than a per-message expiration) because RabbitMQ only expires a queue's head.
 * Partitioned, a queue per partition takes the work queue's place (`<main>.<p>`), and the delay
 * queues (`<main>.delay.<ms>`, other arguments than unpartitioned ones) send each message back
 * to its partition's queue; a partition's lease is an exclusive queue (`<main>.lease.<p>`).
 */
export function rabbitQueues(namespace: string, consumer: string, backoffMs: readonly number[], partitions = 0) {
  const main = `${namespace}.${consumer}`;
  const delay = partitions > 0 ? 'delay' : 'retry';
  return {
    main,
    dead: `${main}.dead`,
    delays: new Map([...new Set(backoffMs)].map((ms) => [ms, `${main}.${delay}.${ms}`])),
    partitions: Array.from({ length: partitions }, (_, p) => `${main}.${p}`),
    lease: (p: number) => `${main}.lease.${p}`,
  };
}

/**
 * The exchanges of a namespace: its topic exchange (routed by type, partitioned by
 * `<type>.<partition>`), and when partitioned the exchange retries wait behind (routed by
 * `<consumer>.<partition>.<delay>` to the delay queue, then by the same key from the namespace's
 * exchange back to the partition's queue) and the one members hear each other on.
 */
export function rabbitExchanges(namespace: string) {
  return { main: namespace, delay: `${namespace}.delay`, members: `${namespace}.members` };
}

type Subscription = Readonly<{ consumer: string; types: readonly string[]; handler: Handler; partitioned: Partitioned | undefined }>;
/** A partitioned subscription: its leases, and what it reads on the current connection. */
type Partitioned = {
  readonly leases: PartitionLeases;
  readonly broker: RabbitLeases;
  /** The channel its partitions are read on, and each partition's consumer tag there. */
  reading: { readonly session: Session; readonly channel: Channel; readonly tags: Map<number, string> } | undefined;
  ticking: boolean;
};
/** What exists on one connection; rebuilt from scratch on every reconnect. */
type Session = { model: ChannelModel; publisher: ConfirmChannel; consumers: Set<string> };

/**
 * The bus on RabbitMQ: a durable topic exchange `<namespace>` routed by message type, and a
 * durable queue per consumer, shared by its replicas. Publishing waits for the broker's
 * confirms of persistent messages; a message is acknowledged only after its handler resolved.
 * On a lost connection amqplib reconnects with backoff and `setup` declares everything again
 * and resumes every consumer; meanwhile `publish` rejects (the relay retries).
 */
export async function rabbitBus(options: RabbitBusOptions): Promise<Bus> {
  const { namespace: ns, log } = options;
  checkName('namespace', ns);
  const policy = retryPolicy(options.maxDeliveries, options.backoffMs);
  const prefetch = options.prefetch ?? DEFAULT_PREFETCH;
  const partitions = options.partitions ?? 0;
  const leaseMs = options.leaseMs ?? 6_000;
  const me = options.replica ?? `r_${randomUUID().slice(0, 12)}`;
  const exchanges = rabbitExchanges(ns);
  const subscriptions = new Map<string, Subscription>();
  let session: Session | undefined;
  const waiting: { resolve: (s: Session) => void; reject: (e: Error) => void }[] = [];
  let closed = false;

  async function setup(model: ChannelModel): Promise<void> {
    const publisher = await model.createConfirmChannel();
    const next: Session = { model, publisher, consumers: new Set() };
    watch(next, publisher);
    await publisher.assertExchange(ns, 'topic', { durable: true });
    for (const subscription of subscriptions.values()) await startConsumer(next, subscription);
    session = next;
    for (const waiter of waiting.splice(0)) waiter.resolve(next);
  }

  // Any channel closing under a live connection (a broker-side error, a deleted queue) drops
  // the whole connection, so that recovery rebuilds one consistent set of channels.
  function watch(s: Session, channel: Channel): void {
    channel.on('error', (err: Error) => log.warn({ err, namespace: ns }, 'rabbitmq: channel error'));
    channel.on('close', () => {
      // Deferred: when the whole connection dropped, its 'disconnect' comes after the channels' 'close'.
      setImmediate(() => {
        if (closed || session !== s) return;
        log.warn({ namespace: ns }, 'rabbitmq: channel closed; reconnecting');
        s.model.close().catch(() => {});
      });
    });
  }

  /** The consumer's durable queues and bindings. */
  async function declareQueues(channel: Channel, consumer: string, types: readonly string[]): Promise<ReturnType<typeof rabbitQueues>> {
    if (partitions > 0) return declarePartitions(channel, consumer, types);
    const queues = rabbitQueues(ns, consumer, policy.backoffMs);
    await channel.assertQueue(queues.main, { durable: true });
    await channel.assertQueue(queues.dead, { durable: true });
    for (const [ms, name] of queues.delays) {
      await channel.assertQueue(name, { durable: true, messageTtl: ms, deadLetterExchange: '', deadLetterRoutingKey: queues.main });
    }
    for (const type of types) await channel.bindQueue(queues.main, ns, type);
    return queues;
  }

  /** Partitioned: a queue per partition bound to the consumer's types in it and to its own retries, and the delay queues. */
  async function declarePartitions(channel: Channel, consumer: string, types: readonly string[]): Promise<ReturnType<typeof rabbitQueues>> {
    const queues = rabbitQueues(ns, consumer, policy.backoffMs, partitions);
    await channel.assertQueue(queues.dead, { durable: true });
    await channel.assertExchange(exchanges.delay, 'topic', { durable: true });
    for (const [ms, name] of queues.delays) {
      // Expired, a retry goes on to the namespace's exchange with the key it came with.
      await channel.assertQueue(name, { durable: true, messageTtl: ms, deadLetterExchange: exchanges.main });
      await channel.bindQueue(name, exchanges.delay, `${consumer}.*.${ms}`);
    }
    for (const [p, name] of queues.partitions.entries()) {
      await channel.assertQueue(name, { durable: true });
      for (const type of types) await channel.bindQueue(name, exchanges.main, `${type}.${p}`);
      await channel.bindQueue(name, exchanges.main, `${consumer}.${p}.*`);
    }
    return queues;
  }

  async function startConsumer(s: Session, subscription: Subscription): Promise<void> {
    const channel = await s.model.createChannel();
    watch(s, channel);
    const queues = await declareQueues(channel, subscription.consumer, subscription.types);
    const part = subscription.partitioned;
    if (part === undefined) {
      await channel.prefetch(prefetch);
      await channel.consume(queues.main, (msg) => {
        // null: the broker cancelled the consumer (its queue was deleted); watch() handles the close.
        if (msg !== null) void deliver(s, channel, subscription, msg);
      });
    } else {
      // One limit for the channel (global), shared by the partitions' consumers on it.
      await channel.prefetch(prefetch, true);
      await part.broker.attach(s.model, (c) => watch(s, c));
      part.reading = { session: s, channel, tags: new Map() };
      await leaseTick(subscription);
    }
    s.consumers.add(subscription.consumer);
  }

  /**
   * Renews, releases and takes the subscription's partition leases, then reads the partitions
   * whose lease this connection holds, and no others.
   */
  async function leaseTick(sub: Subscription): Promise<void> {
    const part = sub.partitioned;
    if (part === undefined || part.ticking || closed) return;
    part.ticking = true;
    try {
      await part.leases.tick().catch((err: unknown) => closed || log.warn({ err, consumer: sub.consumer, namespace: ns }, 'rabbitmq: partition leases could not be renewed; retrying'));
      const reading = part.reading;
      if (reading === undefined || closed) return;
      const owned = new Set([...part.leases.owned()].filter((p) => part.broker.holds(p)));
      for (const p of [...reading.tags.keys()]) if (!owned.has(p)) await stopReading(part, p);
      const queues = rabbitQueues(ns, sub.consumer, [], partitions);
      for (const p of owned) {
        if (reading.tags.has(p) || part.reading !== reading) continue;
        const { consumerTag } = await reading.channel.consume(queues.partitions[p]!, (msg) => {
          if (msg !== null) void deliver(reading.session, reading.channel, sub, msg, p);
        });
        reading.tags.set(p, consumerTag);
      }
    } catch (err) {
      if (!closed) log.warn({ err, consumer: sub.consumer, namespace: ns }, 'rabbitmq: could not read the partitions owned; retrying');
    } finally {
      part.ticking = false;
    }
  }

  /** Stops reading partition `p` (before its lease is given back); what arrives meanwhile goes back to the queue. */
  async function stopReading(part: Partitioned, p: number): Promise<void> {
    const reading = part.reading;
    const tag = reading?.tags.get(p);
    if (reading === undefined || tag === undefined) return;
    reading.tags.delete(p);
    await reading.channel.cancel(tag);
  }

  /**
   * Handles each envelope of a broker message. Those whose handler failed go on, as a message of
   * their own, to a delay queue (retry) or after the last delivery to the dead letters; those
   * that committed are done. Bytes that are no batch of envelopes go straight to the dead letters.
   */
  async function deliver(s: Session, channel: Channel, { consumer, handler, partitioned }: Subscription, msg: ConsumeMessage, partition?: number): Promise<void> {
    // Delivered as the partition was given up: not handled here, back to its queue for the new owner.
    if (partition !== undefined && partitioned?.reading?.tags.has(partition) !== true) {
      settle(() => channel.nack(msg, false, true));
      return;
    }
    const delivery = Number(msg.properties.headers?.[DELIVERY] ?? 1);
    const context = { consumer, messageId: msg.properties.messageId as unknown, delivery };
    let batch: Envelope[] | undefined;
    let failed: { content: Buffer; error: unknown; messages?: readonly Envelope[]; permanent?: boolean } | undefined;
    try {
      batch = decodeBatch(msg.content);
      const result = await handleBatch(batch, handler);
      if (result.failed.length > 0) failed = { content: result.failed.length === batch.length ? msg.content : encodeBatch(result.failed), error: result.error, messages: result.failed, permanent: result.permanent };
    } catch (error) {
      failed = { content: msg.content, error };
    }
    if (failed) {
      const text = errorText(failed.error);
      try {
        if (batch !== undefined && delivery < policy.maxDeliveries && !failed.permanent) {
          log.warn({ ...context, ...aboutMessages(failed.messages), err: failed.error }, 'rabbitmq: handler failed; will retry');
          const [exchange, key] = partition === undefined ? ['', retryQueue(consumer, delivery)] : [exchanges.delay, `${consumer}.${partition}.${backoffAfter(policy, delivery)}`];
          await forward(s.publisher, exchange, key, msg, failed.content, { [DELIVERY]: delivery + 1 });
        } else {
          log.error({ ...context, ...aboutMessages(failed.messages ?? batch), error: text }, 'rabbitmq: message dead-lettered');
          countDeadLetters(consumer, (failed.messages ?? batch)?.[0]?.type, (failed.messages ?? batch)?.length);
          await forward(s.publisher, '', rabbitQueues(ns, consumer, []).dead, msg, failed.content, {
            [DELIVERY]: delivery, [ERROR]: text, [CONSUMER]: consumer, [DEAD_ID]: randomUUID(), [DEAD_AT]: Date.now(),
          });
        }
      } catch (sendError) {
        // Not moved aside, so it must not be lost: back to the queue, without a delay.
        log.warn({ ...context, err: sendError }, 'rabbitmq: could not move a failed message; requeueing');
        settle(() => channel.nack(msg, false, true));
        return;
      }
    }
    settle(() => channel.ack(msg));
  }

  function retryQueue(consumer: string, delivery: number): string {
    const name = rabbitQueues(ns, consumer, policy.backoffMs).delays.get(backoffAfter(policy, delivery));
    if (name === undefined) throw new Error('No delay queue for this backoff');
    return name;
  }

  /** A subscription's partition leases, kept on the broker (./leases.ts). */
  function partitionedOf(consumer: string): Partitioned {
    const queues = rabbitQueues(ns, consumer, [], partitions);
    const broker = rabbitLeases({ members: exchanges.members, lease: queues.lease }, consumer, (p) => stopReading(part, p));
    const part: Partitioned = {
      leases: partitionLeases({ backend: broker.backend, about: { bus: 'rabbitmq', consumer, namespace: ns }, me, count: partitions, ttlMs: leaseMs, log }),
      broker, reading: undefined, ticking: false,
    };
    return part;
  }

  function nextSession(): Promise<Session> {
    if (closed) return Promise.reject(new Error('The bus is closed'));
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  }

  const leaseTimer = partitions > 0 ? setInterval(() => {
    for (const sub of subscriptions.values()) if (sub.partitioned?.reading !== undefined) void leaseTick(sub);
  }, Math.round(leaseMs / 3)) : undefined;
  leaseTimer?.unref();

  const url = partitions > 0 ? withHeartbeat(options.url, Math.max(1, Math.floor(leaseMs / 3000))) : options.url;
  const connection = await connect(url, {
    clientProperties: { connection_name: `orderly ${ns}` },
    // Without it, Nagle's algorithm holds small frames (publishes, acks) back for up to ~40 ms.
    noDelay: true,
    recovery: { initialDelay: 100, maxDelay: 5000, initialMaxRetries: 3, setup },
  });
  connection.on('error', (err: Error) => log.warn({ err, namespace: ns }, 'rabbitmq: connection error'));
  connection.on('disconnect', (err: Error) => {
    session = undefined;
    // The broker drops this connection's leases and puts back what it was handed.
    for (const { partitioned } of subscriptions.values()) {
      partitioned?.broker.detach();
      if (partitioned) partitioned.reading = undefined;
    }
    if (!closed) log.warn({ err, namespace: ns }, 'rabbitmq: connection lost; reconnecting');
  });
  connection.on('connect', () => log.info({ namespace: ns }, 'rabbitmq: connected'));

  /**
   * Looks through `consumer`'s dead-letter queue on a channel of its own, taking its messages
   * unacknowledged one by one until `stop` says so; closing the channel puts back every one
   * not acknowledged, in its place. A queue is no store: showing one dead letter reads those before it.
   */
  async function throughDead(consumer: string, stop: (msg: GetMessage, channel: Channel) => Promise<boolean>): Promise<void> {
    const s = session;
    if (s === undefined) throw new Error('RabbitMQ: not connected');
    const channel = await s.model.createChannel();
    channel.on('error', (err: Error) => log.warn({ err, consumer }, 'rabbitmq: dead-letter channel error'));
    try {
      const queue = rabbitQueues(ns, consumer, []).dead;
      for (let seen = 0, msg = await channel.get(queue); msg !== false && seen < MAX_LOOKED_AT; seen++, msg = await channel.get(queue)) {
        if (await stop(msg, channel)) return;
      }
    } finally {
      await channel.close().catch(() => {});
    }
  }

  const letterOf = (consumer: string, msg: GetMessage): DeadLetter => {
    const h = msg.properties.headers ?? {};
    return brokerLetter(deadLetterId(consumer, String(h[DEAD_ID] ?? msg.properties.messageId)), consumer, String(h[ERROR] ?? ''), Number(h[DEAD_AT] ?? 0), msg.content);
  };

  /** Finds a dead letter of a consumer subscribed here and, when `act` is given, acts on it and acknowledges it (gone from the queue). */
  async function find(id: string, act?: (msg: GetMessage, s: Session, consumer: string) => Promise<void>): Promise<DeadLetter | undefined> {
    const split = splitDeadLetterId(id);
    if (!split || !subscriptions.has(split.consumer)) return undefined;
    let found: DeadLetter | undefined;
    await throughDead(split.consumer, async (msg, channel) => {
      const letter = letterOf(split.consumer, msg);
      if (letter.id !== id) return false;
      if (act) {
        const s = session;
        if (s === undefined) throw new Error('RabbitMQ: not connected');
        await act(msg, s, split.consumer);
        channel.ack(msg);
      }
      found = letter;
      return true;
    });
    return found;
  }

  const deadLetters: DeadLetters = {
    async list(max) {
      const letters: DeadLetter[] = [];
      for (const consumer of subscriptions.keys()) {
        let n = 0;
        await throughDead(consumer, async (msg) => {
          letters.push(letterOf(consumer, msg));
          return ++n >= max;
        });
      }
      return letters;
    },
    get: (id) => find(id),
    // Straight into the consumer's own queue (partitioned: its partition's), so that no other consumer of the type gets it, as a first delivery.
    redrive: async (id) => (await find(id, (msg, s, consumer) => send(s.publisher, '', ownQueue(consumer, msg), msg.content, {
      messageId: msg.properties.messageId as string, type: msg.properties.type as string, headers: { [DELIVERY]: 1 },
    }))) !== undefined,
    discard: async (id) => (await find(id, async () => {})) !== undefined,
  };

  /** The queue a redriven dead letter goes to: the consumer's, or its first message's partition's. */
  function ownQueue(consumer: string, msg: GetMessage): string {
    const queues = rabbitQueues(ns, consumer, [], partitions);
    if (partitions === 0) return queues.main;
    const [first] = brokerLetter('', consumer, '', 0, msg.content).messages;
    return queues.partitions[partitionOf(first ?? { id: String(msg.properties.messageId), correlationId: '' }, partitions)]!;
  }

  return {
    deadLetters,
    connected: () => session !== undefined && !closed,
    async publish(messages) {
      for (const message of messages) checkName('message type', message.type);
      const s = session;
      if (s === undefined) throw new Error('RabbitMQ: not connected');
      if (partitions > 0) {
        // One broker message per type and partition, routed `<type>.<partition>`.
        await Promise.all([...batchesBy(messages, (m) => `${m.type}.${partitionOf(m, partitions)}`)].map(([key, batch]) =>
          send(s.publisher, ns, key, encodeBatch(batch), { messageId: batch[0]!.id, type: batch[0]!.type })));
        return;
      }
      await Promise.all(batchesByType(messages).map((batch) =>
        send(s.publisher, ns, batch[0]!.type, encodeBatch(batch), { messageId: batch[0]!.id, type: batch[0]!.type })));
    },

    async subscribe(consumer, types, handler) {
      checkName('consumer', consumer);
      for (const type of types) checkName('message type', type);
      if (subscriptions.has(consumer)) throw new Error(`${consumer} already subscribes on this bus`);
      const subscription: Subscription = { consumer, types: [...types], handler, partitioned: partitions > 0 ? partitionedOf(consumer) : undefined };
      subscriptions.set(consumer, subscription);
      for (;;) {
        const s = session ?? (await nextSession());
        if (s.consumers.has(consumer)) return; // a reconnect's setup started it already
        try {
          await startConsumer(s, subscription);
          return;
        } catch (error) {
          if (session === s) {
            subscriptions.delete(consumer);
            throw error;
          }
          // The connection went away meanwhile; the next setup starts this consumer.
        }
      }
    },

    async declare(consumer, types) {
      checkName('consumer', consumer);
      for (const type of types) checkName('message type', type);
      const s = session ?? (await nextSession());
      const channel = await s.model.createChannel();
      try {
        await declareQueues(channel, consumer, types);
      } finally {
        await channel.close().catch(() => {});
      }
    },

    async close() {
      closed = true;
      clearInterval(leaseTimer);
      for (const waiter of waiting.splice(0)) waiter.reject(new Error('The bus is closed'));
      // Partitions stop being read and are given back at once, so that the others take them now.
      for (const sub of subscriptions.values()) {
        await sub.partitioned?.leases.close(true).catch((err: unknown) => log.warn({ err, consumer: sub.consumer }, 'rabbitmq: could not give the partitions back; others take them when this connection is gone'));
      }
      session = undefined;
      // Unacknowledged deliveries go back to their queues; their late acks are ignored.
      await connection.close();
    },
  };
}

/** Dead letters looked at per consumer and look. */
const MAX_LOOKED_AT = 10_000;

/** Publishes persistently and resolves on the broker's confirm. */
function send(channel: ConfirmChannel, exchange: string, key: string, content: Buffer, props: Options.Publish): Promise<void> {
  return new Promise((resolve, reject) => {
    channel.publish(exchange, key, content, { ...props, persistent: true, contentType: 'application/json' }, (err: unknown) =>
      err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
    );
  });
}

/** A message again (all or some of its envelopes), to another queue, with our headers only (not the broker's x-death). */
function forward(channel: ConfirmChannel, exchange: string, key: string, msg: ConsumeMessage, content: Buffer, headers: Record<string, unknown>): Promise<void> {
  return send(channel, exchange, key, content, { messageId: msg.properties.messageId as string, type: msg.properties.type as string, headers });
}

/** The URL with an AMQP heartbeat of `seconds`, unless it names one. */
function withHeartbeat(url: string, seconds: number): string {
  const parsed = new URL(url);
  if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', String(seconds));
  return parsed.toString();
}

/** Acks and nacks on a channel that has since closed throw; the broker redelivers those anyway. */
function settle(fn: () => void): void {
  try {
    fn();
  } catch {
    // ignored: see above
  }
}
