import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { durabilityWarnings } from '../../src/adapters/redis/durability.ts';
import { openRedisStore } from '../../src/adapters/redis/store.ts';
import { randomName } from './helpers.ts';

const REDIS = process.env.ORDERLY_TEST_REDIS ?? 'redis://127.0.0.1:6379';
const config = (entries: Record<string, string>) => new Map(Object.entries(entries));

void describe('Redis durability check', () => {
  void test('warns when Redis keeps nothing on disk', () => {
    assert.deepEqual(durabilityWarnings(config({ appendonly: 'no', save: '', 'maxmemory-policy': 'noeviction' }), 'redis-1:6379'), [
      'Redis at redis-1:6379 keeps nothing on disk (appendonly no, no save points): a restart of Redis loses committed data. Run it with appendonly yes (appendfsync everysec or always).',
    ]);
  });

  void test('is quiet with an append-only file synced every second or always, and no eviction', () => {
    for (const appendfsync of ['everysec', 'always']) {
      assert.deepEqual(durabilityWarnings(config({ appendonly: 'yes', appendfsync, save: '', 'maxmemory-policy': 'noeviction' }), 'r:1'), []);
    }
  });

  void test('warns on snapshots only, on appendfsync no and on an eviction policy', () => {
    const warnings = [
      durabilityWarnings(config({ appendonly: 'no', save: '3600 1', 'maxmemory-policy': 'noeviction' }), 'r:1'),
      durabilityWarnings(config({ appendonly: 'yes', appendfsync: 'no', 'maxmemory-policy': 'noeviction' }), 'r:1'),
      durabilityWarnings(config({ appendonly: 'yes', appendfsync: 'always', 'maxmemory-policy': 'allkeys-lru' }), 'r:1'),
    ];
    assert.deepEqual(warnings.map((w) => w.length), [1, 1, 1]);
    assert.match(warnings[0]![0]!, /only keeps snapshots/);
    assert.match(warnings[1]![0]!, /appendfsync no/);
    assert.match(warnings[2]![0]!, /maxmemory-policy allkeys-lru/);
  });

  void test("openRedisStore logs what it finds wrong with the server's settings", async (t) => {
    const redis = new Redis(REDIS);
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        done();
      },
    });
    const prefix = `${randomName('orderly_test')}:`;
    t.after(async () => {
      await redis.del(`${prefix}layout`);
      await redis.quit();
    });
    const store = await openRedisStore(redis, 'durability', { prefix, log: pino({ level: 'warn' }, sink) });
    const server = new Map<string, string>();
    for (const name of ['appendonly', 'appendfsync', 'save', 'maxmemory-policy']) {
      const [key, value] = (await redis.call('CONFIG', ['GET', name])) as [string, string];
      server.set(key, value);
    }
    assert.deepEqual(store.warnings, durabilityWarnings(server, '127.0.0.1:6379'));
    assert.deepEqual(lines.map((l) => [l.level, l.msg]), store.warnings.map((w) => [40, w]));
  });
});
