import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import type { LeaseBackend } from '../broker/leases.ts';

/** AMQP's "resource locked": an exclusive queue another connection declared. */
const RESOURCE_LOCKED = 405;

export type RabbitLeaseNames = Readonly<{
  /** The direct exchange members announce themselves on, routed by consumer. */
  members: string;
  /** Partition `p`'s lease: an exclusive queue of that name. */
  lease: (p: number) => string;
}>;

/** One consumer's leases on the broker, rebuilt on every connection; the backend answers from the current one. */
export type RabbitLeases = Readonly<{
  backend: LeaseBackend;
  /** Joins on a new connection: a member queue of its own, no leases yet (the old connection's went with it). */
  attach(model: ChannelModel, watch: (channel: Channel) => void): Promise<void>;
  /** The connection is gone, and every lease held on it. */
  detach(): void;
  /** Whether this connection holds `p`'s lease now. */
  holds(p: number): boolean;
}>;

type Heartbeat = Readonly<{ member: string; leaving?: boolean }>;
type Attached = Readonly<{ model: ChannelModel; channel: ConfirmChannel; held: Set<number> }>;

/**
 * A consumer's members and partition leases on RabbitMQ (docs/scaling.md), kept by the broker:
 * - a lease is an exclusive queue, `<namespace>.<consumer>.lease.<p>`: the broker lets one
 *   connection declare it (another's declare fails with 405 RESOURCE_LOCKED) and deletes it when
 *   that connection closes or the broker finds it dead (no AMQP heartbeat for two or three
 *   intervals); so a lease lives as long as its holder's connection, which also carries the
 *   holder's consumers: the broker drops both, and puts the unacknowledged deliveries back, at once;
 * - the members hear each other's heartbeats on `<namespace>.members`, each through an exclusive
 *   queue of its own bound by the consumer's name; a member not heard for the lease time is
 *   forgotten (measured on each process's own clock, from when it heard: no two clocks are compared).
 * A lease has no fencing epoch here (the broker has no counter to take one from): `hold` answers 1.
 * `onRelease` runs before a lease is given back (the bus stops reading the partition first).
 */
export function rabbitLeases(names: RabbitLeaseNames, consumer: string, onRelease: (p: number) => Promise<void>): RabbitLeases {
  /** When each member was last heard, on this process's clock. */
  const heard = new Map<string, number>();
  let attached: Attached | undefined;

  function current(): Attached {
    if (attached === undefined) throw new Error('RabbitMQ: not connected');
    return attached;
  }

  function announce(channel: ConfirmChannel, beat: Heartbeat, ttlMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      channel.publish(names.members, consumer, Buffer.from(JSON.stringify(beat)), { expiration: String(ttlMs), contentType: 'application/json' }, (err: unknown) =>
        err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(),
      );
    });
  }

  const backend: LeaseBackend = {
    async heartbeat(me, ttlMs) {
      // Confirmed by the broker: a member that cannot reach it renews nothing.
      await announce(current().channel, { member: me }, ttlMs);
      const now = Date.now();
      for (const [member, at] of heard) if (now - at > ttlMs) heard.delete(member);
      return [...new Set([me, ...heard.keys()])];
    },

    async hold(p) {
      const at = current();
      if (at.held.has(p)) return 0;
      // A channel of its own: a refused declare closes the channel it was made on.
      let channel: Channel | undefined;
      try {
        channel = await at.model.createChannel();
        channel.on('error', () => {});
        await channel.assertQueue(names.lease(p), { exclusive: true, durable: false });
        if (attached !== at) return -1; // declared on a connection gone since: it went with it
        at.held.add(p);
        return 1;
      } catch (error) {
        if ((error as { code?: unknown }).code === RESOURCE_LOCKED) return -1;
        throw error;
      } finally {
        await channel?.close().catch(() => {});
      }
    },

    async release(p) {
      const at = current();
      if (!at.held.has(p)) return;
      await onRelease(p);
      at.held.delete(p);
      await at.channel.deleteQueue(names.lease(p));
    },

    async leave(me) {
      if (attached !== undefined) await announce(attached.channel, { member: me, leaving: true }, 60_000);
    },
  };

  return {
    backend,
    async attach(model, watch) {
      const channel = await model.createConfirmChannel();
      watch(channel);
      await channel.assertExchange(names.members, 'direct', { durable: true });
      const { queue } = await channel.assertQueue('', { exclusive: true, durable: false });
      await channel.bindQueue(queue, names.members, consumer);
      await channel.consume(queue, (msg) => {
        if (msg === null) return;
        try {
          const beat = JSON.parse(msg.content.toString()) as Heartbeat;
          if (beat.leaving) heard.delete(beat.member);
          else heard.set(beat.member, Date.now());
        } catch {
          // not a heartbeat of ours: ignored
        }
      }, { noAck: true });
      attached = { model, channel, held: new Set() };
    },
    detach() {
      attached = undefined;
    },
    holds: (p) => attached?.held.has(p) ?? false,
  };
}
