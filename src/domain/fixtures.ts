import { fail, type Reply } from '../core/decider.ts';

/**
 * The course's batch_init fixtures create entities "0" … "n-1", replacing any there were. They
 * never do so silently: the answer says how many were replaced, and none is replaced while a
 * checkout holds part of it (its stock reserved, its credit held, its checkout under way), since
 * replacing it would make the checkout's accounts wrong.
 */
export const batchKeys = (count: number, key: (id: string) => string): string[] => Array.from({ length: count }, (_, i) => key(String(i)));

/** How many of "0" … "count-1" exist, and the first one a checkout holds, if any. */
export function replaced<T>(count: number, read: (i: number) => T | undefined, held: (entity: T) => boolean): { existing: number; busy?: string } {
  let existing = 0;
  for (let i = 0; i < count; i++) {
    const entity = read(i);
    if (entity === undefined) continue;
    existing++;
    if (held(entity)) return { existing, busy: String(i) };
  }
  return { existing };
}

export function busyFixture(what: string, count: number, busy: string, why: string): Reply {
  return fail('fixture-conflict', `batch_init would replace ${what} "0" … "${count - 1}", and ${busy} has ${why}: let the checkouts under way finish (or use ids beyond these), then call it again. Nothing was changed.`);
}
