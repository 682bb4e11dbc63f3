import { countDeadLetters } from '../../observability/metrics.ts';
import { connect, type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type GetMessage, type Options } from 'amqplib';
import { randomUUID } from 'node:crypto';
import type { Envelope } from '../../core/message.ts';
import { aboutMessages } from '../../observability/tracing.ts';
import type { Bus, Handler } from '../../ports/bus.ts';
import { deadLetterId, splitDeadLetterId, type DeadLetter, type DeadLetters } from '../../ports/deadLetters.ts';
import {
  DEFAULT_PREFETCH, backoffAfter, type BrokerBusOptions, batchesByType, brokerLetter, checkName, decodeBatch, encodeBatch, errorText, handleBatch, retryPolicy,
} from '../broker/delivery.ts';

export type RabbitBusOptions = BrokerBusOptions & Readonly<{ url: string }>;

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
 */
export function rabbitQueues(namespace: string, consumer: string, backoffMs: readonly number[]) {
  const main = `${namespace}.${consumer}`;
  return { main, dead: `${main}.dead`, delays: new Map([...new Set(backoffMs)].map((ms) => [ms, `${main}.retry.${ms}`])) };
}

type Subscription = Readonly<{ consumer: string; types: readonly string[]; handler: Handler }>;
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
    const queues = rabbitQueues(ns, consumer, policy.backoffMs);
    await channel.assertQueue(queues.main, { durable: true });
    await channel.assertQueue(queues.dead, { durable: true });
    for (const [ms, name] of queues.delays) {
      await channel.assertQueue(name, { durable: true, messageTtl: ms, deadLetterExchange: '', deadLetterRoutingKey: queues.main });
    }
    for (const type of types) await channel.bindQueue(queues.main, ns, type);
    return queues;
  }

  async function startConsumer(s: Session, subscription: Subscription): Promise<void> {
    const channel = await s.model.createChannel();
    watch(s, channel);
    const queues = await declareQueues(channel, subscription.consumer, subscription.types);
    await channel.prefetch(prefetch);
    await channel.consume(queues.main, (msg) => {
      // null: the broker cancelled the consumer (its queue was deleted); watch() handles the close.
      if (msg !== null) void deliver(s, channel, subscription, msg);
    });
    s.consumers.add(subscription.consumer);
  }

  /**
   * Handles each envelope of a broker message. Those whose handler failed go on, as a message of
   * their own, to a delay queue (retry) or after the last delivery to the dead letters; those
   * that committed are done. Bytes that are no batch of envelopes go straight to the dead letters.
   */
  async function deliver(s: Session, channel: Channel, { consumer, handler }: Subscription, msg: ConsumeMessage): Promise<void> {
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
          await forward(s.publisher, retryQueue(consumer, delivery), msg, failed.content, { [DELIVERY]: delivery + 1 });
        } else {
          log.error({ ...context, ...aboutMessages(failed.messages ?? batch), error: text }, 'rabbitmq: message dead-lettered');
          countDeadLetters(consumer, (failed.messages ?? batch)?.[0]?.type, (failed.messages ?? batch)?.length);
          await forward(s.publisher, rabbitQueues(ns, consumer, []).dead, msg, failed.content, {
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

  function nextSession(): Promise<Session> {
    if (closed) return Promise.reject(new Error('The bus is closed'));
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  }

  const connection = await connect(options.url, {
    clientProperties: { connection_name: `orderly ${ns}` },
    // Without it, Nagle's algorithm holds small frames (publishes, acks) back for up to ~40 ms.
    noDelay: true,
    recovery: { initialDelay: 100, maxDelay: 5000, initialMaxRetries: 3, setup },
  });
  connection.on('error', (err: Error) => log.warn({ err, namespace: ns }, 'rabbitmq: connection error'));
  connection.on('disconnect', (err: Error) => {
    session = undefined;
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
    // Straight into the consumer's own queue (no other consumer of the type gets it), as a first delivery.
    redrive: async (id) => (await find(id, (msg, s, consumer) => send(s.publisher, '', rabbitQueues(ns, consumer, []).main, msg.content, {
      messageId: msg.properties.messageId as string, type: msg.properties.type as string, headers: { [DELIVERY]: 1 },
    }))) !== undefined,
    discard: async (id) => (await find(id, async () => {})) !== undefined,
  };

  return {
    deadLetters,
    connected: () => session !== undefined && !closed,
    async publish(messages) {
      for (const message of messages) checkName('message type', message.type);
      const s = session;
      if (s === undefined) throw new Error('RabbitMQ: not connected');
      await Promise.all(batchesByType(messages).map((batch) =>
        send(s.publisher, ns, batch[0]!.type, encodeBatch(batch), { messageId: batch[0]!.id, type: batch[0]!.type })));
    },

    async subscribe(consumer, types, handler) {
      checkName('consumer', consumer);
      for (const type of types) checkName('message type', type);
      if (subscriptions.has(consumer)) throw new Error(`${consumer} already subscribes on this bus`);
      const subscription = { consumer, types: [...types], handler };
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
      for (const waiter of waiting.splice(0)) waiter.reject(new Error('The bus is closed'));
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
function forward(channel: ConfirmChannel, queue: string, msg: ConsumeMessage, content: Buffer, headers: Record<string, unknown>): Promise<void> {
  return send(channel, '', queue, content, { messageId: msg.properties.messageId as string, type: msg.properties.type as string, headers });
}

/** Acks and nacks on a channel that has since closed throw; the broker redelivers those anyway. */
function settle(fn: () => void): void {
  try {
    fn();
  } catch {
    // ignored: see above
  }
}
