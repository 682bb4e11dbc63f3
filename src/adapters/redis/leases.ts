import type { Redis } from 'ioredis';
import type { LeaseBackend } from '../broker/leases.ts';
import { script } from './script.ts';

/** Keeps ARGV[1] a member until ARGV[2] ms from now (server time), forgets expired members, and returns the members. */
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

/**
 * One consumer's members and partition leases on Redis, under `prefix`
 * (`<namespace>:partition:<consumer>`): the members in a sorted set scored by when each is to be
 * forgotten, in the server's time; a lease per partition (`SET NX PX`) and its fencing epoch.
 */
export function redisLeases(redis: Redis, prefix: string): LeaseBackend {
  const members = `${prefix}:members`;
  const lease = (p: number) => `${prefix}:lease:${p}`;
  const epoch = (p: number) => `${prefix}:epoch:${p}`;
  return {
    heartbeat: async (me, ttlMs) => (await heartbeatScript.run(redis, [members], [me, ttlMs])) as string[],
    hold: async (p, me, ttlMs) => Number(await leaseScript.run(redis, [lease(p), epoch(p)], [me, ttlMs])),
    release: async (p, me) => void (await releaseScript.run(redis, [lease(p)], [me])),
    leave: async (me) => void (await redis.zrem(members, me)),
  };
}
