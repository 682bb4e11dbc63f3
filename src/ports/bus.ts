import type { Envelope } from '../core/message.ts';
import type { DeadLetters } from './deadLetters.ts';

/**
 * Consumes one message; resolves once its effects are committed, rejects to have it redelivered
 * (or, with `Undeliverable`, dead-lettered at once).
 */
export type Handler = (message: Envelope) => Promise<void>;

/** A handler's refusal that no redelivery can change (a malformed message): the bus dead-letters it at once, with this reason. */
export class Undeliverable extends Error {
  override name = 'Undeliverable';
}

/**
 * Moves messages between services, at least once. Every consumer (a service, with any number of
 * replicas sharing the work) subscribed to a message's type gets it; a message is acknowledged
 * only after its handler resolved, redelivered with backoff when it rejects, and after
 * `maxDeliveries` (at once for `Undeliverable`) kept aside as a dead letter with the reason.
 */
export interface Bus {
  /**
   * Resolves once the messages are durably accepted (broker confirm; in-process: consumed).
   * Messages of one type published together may travel as one broker message, so one replica
   * gets them all; each is still handled, retried and dead-lettered on its own, though one may
   * be handed again when another of its batch fails (consumers deduplicate).
   */
  publish(messages: readonly Envelope[]): Promise<void>;
  subscribe(consumer: string, types: readonly string[], handler: Handler): Promise<void>;
  /**
   * Makes the broker keep messages of `types` for `consumer` from now on, even before any of
   * its replicas subscribes (every process declares the whole topology at start, so nothing
   * published while a service is down or not yet started is dropped).
   */
  declare(consumer: string, types: readonly string[]): Promise<void>;
  /** The dead letters of the consumers subscribed here: list, show, redrive, discard. */
  readonly deadLetters: DeadLetters;
  /** Whether the broker is reachable now (readiness); false while reconnecting. */
  connected(): boolean;
  close(): Promise<void>;
}
