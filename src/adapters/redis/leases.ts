import type { Redis } from 'ioredis';
import type { Logger } from '../../ports/log.ts';
import { shareOf } from '../broker/partitions.ts';
import { script } from './script.ts';

/**
 * Which partitions of one consumer (service) this process reads, on Redis: each live process
 * of the consumer keeps itself in a sorted set of members (score: when it is to be forgotten,
 * in the server's time), computes its share of the partitions from the members (rendezvous
 * hashing: every member computes the same), and holds a lease per partition of its share
 * (`SET NX PX`, renewed every third of its time; a fencing epoch counts its owners). A partition
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

export type LeaseOptions = Readonly<{
  redis: Redis;
  /** Key prefix of this consumer's leases: `<namespace>:partition:<consumer>`. */
  prefix: string;
  me: string;
  count: number;
  ttlMs: number;
  log: Logger;
}>;

/** Keeps `me` a member until ARGV[2] ms from now (server time), forgets expired members, and returns the members. */
const heartbeatScript = script(`#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], 10 * tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
`);

/** Takes lease KEYS[1] for ARGV[1] (returns its new epoch, from KEYS[2]), renews it if it is ARGV[1]'s (0), or -1: another's. */
const leaseScript = script(`#!lua
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return redis.call('INCR', KEYS[2])
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
return -1
`);

/** Gives lease KEYS[1] back if ARGV[1] holds it. */
const releaseScript = script(`#!lua
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`);

export function partitionLeases({ redis, prefix, me, count, ttlMs, log }: LeaseOptions): PartitionLeases {
  const members = `${prefix}:members`;
  const lease = (p: number) => `${prefix}:lease:${p}`;
  const epoch = (p: number) => `${prefix}:epoch:${p}`;
  const owned = new Set<number>();
  // Renewed leases hold until this local time at least (the renewal began before it was sent).
  let validUntil = 0;
  let closed = false;

  const release = (p: number) => releaseScript.run(redis, [lease(p)], [me]);

  return {
    owned: () => (Date.now() < validUntil ? owned : new Set<number>()),

    async tick() {
      if (closed) return { gained: [], lost: [] };
      const began = Date.now();
      const live = (await heartbeatScript.run(redis, [members], [me, ttlMs])) as string[];
      const share = shareOf(me, live, count);
      const gained: number[] = [];
      const lost: number[] = [];
      await Promise.all([...owned].filter((p) => !share.has(p)).map(async (p) => {
        owned.delete(p);
        lost.push(p);
        await release(p);
      }));
      const results = await Promise.all([...share].map(async (p) => [p, Number(await leaseScript.run(redis, [lease(p), epoch(p)], [me, ttlMs]))] as const));
      for (const [p, result] of results) {
        if (result >= 0 && !owned.has(p)) {
          owned.add(p);
          gained.push(p);
          if (result > 0) log.debug({ partition: p, epoch: result, prefix }, 'redis: partition lease taken');
        } else if (result < 0 && owned.has(p)) {
          // Taken by another while this process could not renew (it hung, or lost its connection).
          owned.delete(p);
          lost.push(p);
        }
      }
      validUntil = began + ttlMs;
      if (gained.length > 0 || lost.length > 0) log.info({ prefix, me, gained, lost, owned: owned.size, members: live.length }, 'redis: partitions moved');
      return { gained, lost };
    },

    async close(giveBack) {
      closed = true;
      const held = [...owned];
      owned.clear();
      validUntil = 0;
      if (!giveBack) return;
      await Promise.all(held.map((p) => release(p)));
      await redis.zrem(members, me);
    },
  };
}
