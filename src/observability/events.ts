/**
 * The live event stream of this process: every message a service here commits (sends), as it
 * commits, for GET /events (server-sent events) and the console. Nothing is kept: a listener
 * sees what is committed while it listens.
 */
import type { Envelope } from '../core/message.ts';

export type LiveEvent = Readonly<{
  service: string;
  id: string;
  type: string;
  saga_id: string;
  step: string;
  correlation_id: string;
  at: string;
  /** For a delayed message (a saga's timer): when it is due. */
  deliver_at: string | null;
  payload: unknown;
}>;

type Listener = (events: readonly LiveEvent[]) => void;
const listeners = new Set<Listener>();

/**
 * Events are handed to the listeners at most every 50 ms, all that were committed meanwhile
 * together: a checkout commits a dozen times across the services, and 1,000 streams written at
 * each commit cost 16 times a checkout's CPU (bench:streams); written once per window, a stream
 * costs a write per 50 ms whatever the load.
 */
const FLUSH_MS = 50;
let pending: LiveEvent[] = [];
let flushing: NodeJS.Timeout | undefined;

function flush(): void {
  flushing = undefined;
  const events = pending;
  pending = [];
  for (const listener of listeners) listener(events);
}

/** Tells every listener of the messages `service` just committed (within 50 ms). */
export function publishCommitted(service: string, messages: readonly Envelope[]): void {
  if (listeners.size === 0 || messages.length === 0) return;
  for (const m of messages) {
    pending.push({
      service, id: m.id, type: m.type, saga_id: m.sagaId, step: m.step, correlation_id: m.correlationId,
      at: new Date(m.at).toISOString(), deliver_at: m.deliverAt === undefined ? null : new Date(m.deliverAt).toISOString(), payload: m.payload,
    });
  }
  flushing ??= setTimeout(flush, FLUSH_MS).unref();
}

/** Listens until the returned function is called. */
export function listen(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
