import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { uuidV7 } from '../../src/core/ids.ts';

describe('uuidV7', () => {
  void it('is a UUID of version 7 and RFC 9562\'s variant, its first 48 bits the time in ms', () => {
    const now = Date.UTC(2026, 11, 4, 12, 0, 0, 123);
    const id = uuidV7(now, randomUUID());
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), now);
  });

  void it('ids of later milliseconds sort after earlier ones; ids of one millisecond differ', () => {
    const ids = Array.from({ length: 1000 }, (_, i) => uuidV7(1_796_000_000_000 + Math.floor(i / 10), randomUUID()));
    assert.equal(new Set(ids).size, ids.length);
    for (let i = 10; i < ids.length; i += 10) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} < ${ids[i]}`);
  });
});
