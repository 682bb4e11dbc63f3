import type { Envelope, Outgoing } from './message.ts';

/**
 * A service's business logic: one pure function from (message, current documents, time) to
 * the documents it changes, the messages it sends and the answer for a waiting caller.
 * The runtime loads the documents named by `keys`, runs `decide`, and commits the writes,
 * the message's dedup mark and the outgoing messages in one transaction.
 */
export interface Decider {
  /** The message types this service consumes from the bus. */
  readonly consumes: readonly string[];
  /** Document keys `decide` may read for this message. */
  keys(message: Envelope): readonly string[];
  decide(message: Envelope, read: Read, now: number): Decision;
}

export type Read = <T>(key: string) => T | undefined;

export type Decision = Readonly<{
  /** New document values by key; null deletes. */
  writes?: Readonly<Record<string, unknown>>;
  send?: readonly Outgoing[];
  /** Outbox ids of earlier delayed messages (timers) to cancel. */
  cancel?: readonly string[];
  /** Answer for a caller waiting on this message (HTTP commands). */
  reply?: Reply;
}>;

/** Business outcome of a command: failures are values with stable codes, never exceptions. */
export type Reply = Readonly<{ ok: true; value?: unknown } | { ok: false; code: string; detail: string }>;

export const ok = (value?: unknown): Reply => (value === undefined ? { ok: true } : { ok: true, value });
export const fail = (code: string, detail: string): Reply => ({ ok: false, code, detail });

export function assertNever(value: never): never {
  throw new Error(`Unexpected value: ${JSON.stringify(value)}`);
}
