import type { Envelope } from '../../core/message.ts';

/**
 * Partitions (docs/scaling.md): a consumer's messages are split into a fixed number of
 * partitions by what owns the state they touch, and one live replica of the consumer reads each
 * partition, so that a saga's messages meet on one replica, in order.
 *
 * The key is the correlation id, which is the order id for every message of a checkout, its
 * compensations and its lifecycle: the order service's state is per order, and stock's and
 * payment's per-saga documents (reservations, holds) are too. Items and accounts are shared by
 * orders of every partition; their rows are kept right by the store's version checks, as
 * before. A message without a correlation id goes by its own id.
 */
export function partitionOf(message: Pick<Envelope, 'id' | 'correlationId'>, count: number): number {
  return fnv1a(message.correlationId === '' ? message.id : message.correlationId) % count;
}

/**
 * Which member owns each of `count` partitions: rendezvous (highest random weight) hashing with
 * bounded load. Each partition goes to the member that weighs most for it among those that do
 * not have their fair share yet (count / members, and the remainder one more each): every member computes the same from the same
 * list, shares differ by one at most (plain rendezvous gave 15, 13 and 4 of 32 to three
 * members), and a member that joins or leaves moves few partitions besides its own.
 */
export function assignment(members: readonly string[], count: number): string[] {
  const sorted = [...new Set(members)].sort();
  if (sorted.length === 0) return [];
  // Each member takes floor(count / n) partitions, and `count % n` of them one more.
  const base = Math.floor(count / sorted.length);
  let extra = count % sorted.length;
  const load = new Map(sorted.map((m) => [m, 0]));
  const owners: string[] = [];
  for (let p = 0; p < count; p++) {
    let best: string | undefined;
    let bestWeight = -1;
    for (const member of sorted) {
      const taken = load.get(member)!;
      if (taken > base || (taken === base && extra === 0)) continue;
      const weight = fnv1a(`${member}/${p}`);
      if (weight > bestWeight) {
        best = member;
        bestWeight = weight;
      }
    }
    if (load.get(best!) === base) extra--;
    owners.push(best!);
    load.set(best!, load.get(best!)! + 1);
  }
  return owners;
}

/** The partitions of `count` that `me` owns among `members`. */
export function shareOf(me: string, members: readonly string[], count: number): Set<number> {
  const share = new Set<number>();
  assignment(members, count).forEach((owner, p) => owner === me && share.add(p));
  return share;
}

/** FNV-1a, 32 bits, then a final mix (murmur3's) so that near keys spread over every partition. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
