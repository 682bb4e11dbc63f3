import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assignment, partitionOf, shareOf } from '../../src/adapters/broker/partitions.ts';

// Which replica reads which partition (src/adapters/broker/partitions.ts): computed alike by every
// replica from the list of live members, even, and stable when a member joins or leaves.

const members = (n: number) => Array.from({ length: n }, (_, i) => `stock@host-${i}`);

test('every message of one order goes to one partition; orders spread over all of them', () => {
  const p = partitionOf({ id: 'm1', correlationId: 'order-7' }, 32);
  assert.equal(partitionOf({ id: 'm2', correlationId: 'order-7' }, 32), p);
  const used = new Set(Array.from({ length: 1000 }, (_, i) => partitionOf({ id: `m${i}`, correlationId: `order-${i}` }, 32)));
  assert.equal(used.size, 32);
  assert.equal(partitionOf({ id: 'lonely', correlationId: '' }, 32), partitionOf({ id: 'x', correlationId: 'lonely' }, 32), 'no correlation id: its own id');
});

test('shares differ by one partition at most, whatever the number of members', () => {
  for (const n of [1, 2, 3, 5, 8, 13, 32, 40]) {
    const sizes = members(n).map((m) => shareOf(m, members(n), 32).size);
    assert.equal(sizes.reduce((a, b) => a + b, 0), 32, `${n} members: every partition owned once`);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `${n} members: ${sizes.join(' ')}`);
  }
});

test('every member computes the same owners, in whatever order it lists the members', () => {
  const list = members(5);
  assert.deepEqual(assignment(list.toReversed(), 32), assignment(list, 32));
});

test('a member that joins takes its share and moves few others; one that leaves gives only its own away, plus a few', () => {
  const before = assignment(members(3), 32);
  const after = assignment(members(4), 32);
  const moved = before.filter((owner, p) => after[p] !== owner).length;
  const toNew = after.filter((owner) => owner === 'stock@host-3').length;
  assert.equal(toNew, 8);
  assert.ok(moved <= toNew + 4, `${moved} partitions moved for ${toNew} to the new member`);
});
