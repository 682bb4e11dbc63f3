import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sharedSyncs } from '../../src/adapters/sqlite/store.ts';

/** A sync that finishes when the test says so, counting how many were started. */
function manualSyncs() {
  const pending: (() => void)[] = [];
  let started = 0;
  const run = () => new Promise<void>((resolve) => {
    started++;
    pending.push(resolve);
  });
  return { run, started: () => started, finishOne: () => pending.shift()?.(), waiting: () => pending.length };
}

const settledNow = async (promise: Promise<unknown>) => {
  let done = false;
  void promise.then(() => { done = true; });
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

void test('a sync asked for while one runs waits for the next, which serves everyone who asked meanwhile', async () => {
  const syncs = manualSyncs();
  const disk = sharedSyncs(syncs.run);
  const first = disk.sync();
  const second = disk.sync();
  const third = disk.sync();
  assert.equal(syncs.started(), 1, 'one sync runs at a time');
  syncs.finishOne();
  assert.equal(await settledNow(first), true);
  assert.equal(await settledNow(second), false, 'written before the second sync was asked for, so not covered by the first');
  assert.equal(syncs.started(), 2, 'the second and third share one sync');
  syncs.finishOne();
  assert.equal(await settledNow(second), true);
  assert.equal(await settledNow(third), true);
  assert.equal(syncs.started(), 2);
});

void test('synced() waits for the syncs asked for so far, and is at once when there are none', async () => {
  const syncs = manualSyncs();
  const disk = sharedSyncs(syncs.run);
  assert.equal(await settledNow(disk.synced()), true);
  void disk.sync();
  void disk.sync();
  const all = disk.synced();
  syncs.finishOne();
  assert.equal(await settledNow(all), false);
  syncs.finishOne();
  assert.equal(await settledNow(all), true);
});

void test('a failed sync fails those who waited for it; the next one is tried afresh', async () => {
  let fail = true;
  const disk = sharedSyncs(async () => {
    if (fail) throw new Error('EIO');
  });
  await assert.rejects(disk.sync(), /EIO/);
  fail = false;
  await disk.sync();
});
