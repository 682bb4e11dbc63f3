import { countDeadLetters } from '../../observability/metrics.ts';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect, headers, nanos } from '@nats-io/transport-node';
import { createHash, randomBytes } from 'node:crypto';
import type { Envelope } from '../../core/message.ts';
import { aboutMessages } from '../../observability/tracing.ts';
import type { Bus, Handler } from '../../ports/bus.ts';
import { deadLetterId, splitDeadLetterId, type DeadLetter, type DeadLetters } from '../../ports/deadLetters.ts';
import {
  DEFAULT_PREFETCH, backoffAfter, batchesBy, type BrokerBusOptions, brokerLetter, checkName, decodeBatch, encodeBatch, errorText, handleBatch, retryPolicy,
} from '../broker/delivery.ts';
import { partitionLeases, type PartitionLeases } from '../broker/leases.ts';
import { partitionOf } from '../broker/partitions.ts';
import { leaseStream, natsLeases } from './leases.ts';

export type NatsBusOptions = BrokerBusOptions & Readonly<{
  /** Comma-separated server URLs. */
  servers: string;
  /** This process among the replicas of its consumers (the partition leases' member name); default a random id. */
  replica?: string;
  /**
   * Partitions of each message type, each read by one replica of a consumer at a time
   * (docs/scaling.md); default 0: none, the replicas of a consumer compete for its messages.
   * Every process of a deployment must use the same number, and the same `leaseMs`.
   */
  partitions?: number;
  /** How long a process's partition leases outlive its last renewal (renewed every third of it); default 6 s. */
  leaseMs?: number;
}>;

/**
 * Stream, subjects and durable consumer names of a namespace. Partitioned (`partitions` > 0),
 * a type has a subject and a durable per partition; otherwise one.
 */
export function natsNames(namespace: string, partitions = 0) {
  const subject = (type: string, partition?: number) => (partition === undefined ? `${namespace}.${type}` : `${namespace}.${type}.${partition}`);
  return {
    stream: namespace,
    subject,
    /** The subject a message goes to: its type's, in its partition. */
    subjectOf: (message: Pick<Envelope, 'type' | 'id' | 'correlationId'>) => subject(message.type, partitions > 0 ? partitionOf(message, partitions) : undefined),
    deadStream: `${namespace}-dead`,
    deadSubject: (consumer: string) => `${namespace}-dead.${consumer}`,
    /** The members and leases of the partitions (src/adapters/nats/leases.ts). */
    leaseStream: `${namespace}-leases`,
    // One durable per consumer and type (and partition): servers before 2.10 have no
    // multi-subject filters. No part may contain '-', so no two share a name.
    durable: (consumer: string, type: string, partition?: number) => (partition === undefined ? `${consumer}-${type}` : `${consumer}-${type}-${partition}`),
    // Redriven dead letters, for one consumer only: a subject and a durable no type can have (types start with a letter).
    redriveSubject: (consumer: string) => `${namespace}._redrive.${consumer}`,
    redriveDurable: (consumer: string) => `${consumer}-_redrive`,
  };
}

type Subscription = Readonly<{
  consumer: string;
  types: readonly string[];
  handler: Handler;
  slots: Slots;
  /** The partitions this process reads now; none when unpartitioned (it reads every durable). */
  leases: PartitionLeases | undefined;
  /** The pull loops of the partitions' durables running here, by durable. */
  pulling: Map<string, Pull>;
}>;

/** A pull loop on one durable; `partition`: the one it reads, checked before each message is handled. */
type Pull = { readonly partition: number | undefined; messages: ConsumerMessages | undefined; stopped: boolean };

/** A durable of a consumer: its subject and, partitioned, its partition. */
type Durable = Readonly<{ durable: string; subject: string; partition?: number }>;

/** Unacknowledged this long, a message goes to another replica (a process that died holding it). */
const ACK_WAIT_MS = 30_000;

/**
 * The bus on NATS JetStream: one file-backed stream per namespace, one subject per message
 * type, and a durable pull consumer per consumer and type, shared by its replicas. Publishing
 * waits for the stream's ack (deduplicated on the envelope id); a message is acked only after
 * its handler resolved, nak'ed with a delay when it rejects, and after `maxDeliveries` copied
 * to the dead-letter stream with the error and terminated. The client reconnects forever;
 * after each reconnect the streams and consumers are declared again (a server that lost its
 * data gets them back) and the pull loops resume by themselves.
 */
export async function natsBus(options: NatsBusOptions): Promise<Bus> {
  const { namespace: ns, log } = options;
  checkName('namespace', ns);
  const policy = retryPolicy(options.maxDeliveries, options.backoffMs);
  const prefetch = options.prefetch ?? DEFAULT_PREFETCH;
  const partitions = options.partitions ?? 0;
  const leaseMs = options.leaseMs ?? 6_000;
  const me = options.replica ?? `r_${randomBytes(6).toString('hex')}`;
  // A partition's durables hand what a hung or cut-off holder had to the next holder after
  // about a lease (the holder's handlers say they are working every third of it), not 30 s.
  const partitionAckWaitMs = Math.max(1_000, leaseMs);
  const names = natsNames(ns, partitions);
  const nc = await connect({ servers: options.servers.split(','), name: `orderly ${ns}`, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const subscriptions: Subscription[] = [];
  const loops = new Set<ConsumerMessages>();
  let leaseTimer: NodeJS.Timeout | undefined;
  const inFlight = new Set<JsMsg>();
  let closed = false;
  let online = true;

  async function declareStreams(): Promise<void> {
    // Interest retention: a message is kept until every consumer of its type acked it, and one
    // no consumer listens to is not kept at all (as with an unbound RabbitMQ routing key).
    for (const config of [
      { name: names.stream, subjects: [`${ns}.>`], storage: StorageType.File, retention: RetentionPolicy.Interest },
      { name: names.deadStream, subjects: [`${names.deadStream}.>`], storage: StorageType.File, retention: RetentionPolicy.Limits },
      ...(partitions > 0 ? [leaseStream(ns, leaseMs)] : []),
    ]) {
      await ensure(`stream ${config.name}`, () => jsm.streams.add(config), () => jsm.streams.info(config.name));
    }
  }

  async function declareConsumers({ consumer, types }: Pick<Subscription, 'consumer' | 'types'>): Promise<void> {
    for (const { durable, subject, partition } of durablesOf(consumer, types)) {
      const config = {
        durable_name: durable,
        filter_subject: subject,
        ack_policy: AckPolicy.Explicit,
        // Like a new queue: what was published before the consumer existed is not for it.
        deliver_policy: DeliverPolicy.New,
        ack_wait: nanos(partition === undefined ? ACK_WAIT_MS : partitionAckWaitMs),
        // Unlimited on the server: this adapter dead-letters after maxDeliveries, and a crash
        // between its last failure and the dead letter must lead to a redelivery, not a loss.
        max_deliver: -1,
      };
      await ensure(`consumer ${durable}`, () => jsm.consumers.add(names.stream, config), () => jsm.consumers.info(names.stream, durable));
    }
  }

  /** Creates a stream or consumer; one created earlier with other settings is used as it is rather than refused. */
  async function ensure(what: string, add: () => Promise<unknown>, exists: () => Promise<unknown>): Promise<void> {
    try {
      await add();
    } catch (error) {
      await exists().catch(() => Promise.reject(error instanceof Error ? error : new Error(String(error))));
      log.warn({ err: error, namespace: ns }, `nats: ${what} exists with other settings; using it as it is`);
    }
  }

  /** Each durable of a consumer: one per type (partitioned: per type and partition), and one for its redriven dead letters (read by every replica). */
  function durablesOf(consumer: string, types: readonly string[]): Durable[] {
    const perType = partitions > 0
      ? Array.from({ length: partitions }, (_, partition) => types.map((type) => ({ durable: names.durable(consumer, type, partition), subject: names.subject(type, partition), partition }))).flat()
      : types.map((type) => ({ durable: names.durable(consumer, type), subject: names.subject(type) }));
    return [...perType, { durable: names.redriveDurable(consumer), subject: names.redriveSubject(consumer) }];
  }

  /** Whether this process may handle what it pulled for `partition` (unpartitioned: always). */
  const mayHandle = (subscription: Subscription, partition: number | undefined) => partition === undefined || subscription.leases?.owned().has(partition) === true;

  async function pull(subscription: Subscription, durable: string, state: Pull): Promise<void> {
    const consumer = await js.consumers.get(names.stream, durable);
    if (state.stopped) return;
    // Partitioned, a pull request lives about a lease: a hung holder's requests (which the
    // server may still fill) expire soon after its leases do.
    const messages = await consumer.consume({ max_messages: prefetch, ...(state.partition === undefined ? {} : { expires: partitionAckWaitMs }) });
    state.messages = messages;
    loops.add(messages);
    if (state.stopped) await messages.close();
    for await (const m of messages) {
      await subscription.slots.acquire();
      // Pulled for a partition lost meanwhile: handed back at once, to its new holder.
      if (closed || !mayHandle(subscription, state.partition)) {
        settle(() => m.nak());
        subscription.slots.release();
        continue;
      }
      inFlight.add(m);
      void deliver(subscription, m, state.partition).finally(() => {
        inFlight.delete(m);
        subscription.slots.release();
      });
    }
  }

  /**
   * Handles each envelope of a stream message. When any handler fails the whole message is
   * redelivered later (the envelopes that committed are then seen in the inbox and skipped);
   * after the last delivery the failed envelopes go to the dead-letter stream.
   */
  async function deliver({ consumer, handler }: Subscription, m: JsMsg, partition: number | undefined): Promise<void> {
    const delivery = m.info.deliveryCount;
    const context = { consumer, subject: m.subject, seq: m.seq, delivery };
    // What failed: the envelopes whose handler rejected, or (bytes that are no batch) none to retry.
    let failure: { envelopes: Envelope[] | undefined; error: unknown; permanent?: boolean } | undefined;
    // A slow handler (a busy database) must not have its message redelivered to another replica meanwhile.
    // Once closed, the message was handed back: a handler that never ends no longer holds it.
    const keepAlive = setInterval(() => (closed ? clearInterval(keepAlive) : settle(() => m.working())), (partition === undefined ? ACK_WAIT_MS : partitionAckWaitMs) / 3);
    keepAlive.unref();
    try {
      const { failed, error, permanent } = await handleBatch(decodeBatch(m.data), handler);
      if (failed.length > 0) failure = { envelopes: failed, error, permanent };
    } catch (error) {
      failure = { envelopes: undefined, error };
    } finally {
      clearInterval(keepAlive);
    }
    if (!failure) {
      settle(() => m.ack());
      return;
    }
    if (closed) return; // nak'ed by close()
    const { envelopes, error } = failure;
    if (envelopes !== undefined && delivery < policy.maxDeliveries && !failure.permanent) {
      log.warn({ ...context, messageId: envelopes[0]?.id, ...aboutMessages(envelopes), err: error }, 'nats: handler failed; will retry');
      settle(() => m.nak(backoffAfter(policy, delivery)));
      return;
    }
    const text = errorText(error);
    log.error({ ...context, messageId: envelopes?.[0]?.id, ...aboutMessages(envelopes), error: text }, 'nats: message dead-lettered');
    countDeadLetters(consumer, envelopes?.[0]?.type, envelopes?.length);
    try {
      const h = headers();
      // Header values are single lines.
      h.set('Orderly-Error', text.replace(/[\r\n]+/g, ' '));
      h.set('Orderly-Consumer', consumer);
      h.set('Orderly-Delivery', String(delivery));
      await js.publish(names.deadSubject(consumer), envelopes ? encodeBatch(envelopes) : m.data, { msgID: `${consumer}:${m.seq}`, headers: h });
      settle(() => m.term());
    } catch (publishError) {
      log.warn({ ...context, err: publishError }, 'nats: could not dead-letter; will retry');
      settle(() => m.nak(backoffAfter(policy, delivery)));
    }
  }

  function start(subscription: Subscription, durable: string, partition?: number): void {
    const state: Pull = { partition, messages: undefined, stopped: false };
    subscription.pulling.set(durable, state);
    pull(subscription, durable, state)
      .catch((err: unknown) => {
        if (!closed && !state.stopped) log.error({ err, consumer: subscription.consumer, durable }, 'nats: consumer stopped');
      })
      .finally(() => {
        if (state.messages) loops.delete(state.messages);
        if (subscription.pulling.get(durable) === state) subscription.pulling.delete(durable);
      });
  }

  /**
   * Pulls from the durables of the partitions owned now, and stops pulling from the others.
   * What a stopped loop had pulled and not handled is nak'ed (see `pull`); what its handlers
   * are finishing is acked when they commit (the store's inbox makes the overlap harmless).
   */
  function follow(subscription: Subscription): void {
    const owned = subscription.leases?.owned();
    if (owned === undefined || closed) return;
    for (const [durable, state] of subscription.pulling) {
      if (state.partition === undefined || owned.has(state.partition)) continue;
      state.stopped = true;
      subscription.pulling.delete(durable);
      void state.messages?.close().catch(() => undefined);
    }
    for (const partition of owned) {
      for (const type of subscription.types) {
        const durable = names.durable(subscription.consumer, type, partition);
        if (!subscription.pulling.has(durable)) start(subscription, durable, partition);
      }
    }
  }

  /**
   * The clients the leases use: their requests give up after half a lease (the default is 5 s),
   * so that a renewal sent while the connection was down fails before the lease would have run
   * out, and the next one goes out once it is back.
   */
  let leasing: Promise<Readonly<{ js: JetStreamClient; jsm: JetStreamManager }>> | undefined;
  function leaseClients() {
    const timeout = Math.max(250, Math.round(leaseMs / 2));
    return (leasing ??= jetstreamManager(nc, { timeout }).then((manager) => ({ js: jetstream(nc, { timeout }), jsm: manager })));
  }

  /** Renews, releases and takes the partitions' leases of every subscription, then follows what it owns (also when renewing failed: leases run out). */
  const renewing = new Set<Subscription>();
  function renewLeases(): void {
    for (const subscription of subscriptions) {
      follow(subscription);
      if (subscription.leases === undefined || renewing.has(subscription) || closed) continue;
      renewing.add(subscription);
      subscription.leases.tick()
        .catch((err: unknown) => closed || log.warn({ err, consumer: subscription.consumer, namespace: ns }, 'nats: partition leases could not be renewed; retrying'))
        .finally(() => {
          renewing.delete(subscription);
          follow(subscription);
        });
    }
  }

  /** The dead letters of `consumer` from stream sequence `from` on, at most `max` (the server finds the next one of its subject). */
  async function deadOf(consumer: string, max: number, from = 1, only = false): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    for (let seq = from; letters.length < max;) {
      // next_by_subj (NATS 2.9): the first message of the subject at or after seq.
      const query = only ? { seq } : ({ seq, next_by_subj: names.deadSubject(consumer) } as unknown as { seq: number });
      const m = await jsm.streams.getMessage(names.deadStream, query);
      if (!m || m.subject !== names.deadSubject(consumer)) break;
      letters.push(brokerLetter(deadLetterId(consumer, String(m.seq)), consumer, m.header?.get('Orderly-Error') ?? '', m.time.getTime(), m.data));
      if (only) break;
      seq = m.seq + 1;
    }
    return letters;
  }

  /** A dead letter of a consumer subscribed here, with its stream sequence. */
  async function find(id: string): Promise<{ letter: DeadLetter; seq: number } | undefined> {
    const split = splitDeadLetterId(id);
    const seq = Number(split?.local);
    if (!split || !subscriptions.some((s) => s.consumer === split.consumer) || !Number.isSafeInteger(seq) || seq < 1 || String(seq) !== split.local) return undefined;
    const [letter] = await deadOf(split.consumer, 1, seq, true);
    return letter && { letter, seq };
  }

  const deadLetters: DeadLetters = {
    list: async (max) => (await Promise.all(subscriptions.map((s) => deadOf(s.consumer, max)))).flat(),
    get: async (id) => (await find(id))?.letter,
    async redrive(id) {
      const found = await find(id);
      if (!found) return false;
      // To this consumer's own subject (no other consumer of the type gets it); then gone from the dead letters.
      await js.publish(names.redriveSubject(found.letter.consumer), found.letter.undecodable !== undefined ? Buffer.from(found.letter.undecodable) : encodeBatch(found.letter.messages));
      await jsm.streams.deleteMessage(names.deadStream, found.seq, false);
      return true;
    },
    async discard(id) {
      const found = await find(id);
      return found !== undefined && (await jsm.streams.deleteMessage(names.deadStream, found.seq, false));
    },
  };

  async function watch(): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        online = false;
        log.warn({ namespace: ns }, 'nats: connection lost; reconnecting');
      }
      if (status.type === 'reconnect') {
        online = true;
        log.info({ namespace: ns }, 'nats: reconnected');
        try {
          await declareStreams();
          for (const subscription of subscriptions) await declareConsumers(subscription);
        } catch (err) {
          log.warn({ err, namespace: ns }, 'nats: could not declare streams and consumers again');
        }
      }
    }
  }

  await declareStreams();
  void watch();

  return {
    deadLetters,
    connected: () => !closed && !nc.isClosed() && online,
    async publish(messages) {
      for (const message of messages) checkName('message type', message.type);
      // Deduplicated on all the batch's ids: a batch that shares only its first message with another is not a duplicate.
      await Promise.all([...batchesBy(messages, names.subjectOf)].map(([subject, batch]) => js.publish(subject, encodeBatch(batch), {
        msgID: batch.length === 1 ? batch[0]!.id : createHash('sha1').update(batch.map((m) => m.id).join('\n')).digest('base64url'),
      })));
    },

    async subscribe(consumer, types, handler) {
      checkName('consumer', consumer);
      for (const type of types) checkName('message type', type);
      if (subscriptions.some((s) => s.consumer === consumer)) throw new Error(`${consumer} already subscribes on this bus`);
      const leases = partitions > 0
        ? partitionLeases({ backend: natsLeases(await leaseClients(), names.leaseStream, consumer, leaseMs), about: { bus: 'nats', consumer, namespace: ns }, me, count: partitions, ttlMs: leaseMs, log })
        : undefined;
      const subscription: Subscription = { consumer, types: [...types], handler, slots: new Slots(prefetch), leases, pulling: new Map() };
      await declareConsumers(subscription);
      subscriptions.push(subscription);
      for (const { durable, partition } of durablesOf(consumer, types)) if (partition === undefined) start(subscription, durable);
      if (leases) {
        await leases.tick();
        follow(subscription);
        leaseTimer ??= setInterval(renewLeases, Math.round(leaseMs / 3));
        leaseTimer.unref();
      }
    },

    async declare(consumer, types) {
      checkName('consumer', consumer);
      for (const type of types) checkName('message type', type);
      await declareConsumers({ consumer, types: [...types] });
    },

    async close() {
      closed = true;
      clearInterval(leaseTimer);
      for (const loop of loops) await loop.close();
      // Handed back now rather than after ack_wait, so another replica takes them at once.
      for (const m of inFlight) settle(() => m.nak());
      for (const subscription of subscriptions) {
        await subscription.leases?.close(true).catch((err: unknown) =>
          log.warn({ err, consumer: subscription.consumer }, 'nats: could not give the partition leases back; others take them when they expire'));
      }
      await nc.drain();
    },
  };
}

/** A counting semaphore: bounds the handlers running at once per consumer. */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(count: number) {
    this.#free = count;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/** Acks and naks on a closed connection throw; the server redelivers those after ack_wait. */
function settle(fn: () => void): void {
  try {
    fn();
  } catch {
    // ignored: see above
  }
}
