import type { Envelope } from '../core/message.ts';

/**
 * A message its consumer gave up on: after the bus's last delivery, at once when the consumer
 * refused it as malformed (`Undeliverable`), or, in the synchronous style, a call its
 * participant kept failing. Kept with why, until an operator redrives or discards it.
 */
export type DeadLetter = Readonly<{
  /** `<consumer>:<where its bus keeps it>` (see `deadLetterId`); unique on one deployment. */
  id: string;
  /** The service whose handler gave up on it. */
  consumer: string;
  reason: string;
  /** When it was kept, in milliseconds since 1970. */
  at: number;
  /** What was delivered: one envelope, or several of one type that travelled together. */
  messages: readonly Envelope[];
  /** The bytes as text when they were no envelopes at all (`messages` is then empty). */
  undecodable?: string;
}>;

/**
 * The dead letters of the consumers this process runs on its bus, one way for every bus: each
 * adapter keeps them where its broker can (a RabbitMQ queue, a NATS stream, a Redis stream, or,
 * for the buses that keep nothing, the consumer's store) and answers these four.
 */
export interface DeadLetters {
  /** The consumers' dead letters, oldest first, at most `max` of each consumer. */
  list(max: number): Promise<DeadLetter[]>;
  get(id: string): Promise<DeadLetter | undefined>;
  /**
   * Hands the messages back to the consumer they failed for, and to no other consumer of their
   * type, through its normal handler (idempotent by the inbox: a dead-lettered message was never
   * committed, so its id is not marked), then forgets the dead letter. When they fail again they
   * are retried and dead-lettered again as any message. False: no such dead letter here.
   */
  redrive(id: string): Promise<boolean>;
  /** Forgets the dead letter; false when there is none with that id here. */
  discard(id: string): Promise<boolean>;
}

export function deadLetterId(consumer: string, local: string): string {
  return `${consumer}:${local}`;
}

/** The consumer and the bus's own id of a dead letter's id, or undefined when it is not one. */
export function splitDeadLetterId(id: string): Readonly<{ consumer: string; local: string }> | undefined {
  const colon = id.indexOf(':');
  if (colon <= 0 || colon === id.length - 1) return undefined;
  return { consumer: id.slice(0, colon), local: id.slice(colon + 1) };
}

/**
 * Where a bus that keeps nothing itself (in-process, synchronous calls) keeps its dead letters:
 * a service's store. `local` is the message id (one dead letter per message and consumer).
 */
export type DeadLetterShelf = Readonly<{
  keep(consumer: string, message: Envelope, reason: string): Promise<void>;
  list(consumer: string, max: number): Promise<DeadLetter[]>;
  get(consumer: string, local: string): Promise<DeadLetter | undefined>;
  remove(consumer: string, local: string): Promise<boolean>;
}>;
