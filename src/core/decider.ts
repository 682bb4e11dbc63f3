import type { Envelope, Message, Outgoing, Parsed } from './message.ts';

/** A command of a service's own API (its HTTP routes): tagged by `type`, checked at the edge. */
export type ApiCommand = Readonly<{ type: string }>;

/**
 * A service's business logic: pure functions from (input, current documents, time) to the
 * documents it changes, the messages it sends and the answer for a waiting caller. Its input
 * is of two kinds: messages `M` it consumes from the bus (checked once by `parse`, where they
 * are consumed), and commands `C` of its API. The runtime loads the documents named by
 * `keys`, runs `decide`, and commits the writes, the message's dedup mark and the outgoing
 * messages in one transaction.
 */
export interface Decider<M extends Message = Message, C extends ApiCommand = ApiCommand> {
  /** The message types this service consumes from the bus. */
  readonly consumes: readonly string[];
  /** Checks a consumed message: the typed message, or what is wrong with it (it is then dead-lettered). */
  parse(message: Envelope): Parsed<M>;
  /** Document keys `decide` may read for this message. */
  keys(message: Envelope<M>): readonly string[];
  decide(message: Envelope<M>, read: Read, now: number): Decision;
  /** The service's API: each command answered with a reply. */
  readonly api: Readonly<{
    keys(command: C): readonly string[];
    decide(command: C, read: Read, now: number): Decision;
  }>;
}

/** An Idempotency-Key and the request it was first used for (a different request with it is refused). */
export type Idempotency = Readonly<{ key: string; request: string }>;

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
