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
 * The live member that owns `partition`: rendezvous (highest random weight) hashing, so that
 * every member computes the same owner from the same list, and a member joining or leaving
 * moves only the partitions it gains or had (about 1/n of them), none between the others.
 */
export function ownerOf(partition: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (const member of members) {
    const weight = fnv1a(`${member}/${partition}`);
    if (weight > bestWeight || (weight === bestWeight && best !== undefined && member < best)) {
      best = member;
      bestWeight = weight;
    }
  }
  return best;
}

/** The partitions of `count` that `me` owns among `members`. */
export function shareOf(me: string, members: readonly string[], count: number): Set<number> {
  const share = new Set<number>();
  for (let p = 0; p < count; p++) if (ownerOf(p, members) === me) share.add(p);
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
