import { partitionOf } from '../adapters/broker/partitions.ts';
import type { Envelope } from '../core/message.ts';
import { Undeliverable, type Bus, type Handler } from '../ports/bus.ts';
import { deadLetterId, splitDeadLetterId, type DeadLetter, type DeadLetters } from '../ports/deadLetters.ts';
import type { Params } from './params.ts';
import { Leases } from './partitions.ts';
import { awake, later, never, type Incarnation } from './store.ts';
import type { World } from './world.ts';

type Delivery = { readonly message: Envelope; readonly consumer: string; attempts: number; token: number; handedAt: number };
/** Who reads a delivery now, and (partitioned) the epoch of the lease it reads it under. */
type Reader = Readonly<{ inc: Incarnation; handler: Handler; epoch: number }>;
/** A partitioned consumer: its partitions' leases, each replica's handler, and when each took each partition it holds (for the take-over). */
type Group = Readonly<{ leases: Leases; handlers: Map<Incarnation, Handler>; gainedAt: Map<Incarnation, Map<number, number>> }>;

/** Short name of a message for the trace. */
export const about = (m: Envelope) => `${m.type} ${m.sagaId || m.correlationId}${m.step ? `/${m.step}` : ''}`;

/**
 * A broker in the simulated world (the orchestrated and choreographed styles): durable queues per
 * consumer, at-least-once. It delays every message by its own amount (so they reorder), may take
 * a message twice, refuse a publish, lose a publish's confirm or a consumer's acknowledgement,
 * redelivers what a consumer failed (with backoff) or what was in flight when its process died,
 * and keeps as a dead letter what failed `maxDeliveries` times, until the operator redrives it.
 *
 * Partitioned (as the Redis Streams bus is, src/adapters/redis/bus.ts), a consumer's messages go
 * by the real `partitionOf` to the replica that holds the partition's lease (`Leases`), and not
 * while it hangs. A replica that takes a partition takes over, in its first leases, what another
 * was handed a third of a lease ago or more and has not acknowledged; that one may still commit
 * it late (the overlap). No order is promised within a partition: the real bus reads each
 * type's stream of a partition in order, but handles what it read concurrently, retries later,
 * and its publishers' relays race, so every delivery here has its own delay.
 */
export class SimBroker {
  readonly #world: World;
  readonly #params: Params;
  readonly #routes = new Map<string, string[]>();
  readonly #handlers = new Map<string, { inc: Incarnation; handler: Handler }>();
  readonly #inFlight = new Map<Incarnation, Set<Delivery>>();
  readonly #groups = new Map<string, Group>();
  /** What each replica was handed: message id → its partition and the lease's epoch then. */
  readonly #handed = new WeakMap<Incarnation, Map<string, { partition: number; epoch: number }>>();
  readonly dead = new Map<string, DeadLetter>();
  /** Deliveries not yet acknowledged or dead-lettered. */
  queued = 0;
  /** Messages a replica committed after it lost their partition (the overlaps that happened). */
  lateCommits = 0;

  constructor(world: World, params: Params) {
    this.#world = world;
    this.#params = params;
  }

  get idle(): boolean {
    return this.queued === 0 && this.dead.size === 0;
  }

  #delay(): number {
    return this.#world.rng.int(0, this.#params.maxDelay);
  }

  #fault(p: number): boolean {
    return this.#world.faults && this.#world.rng.chance(p);
  }

  #accept(message: Envelope): void {
    for (const consumer of this.#routes.get(message.type) ?? []) {
      this.#enqueue(consumer, message);
      if (this.#fault(this.#params.duplicate)) this.#enqueue(consumer, message);
    }
  }

  #enqueue(consumer: string, message: Envelope): void {
    const d: Delivery = { message, consumer, attempts: 0, token: 0, handedAt: 0 };
    this.queued++;
    this.#world.after(this.#delay(), () => this.#deliver(d));
  }

  /** Who reads `d` now: unpartitioned, its consumer's one process; partitioned, the live, awake holder of its partition. */
  #reader(d: Delivery): Reader | undefined {
    if (this.#params.partitions === 0) {
      const h = this.#handlers.get(d.consumer);
      return h?.inc.alive ? { ...h, epoch: 0 } : undefined;
    }
    const group = this.#groups.get(d.consumer);
    const lease = group?.leases.holder(partitionOf(d.message, this.#params.partitions), this.#world.now);
    const handler = lease && group?.handlers.get(lease.owner);
    return lease && handler && lease.owner.alive && lease.owner.hungUntil <= this.#world.now ? { inc: lease.owner, handler, epoch: lease.epoch } : undefined;
  }

  #deliver(d: Delivery): void {
    const world = this.#world;
    const h = this.#reader(d);
    if (!h) {
      // Partitioned, nobody may read it for up to a lease; a new holder starts reading within its read's wait (the real one blocks up to 2 s).
      world.after((this.#params.partitions === 0 ? 10 : Math.round(this.#params.leaseMs / 6)) + this.#delay(), () => this.#deliver(d));
      return;
    }
    d.attempts++;
    const token = ++d.token;
    d.handedAt = world.now;
    if (this.#params.partitions > 0) this.#handedTo(h.inc).set(d.message.id, { partition: partitionOf(d.message, this.#params.partitions), epoch: h.epoch });
    const flying = this.#inFlight.get(h.inc) ?? new Set<Delivery>();
    this.#inFlight.set(h.inc, flying);
    flying.add(d);
    world.note(`→ ${d.consumer} ${about(d.message)}${d.attempts > 1 ? ` (delivery ${d.attempts})` : ''}`);
    h.handler(d.message).then(() => {
      if (d.token !== token) return;
      world.after(this.#delay(), () => {
        if (d.token !== token) return;
        flying.delete(d);
        if (this.#fault(this.#params.ackLost)) {
          world.note(`  ack of ${about(d.message)} by ${d.consumer} lost`);
          d.token++;
          world.after(50 + this.#delay(), () => this.#deliver(d));
        } else this.queued--;
      });
    }, (error: unknown) => {
      if (d.token !== token) return;
      flying.delete(d);
      const reason = error instanceof Error ? error.message : String(error);
      if (error instanceof Undeliverable || d.attempts >= this.#params.maxDeliveries) {
        world.note(`  ${about(d.message)} dead-lettered by ${d.consumer}: ${reason}`);
        this.dead.set(deadLetterId(d.consumer, d.message.id), { id: deadLetterId(d.consumer, d.message.id), consumer: d.consumer, reason, at: world.now, messages: [d.message] });
        this.queued--;
      } else {
        world.after(Math.min(2000, 10 * 2 ** d.attempts) + this.#delay(), () => this.#deliver(d));
      }
    });
  }

  /** The process died: whatever it was handling comes back to the queue unacknowledged. */
  crashed(inc: Incarnation): void {
    for (const d of this.#inFlight.get(inc) ?? []) {
      d.token++;
      this.#world.after(this.#delay(), () => this.#deliver(d));
    }
    this.#inFlight.delete(inc);
    for (const [consumer, h] of this.#handlers) if (h.inc === inc) this.#handlers.delete(consumer);
    for (const group of this.#groups.values()) {
      group.handlers.delete(inc);
      group.gainedAt.delete(inc);
    }
  }

  /** The process leaves (a scale-down, a rolling restart): it gives its partitions back and stops reading, but finishes what it has under way. */
  left(inc: Incarnation): void {
    for (const group of this.#groups.values()) group.leases.leave(inc);
    this.crashed(inc);
  }

  #handedTo(inc: Incarnation): Map<string, { partition: number; epoch: number }> {
    const handed = this.#handed.get(inc) ?? new Map<string, { partition: number; epoch: number }>();
    this.#handed.set(inc, handed);
    return handed;
  }

  /** A replica joins a partitioned consumer: it keeps its leases every third of their time, and takes over what the previous holders left. */
  #join(consumer: string, inc: Incarnation, handler: Handler): void {
    const world = this.#world;
    const group = this.#groups.get(consumer) ?? { leases: new Leases(this.#params.partitions, this.#params.leaseMs), handlers: new Map(), gainedAt: new Map() };
    this.#groups.set(consumer, group);
    group.handlers.set(inc, handler);
    const mine = new Map<number, number>();
    group.gainedAt.set(inc, mine);
    const round = () => {
      if (group.handlers.get(inc) !== handler) return;
      for (const p of group.leases.tick(inc, world.now)) {
        mine.set(p, world.now);
        world.note(`  ${consumer} run ${inc.n} takes partition ${p}`);
      }
      for (const [p, at] of mine) {
        if (world.now - at > 3 * group.leases.ttl || group.leases.holder(p, world.now)?.owner !== inc) mine.delete(p);
        else this.#takeOver(consumer, p, inc);
      }
      later(world, inc, Math.round(group.leases.ttl / 3), round);
    };
    round();
  }

  /** What other replicas were handed of partition `p` a third of a lease ago or more and have not acknowledged goes to `inc`; they may still commit it (the overlap). */
  #takeOver(consumer: string, p: number, inc: Incarnation): void {
    const idle = this.#world.now - this.#params.leaseMs / 3;
    for (const [holder, flying] of this.#inFlight) {
      if (holder === inc) continue;
      for (const d of flying) {
        if (d.consumer !== consumer || d.handedAt > idle || partitionOf(d.message, this.#params.partitions) !== p) continue;
        flying.delete(d);
        d.token++;
        this.#world.note(`  ${consumer} run ${inc.n} takes over ${about(d.message)} from run ${holder.n}`);
        this.#world.after(this.#delay(), () => this.#deliver(d));
      }
    }
  }

  /**
   * Checks a commit of `inc` (partitioned): it consumed only what the broker handed it, and a
   * message of a partition it no longer holds under the lease it was handed it under is a late
   * commit after a hand-over (counted). Returns what is wrong, if anything.
   */
  consumedBy(inc: Incarnation, ids: readonly string[]): string | undefined {
    if (this.#params.partitions === 0 || inc.n === 0) return undefined;
    const group = this.#groups.get(inc.service);
    for (const id of ids) {
      const handed = this.#handed.get(inc)?.get(id);
      if (!handed || !group) return `${inc.service} run ${inc.n} consumed message ${id}, which the broker never handed it`;
      const lease = group.leases.holder(handed.partition, this.#world.now);
      if (lease?.owner !== inc || lease.epoch !== handed.epoch) {
        this.lateCommits++;
        this.#world.note(`  ${inc.service} run ${inc.n} commits ${id} late: partition ${handed.partition} is ${lease ? `run ${lease.owner.n}'s` : 'nobody\'s'} now`);
      }
    }
    return undefined;
  }

  /** The partitions of every consumer that no live, awake replica holds now. */
  unowned(): string[] {
    return [...this.#groups].flatMap(([consumer, group]) => group.leases.unowned(this.#world.now).map((p) => `${consumer}/${p}`));
  }

  /** The operator hands every dead letter back to its consumer. */
  redriveAll(): number {
    const letters = [...this.dead.values()];
    for (const letter of letters) this.#redrive(letter);
    return letters.length;
  }

  #redrive(letter: DeadLetter): void {
    this.dead.delete(letter.id);
    for (const m of letter.messages) this.#enqueue(letter.consumer, m);
    this.#world.note(`operator redrives ${letter.id}`);
  }

  view(inc: Incarnation): Bus {
    const world = this.#world;
    const p = this.#params;
    const deadLetters: DeadLetters = {
      list: async (max) => [...this.dead.values()].slice(0, max),
      get: async (id) => this.dead.get(id),
      redrive: async (id) => {
        const letter = this.dead.get(id);
        if (letter) this.#redrive(letter);
        return letter !== undefined && splitDeadLetterId(id) !== undefined;
      },
      discard: async (id) => this.dead.delete(id),
    };
    return {
      publish: async (messages) => {
        if (!inc.alive) return never();
        await world.sleep(this.#delay());
        if (inc.hungUntil > world.now) await awake(world, inc);
        if (!inc.alive) return never();
        if (this.#fault(p.publishFail)) throw new Error('simulated: the broker refused the publish');
        for (const m of messages) this.#accept(m);
        if (this.#fault(p.crashInPublish)) {
          inc.crash('after the broker took its publish, before the relay dropped it from the outbox');
          return never();
        }
        if (this.#fault(p.confirmLost)) throw new Error('simulated: the publish confirm was lost');
      },
      subscribe: async (consumer, types, handler) => {
        this.#declare(consumer, types);
        if (p.partitions === 0) this.#handlers.set(consumer, { inc, handler });
        else this.#join(consumer, inc, handler);
      },
      declare: async (consumer, types) => this.#declare(consumer, types),
      deadLetters,
      connected: () => inc.alive,
      close: async () => {},
    };
  }

  #declare(consumer: string, types: readonly string[]): void {
    for (const type of types) {
      const list = this.#routes.get(type) ?? [];
      if (!list.includes(consumer)) this.#routes.set(type, [...list, consumer]);
    }
  }
}
