/**
 * A UUID of version 7 (RFC 9562): the time in milliseconds first, then 74 random bits, taken
 * from `random`, a UUID of version 4 (the core has no clock or randomness of its own). Ids made
 * later sort later, so the rows keyed by them — orders, and the inbox and outbox marks of the
 * messages a checkout causes (their ids grow from its command's) — are appended at the end of
 * their B-trees instead of written into pages all over them: an embedded store under load
 * writes a third fewer pages a checkout (README).
 */
export function uuidV7(now: number, random: string): string {
  const time = Math.floor(now).toString(16).padStart(12, '0').slice(-12);
  // random is xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx: its variant (y) is version 7's too.
  return `${time.slice(0, 8)}-${time.slice(8)}-7${random.slice(15)}`;
}
