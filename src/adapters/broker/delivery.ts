import type { Envelope } from '../../core/message.ts';
import type { Logger } from '../../ports/log.ts';
import { Undeliverable } from '../../ports/bus.ts';
import type { DeadLetter } from '../../ports/deadLetters.ts';

/** Options every broker bus takes. */
export type BrokerBusOptions = Readonly<{
  namespace: string;
  /** Most unacknowledged messages per consumer in this process (handlers running at once). */
  prefetch?: number;
  maxDeliveries?: number;
  /** Delay before redelivery n (1-based); the last value repeats. */
  backoffMs?: readonly number[];
  log: Logger;
}>;

/** Retry policy shared by the broker buses, with the same meaning as the in-process bus's. */
export type RetryPolicy = Readonly<{ maxDeliveries: number; backoffMs: readonly number[] }>;

/**
 * Unacknowledged messages a consumer may hold per process. A message stays unacknowledged
 * until its batch commits, so this bounds the batch size; too small and replies queue on the
 * broker (32 held the order service to a third of its speed).
 */
export const DEFAULT_PREFETCH = 512;

export const defaultRetry: RetryPolicy = { maxDeliveries: 10, backoffMs: [100, 1000, 5000] };

export function retryPolicy(maxDeliveries: number | undefined, backoffMs: readonly number[] | undefined): RetryPolicy {
  const policy = { maxDeliveries: maxDeliveries ?? defaultRetry.maxDeliveries, backoffMs: backoffMs ?? defaultRetry.backoffMs };
  if (!Number.isInteger(policy.maxDeliveries) || policy.maxDeliveries < 1) throw new Error(`maxDeliveries must be a whole number ≥ 1, not ${policy.maxDeliveries}`);
  if (policy.backoffMs.length === 0 || policy.backoffMs.some((ms) => !Number.isInteger(ms) || ms < 0)) {
    throw new Error(`backoffMs must be a non-empty list of whole milliseconds, not [${policy.backoffMs.join(', ')}]`);
  }
  return policy;
}

/** Delay before redelivering a message whose delivery `delivery` (1-based) failed; the last value repeats. */
export function backoffAfter(policy: RetryPolicy, delivery: number): number {
  return policy.backoffMs[Math.min(delivery, policy.backoffMs.length) - 1] ?? 0;
}

/**
 * Names become queue, stream, subject and consumer names; keeping them to one plain token
 * means no name can contain another's separator or a wildcard (`.`, `*`, `>`, `#`).
 */
export function checkName(kind: 'namespace' | 'consumer' | 'message type', value: string): void {
  const pattern = kind === 'message type' ? /^[A-Za-z][A-Za-z0-9_]*$/ : /^[a-z][a-z0-9_]*$/;
  if (!pattern.test(value)) throw new Error(`Bad ${kind} for a broker: ${JSON.stringify(value)} (use ${pattern.source})`);
}

/** The reason kept with a dead letter; bounded, because broker headers are small. */
export function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

/**
 * Checks the bytes from a broker once, at the edge; anything else is a message no retry can fix.
 * A broker message holds a batch of envelopes of one type (see `batchesByType`).
 */
export function decodeBatch(bytes: Uint8Array): Envelope[] {
  const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
  if (!Array.isArray(value) || value.length === 0) throw new TypeError('A broker message must hold a non-empty JSON array of envelopes');
  return value.map(checkEnvelope);
}

function checkEnvelope(value: unknown): Envelope {
  if (typeof value !== 'object' || value === null) throw new TypeError('Envelope is not a JSON object');
  const e = value as Record<string, unknown>;
  for (const field of ['id', 'type', 'sagaId', 'step', 'correlationId', 'causationId'] as const) {
    if (typeof e[field] !== 'string') throw new TypeError(`Envelope field ${field} is not a string`);
  }
  if (e.id === '' || e.type === '') throw new TypeError('Envelope id and type must not be empty');
  if (typeof e.at !== 'number') throw new TypeError('Envelope field at is not a number');
  if (e.deliverAt !== undefined && typeof e.deliverAt !== 'number') throw new TypeError('Envelope field deliverAt is not a number');
  if (e.traceparent !== undefined && typeof e.traceparent !== 'string') throw new TypeError('Envelope field traceparent is not a string');
  if (!('payload' in e)) throw new TypeError('Envelope has no payload');
  return value as Envelope;
}

export function encodeBatch(messages: readonly Envelope[]): Buffer {
  return Buffer.from(JSON.stringify(messages));
}

/**
 * The messages of one publish, as one broker message per type: a broker spends about the same
 * on a message of one envelope as on one of fifty, and the relay publishes what a transaction
 * committed together. The consumer handles each envelope on its own (they commit together).
 */
export function batchesByType(messages: readonly Envelope[]): Envelope[][] {
  return [...batchesBy(messages, (message) => message.type).values()];
}

/** The messages grouped by `key` (a stream, a subject), in order within each group. */
export function batchesBy(messages: readonly Envelope[], key: (message: Envelope) => string): Map<string, Envelope[]> {
  const groups = new Map<string, Envelope[]>();
  for (const message of messages) {
    const k = key(message);
    const group = groups.get(k);
    if (group) group.push(message);
    else groups.set(k, [message]);
  }
  return groups;
}

/**
 * Handles every envelope of a batch; resolves with those whose handler failed, the first error,
 * and whether every failure was `Undeliverable` (then no redelivery can help: dead-letter at once).
 */
export async function handleBatch(batch: readonly Envelope[], handler: (message: Envelope) => Promise<void>): Promise<Readonly<{ failed: Envelope[]; error: unknown; permanent: boolean }>> {
  const results = await Promise.allSettled(batch.map((m) => handler(m)));
  const failed = batch.filter((_, i) => results[i]!.status === 'rejected');
  const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  return { failed, error: rejected[0]?.reason, permanent: rejected.length > 0 && rejected.every((r) => r.reason instanceof Undeliverable) };
}

/** A dead letter of a broker bus from the bytes it keeps: its envelopes, or the bytes as text when they are none. */
export function brokerLetter(id: string, consumer: string, reason: string, at: number, bytes: Uint8Array): DeadLetter {
  try {
    return { id, consumer, reason, at, messages: decodeBatch(bytes) };
  } catch {
    return { id, consumer, reason, at, messages: [], undecodable: new TextDecoder().decode(bytes) };
  }
}
