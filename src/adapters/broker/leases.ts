import type { Logger } from '../../ports/log.ts';
import { shareOf } from './partitions.ts';

/**
 * Which partitions of one consumer (service) this process reads (docs/scaling.md): each live
 * process of the consumer keeps itself a member, computes its share of the partitions from the
 * members (rendezvous hashing: every member computes the same), and holds a lease per partition
 * of its share, renewed every third of its time (a fencing epoch counts its owners). A partition
 * it no longer should own it releases; one held by another is taken once released or expired.
 * A process that dies or hangs loses its membership and its leases after `ttlMs`, and the others
 * take its partitions over then.
 *
 * A lease is not a lock on the store: a process that hung past its lease may still finish a
 * message it was handling. That overlap is kept correct by the store's version checks and the
 * inbox (a message committed twice is skipped); the leases keep it rare and short.
 */
export type PartitionLeases = Readonly<{
  /** The partitions owned now (none once the last renewal is older than the lease). */
  owned(): ReadonlySet<number>;
  /** Renews, releases and takes leases now; resolves with what changed. */
  tick(): Promise<Readonly<{ gained: readonly number[]; lost: readonly number[] }>>;
  /** Stops renewing; with `release`, gives every lease and the membership back at once. */
  close(release: boolean): Promise<void>;
}>;

/**
 * Where a bus keeps one consumer's members and leases, with the broker's own clock and
 * atomicity (Redis: a sorted set and `SET NX PX`; each bus adapter has its own).
 */
export type LeaseBackend = Readonly<{
  /** Keeps `me` a member for `ttlMs` more, forgets expired members, and resolves with the live ones (`me` among them). */
  heartbeat(me: string, ttlMs: number): Promise<readonly string[]>;
  /** Takes partition `p`'s lease for `me` (resolves with its new fencing epoch, > 0), renews it when `me` holds it (0), or -1: another holds it. */
  hold(p: number, me: string, ttlMs: number): Promise<number>;
  /** Gives `p`'s lease back if `me` holds it. */
  release(p: number, me: string): Promise<void>;
  /** Forgets `me` as a member at once. */
  leave(me: string): Promise<void>;
}>;

export type LeaseOptions = Readonly<{
  backend: LeaseBackend;
  /** What the log lines name: the bus and the consumer. */
  about: Readonly<Record<string, string>>;
  me: string;
  count: number;
  ttlMs: number;
  log: Logger;
}>;

export function partitionLeases({ backend, about, me, count, ttlMs, log }: LeaseOptions): PartitionLeases {
  const owned = new Set<number>();
  // Renewed leases hold until this local time at least (the renewal began before it was sent).
  let validUntil = 0;
  let closed = false;

  return {
    owned: () => (Date.now() < validUntil ? owned : new Set<number>()),

    async tick() {
      if (closed) return { gained: [], lost: [] };
      const began = Date.now();
      const live = await backend.heartbeat(me, ttlMs);
      const share = shareOf(me, live, count);
      const gained: number[] = [];
      const lost: number[] = [];
      await Promise.all([...owned].filter((p) => !share.has(p)).map(async (p) => {
        owned.delete(p);
        lost.push(p);
        await backend.release(p, me);
      }));
      const results = await Promise.all([...share].map(async (p) => [p, await backend.hold(p, me, ttlMs)] as const));
      for (const [p, result] of results) {
        if (result >= 0 && !owned.has(p)) {
          owned.add(p);
          gained.push(p);
          if (result > 0) log.debug({ ...about, partition: p, epoch: result }, 'partition lease taken');
        } else if (result < 0 && owned.has(p)) {
          // Taken by another while this process could not renew (it hung, or lost its connection).
          owned.delete(p);
          lost.push(p);
        }
      }
      validUntil = began + ttlMs;
      if (gained.length > 0 || lost.length > 0) log.info({ ...about, me, gained, lost, owned: owned.size, members: live.length }, 'partitions moved');
      return { gained, lost };
    },

    async close(giveBack) {
      closed = true;
      const held = [...owned];
      owned.clear();
      validUntil = 0;
      if (!giveBack) return;
      await Promise.all(held.map((p) => backend.release(p, me)));
      await backend.leave(me);
    },
  };
}
