import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DocCache } from '../../src/adapters/storeKit.ts';

test('a document cache gives what it keeps and guesses the rest missing', () => {
  const cache = new DocCache<number>(10);
  cache.remember('order:1', 3, '{"total":5}');
  const kept = cache.lookup(['order:1', 'saga:1']);
  assert.deepEqual(kept?.docs, new Map([['order:1', { total: 5 }]]));
  assert.deepEqual(kept?.versions, new Map([['order:1', 3]]));
  assert.deepEqual(kept?.guessed, ['saga:1']);
  kept!.docs.set('order:1', { total: 6 });
  assert.deepEqual(cache.lookup(['order:1'])?.docs.get('order:1'), { total: 5 }, 'a decision cannot change the kept copy');
  assert.equal(new DocCache<number>(0).lookup(['order:1']), undefined, 'a cache of size 0 keeps and guesses nothing');
});

test('a guess found wrong stops guesses of its kind for a while; a kept version found changed stops keeping that key', () => {
  const cache = new DocCache<number>(10);
  const now = 1_000;
  cache.remember('item:1', 1, '1', now);
  const kept = cache.lookup(['item:1', 'order:7', 'saga:7'], now)!;
  // The retry read: order:7 was there all along, and item:1 had moved on to version 2.
  cache.remember('item:1', 2, '2', now);
  cache.remember('order:7', 1, '{}', now);
  cache.settle(kept, new Map([['item:1', 2], ['order:7', 1]]), now);
  assert.equal(cache.lookup(['order:8'], now + 1), undefined, 'order keys are read, not guessed');
  assert.deepEqual(cache.lookup(['saga:8'], now + 1)?.guessed, ['saga:8'], 'saga keys are still guessed');
  assert.equal(cache.lookup(['item:1'], now + 1), undefined, 'the raced item is read');
  cache.remember('item:1', 3, '3', now + 1);
  assert.equal(cache.lookup(['item:1'], now + 1), undefined, 'and not kept again for a while');
  assert.deepEqual(cache.lookup(['order:7'], now + 1)?.versions, new Map([['order:7', 1]]), 'the found document is kept');
  assert.deepEqual(cache.lookup(['order:9'], now + 60_000)?.guessed, ['order:9'], 'order keys are guessed again later');
});

test('a document cache keeps at most its size, dropping the least recently used', () => {
  const cache = new DocCache<number>(2);
  cache.remember('a:1', 1, '1');
  cache.remember('a:2', 1, '2');
  cache.lookup(['a:1']);
  cache.remember('a:3', 1, '3');
  assert.deepEqual(cache.lookup(['a:1', 'a:2', 'a:3'])?.guessed, ['a:2']);
});
