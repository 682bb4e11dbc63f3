import { shareOf } from '../adapters/broker/partitions.ts';
import type { Incarnation } from './store.ts';

type Lease = { readonly owner: Incarnation; until: number; readonly epoch: number };

/**
 * Who reads each partition of one consumer, kept as src/adapters/broker/leases.ts keeps it on
 * every bus: each live replica is a member until its last heartbeat is `ttl` old, computes its share
 * from the members (the real rendezvous `shareOf`), gives back what left its share, takes a
 * partition of its share once its lease is free or expired (a new epoch), and renews its own.
 * A replica that dies or hangs keeps its leases until they expire; nobody reads those
 * partitions meanwhile. A lease is not a lock: what a replica was handling when it lost one it
 * may still commit (the overlap).
 */
export class Leases {
  readonly count: number;
  readonly ttl: number;
  readonly #members = new Map<string, { inc: Incarnation; until: number }>();
  readonly #leases: (Lease | undefined)[];
  readonly #epochs: number[];

  constructor(count: number, ttl: number) {
    this.count = count;
    this.ttl = ttl;
    this.#leases = Array.from({ length: count }, () => undefined);
    this.#epochs = Array.from({ length: count }, () => 0);
  }

  /** The replica that holds partition `p` now, and the epoch of its lease. */
  holder(p: number, now: number): Lease | undefined {
    const lease = this.#leases[p];
    return lease && lease.until > now ? lease : undefined;
  }

  /** One round of `inc`'s lease keeping (heartbeat, give back, take, renew): the partitions it took. */
  tick(inc: Incarnation, now: number): number[] {
    const me = `r${inc.n}`;
    this.#members.set(me, { inc, until: now + this.ttl });
    for (const [name, m] of this.#members) if (m.until <= now) this.#members.delete(name);
    const share = shareOf(me, [...this.#members.keys()], this.count);
    const gained: number[] = [];
    for (let p = 0; p < this.count; p++) {
      const lease = this.#leases[p];
      if (!share.has(p)) {
        if (lease?.owner === inc) this.#leases[p] = undefined;
      } else if (!lease || lease.until <= now) {
        const epoch = (this.#epochs[p] ?? 0) + 1;
        this.#epochs[p] = epoch;
        this.#leases[p] = { owner: inc, until: now + this.ttl, epoch };
        gained.push(p);
      } else if (lease.owner === inc) lease.until = now + this.ttl;
    }
    return gained;
  }

  /** `inc` leaves: gives its leases and its membership back at once. */
  leave(inc: Incarnation): void {
    this.#members.delete(`r${inc.n}`);
    this.#leases.forEach((lease, p) => lease?.owner === inc && (this.#leases[p] = undefined));
  }

  /** The partitions no live, awake replica holds now. */
  unowned(now: number): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.count; p++) {
      const owner = this.holder(p, now)?.owner;
      if (!owner || !owner.alive || owner.hungUntil > now) out.push(p);
    }
    return out;
  }
}
