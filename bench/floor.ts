/**
 * `npm run bench:floor`: what this machine does without any distribution, to read the other
 * numbers against. The course checkout (take two items' stock and the order's cost from its
 * user's credit, mark the order paid) as one local PostgreSQL transaction, and as one Redis Lua
 * script, over as many concurrent clients as the main bench uses. No HTTP, no saga, no broker.
 *
 *   npm run bench:floor -- --postgres postgres://127.0.0.1/postgres --redis redis://127.0.0.1:6379 --seconds 10
 *
 * It makes its own database (and drops it) and its own Redis keys (and deletes them).
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { percentile } from './latency.ts';

const { values: args } = parseArgs({
  options: {
    postgres: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    redis: { type: 'string', default: 'redis://127.0.0.1:6379' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '128' },
    n: { type: 'string', default: '50000' },
  },
});
const seconds = Number(args.seconds);
const connections = Number(args.connections);
const n = Number(args.n);
const log = (line: string) => process.stderr.write(`${line}\n`);

/** Runs `checkout` on orders 0, 1, 2, … from `connections` loops at once for the set time. */
async function measure(name: string, checkout: (orderId: number) => Promise<void>): Promise<void> {
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < deadline) {
      const t = performance.now();
      await checkout(next++ % n);
      latencies.push(performance.now() - t);
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  console.log(`${name.padEnd(34)} ${String(Math.round(latencies.length / elapsed)).padStart(7)} checkouts/s   p50 ${percentile(latencies, 50).toFixed(1)} ms   p99 ${percentile(latencies, 99).toFixed(1)} ms`);
}

// Order i belongs to user (7i mod n) and holds items (13i mod n) and (17i mod n), one of each, at 1 each.
const user = (i: number) => (7 * i) % n;
const items = (i: number) => [(13 * i) % n, (17 * i) % n];

async function postgres(url: string): Promise<void> {
  const database = `orderly_floor_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`create database ${database}`);
  const target = new URL(url);
  target.pathname = `/${database}`;
  const pool = new pg.Pool({ connectionString: target.toString(), max: 20 });
  try {
    log(`postgres: ${n} users, items and orders in ${database}`);
    await pool.query(`
      create table items (id int primary key, available int not null check (available >= 0));
      create table users (id int primary key, credit int not null check (credit >= 0));
      create table orders (id int primary key, user_id int not null, items int[] not null, total int not null, paid boolean not null default false);
      insert into items select g, 1000000000 from generate_series(0, ${n - 1}) g;
      insert into users select g, 1000000000 from generate_series(0, ${n - 1}) g;
      insert into orders select g, (7 * g) % ${n}, array[(13 * g) % ${n}, (17 * g) % ${n}], 2 from generate_series(0, ${n - 1}) g;`);
    await measure('PostgreSQL, one transaction', async (orderId) => {
      const client = await pool.connect();
      try {
        await client.query('begin');
        const { rows } = await client.query<{ user_id: number; items: number[]; total: number }>('select user_id, items, total from orders where id = $1 for update', [orderId]);
        const order = rows[0]!;
        await client.query('update items set available = available - 1 where id = any($1::int[])', [order.items]);
        await client.query('update users set credit = credit - $2 where id = $1', [order.user_id, order.total]);
        await client.query('update orders set paid = true where id = $1', [orderId]);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback');
        throw error;
      } finally {
        client.release();
      }
    });
  } finally {
    await pool.end();
    await admin.query(`drop database ${database}`);
    await admin.end();
  }
}

async function redis(url: string): Promise<void> {
  const prefix = `orderly_floor_${randomBytes(4).toString('hex')}:`;
  const client = new Redis(url);
  try {
    log(`redis: ${n} users, items and orders under ${prefix}`);
    for (let from = 0; from < n; from += 1000) {
      const batch = client.pipeline();
      for (let i = from; i < Math.min(n, from + 1000); i++) {
        batch.set(`${prefix}item:${i}`, 1_000_000_000).set(`${prefix}user:${i}`, 1_000_000_000);
        batch.hset(`${prefix}order:${i}`, 'user', user(i), 'item1', items(i)[0]!, 'item2', items(i)[1]!, 'total', 2, 'paid', 0);
      }
      await batch.exec();
    }
    // All checks first, then all writes: nothing changes unless everything can.
    const script = `
      local o = redis.call('HMGET', KEYS[1], 'user', 'item1', 'item2', 'total')
      local p = ARGV[1]
      local item1, item2, user = p .. 'item:' .. o[2], p .. 'item:' .. o[3], p .. 'user:' .. o[1]
      if tonumber(redis.call('GET', item1)) < 1 or tonumber(redis.call('GET', item2)) < 1 then return -1 end
      if tonumber(redis.call('GET', user)) < tonumber(o[4]) then return -2 end
      redis.call('DECRBY', item1, 1)
      redis.call('DECRBY', item2, 1)
      redis.call('DECRBY', user, tonumber(o[4]))
      redis.call('HSET', KEYS[1], 'paid', 1)
      return 1`;
    const sha = (await client.script('LOAD', script)) as string;
    await measure('Redis, one Lua script', async (orderId) => {
      await client.evalsha(sha, 1, `${prefix}order:${orderId}`, prefix);
    });
  } finally {
    for (let cursor = '0'; ;) {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 10_000);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
    client.disconnect();
  }
}

log(`floor: the checkout without distribution, ${connections} concurrent clients, ${seconds} s each`);
await postgres(args.postgres);
await redis(args.redis);
