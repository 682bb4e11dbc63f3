import { countDeadLetters } from '../../observability/metrics.ts';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Envelope } from '../../core/message.ts';
import { aboutMessages } from '../../observability/tracing.ts';
import type { Bus, Handler } from '../../ports/bus.ts';
import { deadLetterId, splitDeadLetterId, type DeadLetter, type DeadLetters } from '../../ports/deadLetters.ts';
import {
  DEFAULT_PREFETCH, backoffAfter, batchesBy, brokerLetter, checkName, type BrokerBusOptions, decodeBatch, encodeBatch, errorText, handleBatch, retryPolicy,
} from '../broker/delivery.ts';
import { autoclaimScript, claimOwnScript, deadLetterScript, handBackScript, redriveScript, takeOverScript, trimScript } from './busScripts.ts';
import { partitionOf } from '../broker/partitions.ts';
import { checkDurability } from './durability.ts';
import { partitionLeases, type PartitionLeases } from '../broker/leases.ts';
import { redisLeases } from './leases.ts';
import { Slots } from './slots.ts';

export type RedisBusOptions = BrokerBusOptions & Readonly<{
  url: string;
  /** This process in the consumer groups; default a random id. A stable one (the host name) lets a restarted process take its unfinished messages back at once. */
  consumerName?: string;
  /** A message delivered this long ago, neither acknowledged nor being retried, belongs to a process that died: another one takes it. */
  claimIdleMs?: number;
  /** How often to take over such messages and to trim the streams. */
  maintenanceMs?: number;
  /**
   * Partitions of each message type, each read by one replica of a consumer at a time
   * (docs/scaling.md); default 0: none, the replicas of a consumer compete for its messages.
   * Every process of a deployment must use the same number.
   */
  partitions?: number;
  /** How long a process's partition leases outlive its last renewal (renewed every third of it); default 6 s. */
  leaseMs?: number;
}>;

/**
 * Stream names of a namespace. Types and consumers contain no ':', so no two names collide.
 * Partitioned (`partitions` > 0), a type has a stream per partition; otherwise one.
 */
export function redisNames(namespace: string, partitions = 0) {
  const stream = (type: string, partition: number) => (partitions > 0 ? `${namespace}:${type}:${partition}` : `${namespace}:${type}`);
  return {
    /** The stream of a type's partition (unpartitioned: of the type). */
    stream,
    /** The stream a message goes to: its type's, in its partition. */
    streamOf: (message: Pick<Envelope, 'type' | 'id' | 'correlationId'>) => stream(message.type, partitions > 0 ? partitionOf(message, partitions) : 0),
    /** Every stream of a type. */
    streamsOf: (type: string) => Array.from({ length: Math.max(1, partitions) }, (_, p) => stream(type, p)),
    /** Where a consumer's partition leases are kept. */
    leases: (consumer: string) => `${namespace}:partition:${consumer}`,
    dead: (consumer: string) => `${namespace}:dead:${consumer}`,
    /** Redriven dead letters, for this consumer only (a group of its own reads it with its types). */
    redrive: (consumer: string) => `${namespace}:redrive:${consumer}`,
  };
}

type Entry = readonly [id: string, fields: readonly string[] | null, delivery: number];
type Subscription = {
  readonly consumer: string;
  readonly types: readonly string[];
  /** The streams it reads now: its types' in the partitions it owns, and its redriven dead letters. */
  streams: readonly string[];
  readonly handler: Handler;
  /** The connection its blocking reads wait on; commands go through the shared one. */
  readonly reader: Redis;
  /** The partitions this process reads now; none when unpartitioned (it reads every stream). */
  readonly leases: PartitionLeases | undefined;
  /** Streams of partitions it gained where another consumer may still hold entries: it takes them over. */
  readonly takingOver: Set<string>;
  readonly slots: Slots;
  /** `stream id` of entries being handled or waiting for their retry here. */
  readonly held: Set<string>;
  /** XAUTOCLAIM cursors by stream. */
  readonly cursors: Map<string, string>;
  /** Read this consumer's own pending entries before new ones (at start, after a lost connection). */
  recover: boolean;
};

/** The field of a stream entry that holds its envelopes (a JSON array, all of the entry's stream's type). */
export const BATCH = 'batch';
const BLOCK_MS = 2000;
/** A stream is trimmed at the next maintenance round once this many of its entries were acknowledged here (all are, every twelfth round). */
const TRIM_AFTER = 100;
/** Consumers (processes) with nothing pending and idle this long are dropped from their groups. */
const FORGET_CONSUMER_MS = 3_600_000;

/**
 * The bus on Redis Streams: a stream `<namespace>:<type>` per message type, whose entries each
 * hold the envelopes of that type published together (see `batchesByType`), and per consumer
 * (service) a consumer group of that name on each stream of its types, created at `$` (like a
 * new queue, it gets what is published from then on, kept while its processes are away).
 * Each process reads as a consumer of the group, with XREADGROUP, and acknowledges (XACK) a
 * message only after its handler resolved. A failed message stays pending on this process,
 * which claims it again after the backoff (XCLAIM) and, after `maxDeliveries`, moves it to
 * `<namespace>:dead:<consumer>` with the error. What a dead process held is taken over by the
 * others after `claimIdleMs` (XAUTOCLAIM); a closing process hands its messages back at once.
 * Streams are trimmed only below what every group has been delivered and acknowledged.
 * ioredis reconnects by itself; the read loops log errors, back off and go on.
 */
export async function redisBus(options: RedisBusOptions): Promise<Bus> {
  const { namespace: ns, log } = options;
  checkName('namespace', ns);
  const policy = retryPolicy(options.maxDeliveries, options.backoffMs);
  const me = options.consumerName ?? `c_${randomBytes(6).toString('hex')}`;
  const prefetch = options.prefetch ?? DEFAULT_PREFETCH;
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  // A message waiting for its retry looks idle: with a longer backoff, another process would take it early.
  if (!(claimIdleMs > Math.max(...policy.backoffMs))) throw new Error(`claimIdleMs (${claimIdleMs}) must be longer than every backoff (${policy.backoffMs.join(', ')} ms)`);
  const partitions = options.partitions ?? 0;
  const leaseMs = options.leaseMs ?? 6_000;
  const names = redisNames(ns, partitions);
  // RESP2: the reply shapes parsed below. Commands wait in ioredis's queue while it reconnects.
  // Auto-pipelining writes the commands of one tick (the acks of a batch) to the socket at once.
  const commands = new Redis(options.url, { protocol: 2, connectionName: `orderly ${ns}`, enableAutoPipelining: true });
  commands.on('error', (err: Error) => log.warn({ err, namespace: ns }, 'redis: connection error'));
  try {
    await commands.ping();
    await checkDurability(commands, log, `bus ${ns}`);
  } catch (error) {
    commands.disconnect();
    throw error;
  }
  const subscriptions = new Map<string, Subscription>();
  /** Streams this process publishes to or reads from: the ones it trims. */
  const streams = new Set<string>();
  const retries = new Set<NodeJS.Timeout>();
  let closed = false;

  /** Every stream a consumer may read: its types' in every partition, and its redriven dead letters. */
  const allStreamsOf = (consumer: string, types: readonly string[]) => [...types.flatMap(names.streamsOf), names.redrive(consumer)];
  /** The streams a consumer reads: in the partitions it owns, or all of them when unpartitioned. */
  const ownStreams = (sub: Pick<Subscription, 'consumer' | 'types' | 'leases'>) => sub.leases === undefined
    ? allStreamsOf(sub.consumer, sub.types)
    : [...[...sub.leases.owned()].sort((a, b) => a - b).flatMap((p) => sub.types.map((type) => names.stream(type, p))), names.redrive(sub.consumer)];

  async function declareGroups(consumer: string, types: readonly string[]): Promise<void> {
    for (const stream of allStreamsOf(consumer, types)) {
      streams.add(stream);
      try {
        await commands.xgroup('CREATE', stream, consumer, '$', 'MKSTREAM');
      } catch (error) {
        if (!(error instanceof Error && error.message.startsWith('BUSYGROUP'))) throw error;
      }
    }
  }

  async function readLoop(sub: Subscription): Promise<void> {
    for (let failures = 0; !closed;) {
      try {
        await sub.slots.whenFree();
        if (closed) return;
        if (sub.recover) {
          await recover(sub);
          continue; // the slots it took may be all of them
        }
        sub.streams = ownStreams(sub);
        // A read that waited is answered with the first stream that got entries only; the others
        // that got some meanwhile (a publish writes a stream per type and partition) are read at
        // once, so that all of them reach the handler in one tick and commit together.
        const read = (block: boolean) => sub.reader.call('XREADGROUP', [
          'GROUP', sub.consumer, me, 'COUNT', sub.slots.free, ...(block ? ['BLOCK', BLOCK_MS] : []), 'STREAMS', ...sub.streams, ...sub.streams.map(() => '>'),
        ]) as Promise<[string, [string, string[] | null][]][] | null>;
        const first = await read(true);
        const next = first !== null && sub.streams.length > 1 ? await read(false) : null;
        // A partition lost while the read waited: what it got there stays pending, for the new owner to take over.
        const owned = new Set(sub.streams = ownStreams(sub));
        for (const [stream, entries] of [...(first ?? []), ...(next ?? [])]) {
          if (owned.has(stream)) for (const [id, fields] of entries) dispatch(sub, stream, [id, fields, 1]);
        }
        failures = 0;
      } catch (error) {
        if (closed) return;
        failures++;
        sub.recover = true;
        log.warn({ err: error, consumer: sub.consumer, namespace: ns }, 'redis: reading failed; retrying');
        // The groups are gone when Redis lost its data (restarted with nothing on disk).
        if (error instanceof Error && error.message.startsWith('NOGROUP')) await declareGroups(sub.consumer, sub.types).catch(() => {});
        await sleep(Math.min(100 * 2 ** failures, 5000));
      }
    }
  }

  /** Delivers again what this process holds in the group but is not handling (a reply lost with a connection, a restart under the same name). */
  async function recover(sub: Subscription): Promise<void> {
    for (const stream of sub.streams) {
      const pending = (await commands.call('XPENDING', [stream, sub.consumer, '-', '+', 1000, me])) as [string, string, number, number][];
      const ids = pending.map(([id]) => id).filter((id) => !sub.held.has(`${stream} ${id}`));
      if (ids.length > 0) for (const entry of await claimOwn(stream, sub.consumer, ids)) dispatch(sub, stream, entry);
    }
    sub.recover = false;
  }

  async function claimOwn(stream: string, group: string, ids: readonly string[], touch = false): Promise<Entry[]> {
    return (await claimOwnScript.run(commands, [stream], [group, me, touch ? '1' : '0', ...ids])) as Entry[];
  }

  function dispatch(sub: Subscription, stream: string, entry: Entry): void {
    const key = `${stream} ${entry[0]}`;
    // After close, what was claimed meanwhile stays pending: close hands it back.
    if (closed || sub.held.has(key)) return;
    sub.held.add(key);
    sub.slots.take();
    void deliver(sub, stream, entry).then(
      (retryIn) => {
        sub.slots.release();
        if (retryIn === undefined || closed) sub.held.delete(key);
        else retryLater(sub, stream, entry[0], retryIn);
      },
      (err: unknown) => {
        sub.slots.release();
        sub.held.delete(key);
        log.error({ err, consumer: sub.consumer, stream, entry: entry[0] }, 'redis: delivery failed');
      },
    );
  }

  /**
   * Handles the envelopes of one entry; returns the delay before its next delivery when some
   * failed. The whole entry comes again (those that committed are then skipped by the inbox);
   * after the last delivery only the failed ones go to the dead letters.
   */
  async function deliver(sub: Subscription, stream: string, [id, fields, delivery]: Entry): Promise<number | undefined> {
    const context = { consumer: sub.consumer, stream, entry: id, delivery };
    let batch: Envelope[] | undefined;
    let failed: { batch: string; error: unknown; messages?: readonly Envelope[]; permanent?: boolean } | undefined;
    // A slow handler (a busy database) must not have its message taken by another process meanwhile.
    const keepAlive = setInterval(() => void claimOwn(stream, sub.consumer, [id], true).catch(() => {}), claimIdleMs / 3);
    keepAlive.unref();
    try {
      // More deliveries than allowed without any outcome: the processes handling it died each time.
      if (delivery > policy.maxDeliveries) throw new Error(`Delivered ${delivery} times without an outcome`);
      batch = decodeBatch(Buffer.from(field(fields, BATCH) ?? ''));
      const result = await handleBatch(batch, sub.handler);
      if (result.failed.length > 0) failed = { batch: encodeBatch(result.failed).toString(), error: result.error, messages: result.failed, permanent: result.permanent };
    } catch (error) {
      failed = { batch: field(fields, BATCH) ?? '', error };
    } finally {
      clearInterval(keepAlive);
    }
    if (failed) {
      if (closed) return undefined; // handed back by close()
      if (batch !== undefined && delivery < policy.maxDeliveries && !failed.permanent) {
        log.warn({ ...context, ...aboutMessages(failed.messages), err: failed.error }, 'redis: handler failed; will retry');
        return backoffAfter(policy, delivery);
      }
      const text = errorText(failed.error);
      log.error({ ...context, ...aboutMessages(failed.messages ?? batch), error: text }, 'redis: message dead-lettered');
      countDeadLetters(sub.consumer, (failed.messages ?? batch)?.[0]?.type, (failed.messages ?? batch)?.length);
      try {
        await deadLetterScript.run(commands, [stream, names.dead(sub.consumer)], [sub.consumer, id, failed.batch, text, sub.consumer, delivery]);
      } catch (deadError) {
        log.warn({ ...context, err: deadError }, 'redis: could not dead-letter; will retry');
        return backoffAfter(policy, delivery);
      }
      return undefined;
    }
    // Not acknowledged (a lost connection): it stays pending here, and comes back by recovery or reclaim.
    await acknowledge(stream, sub.consumer, id).catch((err: unknown) => closed || log.warn({ ...context, err }, 'redis: could not acknowledge'));
    return undefined;
  }

  /** Entries to acknowledge by stream and group, sent as one XACK each at the end of the tick. */
  const acks = new Map<string, { ids: string[]; done: Promise<unknown> }>();
  /** Entries acknowledged here by stream since it was last trimmed. */
  const acked = new Map<string, number>();
  function acknowledge(stream: string, group: string, id: string): Promise<unknown> {
    acked.set(stream, (acked.get(stream) ?? 0) + 1);
    const key = `${stream} ${group}`;
    let ack = acks.get(key);
    if (ack === undefined) {
      const ids: string[] = [];
      const done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        acks.delete(key);
        return commands.xack(stream, group, ...ids);
      });
      ack = { ids, done };
      acks.set(key, ack);
    }
    ack.ids.push(id);
    return ack.done;
  }

  /** The entry stays pending on this process meanwhile; claiming it back counts a delivery. */
  function retryLater(sub: Subscription, stream: string, id: string, ms: number): void {
    const timer = setTimeout(() => {
      retries.delete(timer);
      claimOwn(stream, sub.consumer, [id]).then(
        (entries) => {
          sub.held.delete(`${stream} ${id}`);
          for (const entry of entries) dispatch(sub, stream, entry);
        },
        (err: unknown) => {
          // Still pending here: recovery or another process's reclaim delivers it again.
          sub.held.delete(`${stream} ${id}`);
          sub.recover = true;
          log.warn({ err, consumer: sub.consumer, stream, entry: id }, 'redis: could not claim a message back for its retry');
        },
      );
    }, ms);
    retries.add(timer);
  }

  /** Takes over what dead processes held, and trims the streams. */
  let rounds = 0;
  async function maintain(): Promise<void> {
    // The partitions' leases take over what a dead owner held; this catches what they missed
    // (idle for claimIdleMs), so every few rounds only. Trimming: each round the streams that
    // had many entries acknowledged here since their last trim; every stream now and then.
    const everything = rounds++ % 12 === 0;
    for (const sub of subscriptions.values()) {
      for (const stream of everything ? sub.streams : sub.streams.slice(-1)) {
        if (closed || sub.slots.free <= 0) break;
        const [cursor, entries, gone] = (await autoclaimScript.run(commands, [stream], [sub.consumer, me, claimIdleMs, sub.slots.free, sub.cursors.get(stream) ?? '0-0'])) as [string, Entry[], string[]];
        sub.cursors.set(stream, cursor);
        if (gone.length > 0) log.error({ consumer: sub.consumer, stream, entries: gone }, 'redis: pending messages were no longer in the stream');
        for (const entry of entries) dispatch(sub, stream, entry);
      }
    }
    const trimmed = everything ? [...streams] : [...acked].filter(([, count]) => count >= TRIM_AFTER).map(([stream]) => stream);
    for (const stream of trimmed) {
      if (closed) return;
      acked.delete(stream);
      await trimScript.run(commands, [stream], [FORGET_CONSUMER_MS]);
    }
  }

  /**
   * Renews, releases and takes this process's partition leases; in the partitions it gained,
   * takes over what other consumers hold (idle for a third of a lease: not what a process that
   * just let the partition go is finishing), renewal after renewal until they hold nothing.
   */
  async function leaseTick(sub: Subscription): Promise<void> {
    if (sub.leases === undefined) return;
    const { gained, lost } = await sub.leases.tick();
    for (const p of gained) for (const type of sub.types) sub.takingOver.add(names.stream(type, p));
    for (const p of lost) for (const type of sub.types) sub.takingOver.delete(names.stream(type, p));
    if (gained.length > 0) sub.recover = true;
    for (const stream of sub.takingOver) {
      if (closed || sub.slots.free <= 0) return;
      const [entries, others] = (await takeOverScript.run(commands, [stream], [sub.consumer, me, Math.round(leaseMs / 3), sub.slots.free])) as [Entry[], number];
      if (others === 0) sub.takingOver.delete(stream);
      for (const entry of entries) dispatch(sub, stream, entry);
    }
  }
  const leaseTimer = setInterval(() => {
    for (const sub of subscriptions.values()) {
      if (!closed) leaseTick(sub).catch((err: unknown) => closed || log.warn({ err, consumer: sub.consumer, namespace: ns }, 'redis: partition leases could not be renewed; retrying'));
    }
  }, Math.round(leaseMs / 3));
  leaseTimer.unref();

  let maintaining = false;
  function tick(): void {
    if (maintaining || closed) return;
    maintaining = true;
    maintain()
      .catch((err: unknown) => closed || log.warn({ err, namespace: ns }, 'redis: maintenance failed'))
      .finally(() => (maintaining = false));
  }
  const maintenance = setInterval(tick, options.maintenanceMs ?? 5000);
  maintenance.unref();

  /** Dead letters of `consumer` from entry `start` to `end`, at most `max`; ids are entry ids (their time is when they were kept). */
  async function deadOf(consumer: string, max: number, start = '-', end = '+'): Promise<DeadLetter[]> {
    const entries = await commands.xrange(names.dead(consumer), start, end, 'COUNT', max);
    return entries.map(([id, fields]) =>
      brokerLetter(deadLetterId(consumer, id), consumer, field(fields, 'error') ?? '', Number(id.split('-')[0]), Buffer.from(field(fields, BATCH) ?? '')));
  }

  /** The consumer and entry id of a dead letter of a consumer subscribed here. */
  const mine = (id: string) => {
    const split = splitDeadLetterId(id);
    return split && subscriptions.has(split.consumer) && /^\d+-\d+$/.test(split.local) ? split : undefined;
  };

  const deadLetters: DeadLetters = {
    list: async (max) => (await Promise.all([...subscriptions.keys()].map((consumer) => deadOf(consumer, max)))).flat(),
    async get(id) {
      const at = mine(id);
      return at && (await deadOf(at.consumer, 1, at.local, at.local))[0];
    },
    // Moved, in one script, to the consumer's own redrive stream: no other consumer of the type gets it.
    redrive: async (id) => {
      const at = mine(id);
      return at !== undefined && (await redriveScript.run(commands, [names.dead(at.consumer), names.redrive(at.consumer)], [at.local])) === 1;
    },
    discard: async (id) => {
      const at = mine(id);
      return at !== undefined && (await commands.xdel(names.dead(at.consumer), at.local)) === 1;
    },
  };

  const bus = {
    deadLetters,
    connected: () => !closed && commands.status === 'ready',

    async publish(messages: readonly Envelope[]) {
      for (const message of messages) checkName('message type', message.type);
      if (messages.length === 0) return;
      const tx = commands.multi();
      for (const [stream, batch] of batchesBy(messages, names.streamOf)) {
        streams.add(stream);
        tx.xadd(stream, '*', BATCH, encodeBatch(batch));
      }
      const replies = await tx.exec();
      for (const [error] of replies ?? []) if (error) throw error;
    },

    async declare(consumer: string, types: readonly string[]) {
      checkName('consumer', consumer);
      for (const type of types) checkName('message type', type);
      await declareGroups(consumer, types);
    },

    async subscribe(consumer: string, types: readonly string[], handler: Handler) {
      checkName('consumer', consumer);
      for (const type of types) checkName('message type', type);
      if (subscriptions.has(consumer)) throw new Error(`${consumer} already subscribes on this bus`);
      await declareGroups(consumer, types);
      const reader = commands.duplicate();
      reader.on('error', (err: Error) => log.warn({ err, consumer, namespace: ns }, 'redis: reader connection error'));
      const leases = partitions > 0 ? partitionLeases({ backend: redisLeases(commands, names.leases(consumer)), about: { bus: 'redis', consumer, namespace: ns }, me, count: partitions, ttlMs: leaseMs, log }) : undefined;
      const sub: Subscription = {
        consumer, types: [...types], streams: [], handler, reader, leases, takingOver: new Set(), slots: new Slots(prefetch),
        held: new Set(), cursors: new Map(), recover: true,
      };
      await leaseTick(sub);
      subscriptions.set(consumer, sub);
      readLoop(sub).catch((err: unknown) => log.error({ err, consumer, namespace: ns }, 'redis: consumer stopped'));
      // Whatever a process that closed handed back is taken now, not at the next round.
      tick();
    },

    async close() {
      closed = true;
      clearInterval(maintenance);
      clearInterval(leaseTimer);
      for (const timer of retries) clearTimeout(timer);
      for (const sub of subscriptions.values()) sub.reader.disconnect();
      // Handed back now rather than after claimIdleMs, so that another process takes them at once.
      for (const sub of subscriptions.values()) {
        for (const stream of sub.streams) {
          await handBackScript.run(commands, [stream], [sub.consumer, me, claimIdleMs]).catch((err: unknown) =>
            log.warn({ err, consumer: sub.consumer, stream }, 'redis: could not hand messages back; others take them after claimIdleMs'));
        }
        await sub.leases?.close(true).catch((err: unknown) => log.warn({ err, consumer: sub.consumer }, 'redis: could not give the partition leases back; others take them when they expire'));
      }
      await commands.quit().catch(() => commands.disconnect());
    },
  };
  return bus;
}

/** The value of `name` in a stream entry's flat field list. */
function field(fields: readonly string[] | null, name: string): string | undefined {
  for (let i = 0; fields && i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
