/**
 * Messages: the only way services talk. An envelope is immutable data; every id in it is
 * derived deterministically from the message that caused it, so re-running a handler
 * produces the same messages and consumers can deduplicate by id.
 */

/** A message's type and its payload's type: a participant's messages are a union of these. */
export type Message<T extends string = string, P = unknown> = Readonly<{ type: T; payload: P }>;

/** A message with where it comes from and where it belongs; `Envelope<M>` for a union `M` is a union too. */
export type Envelope<M extends Message = Message> = Readonly<{
  /** Unique id, derived from the causing message; consumers deduplicate on it. */
  id: string;
  /** The saga this message belongs to ('' when none). */
  sagaId: string;
  /** The saga step this message belongs to ('' when none). */
  step: string;
  /** The business transaction (the order id for checkouts). */
  correlationId: string;
  /** Id of the message that caused this one. */
  causationId: string;
  /** Milliseconds since the epoch when it was produced, given as data. */
  at: number;
  /** Deliver no earlier than this time (timers); absent for immediate delivery. */
  deliverAt?: number;
  /**
   * The W3C trace context of the span that produced it (when tracing is on), so that one
   * checkout is one trace across every process; inherited from the cause.
   */
  traceparent?: string;
}> & M;

/** What a consumed message turned out to be once checked: the typed message, or what is wrong with it. */
export type Parsed<M extends Message> = Readonly<{ ok: true; message: Envelope<M> } | { ok: false; problem: string }>;

/** What caused outgoing messages: a message, or an API command (no saga, no step). */
export type Cause = Readonly<{ id: string; correlationId: string; sagaId?: string; step?: string; traceparent?: string | undefined }>;

/** What a handler asks to send; the runtime turns it into an envelope. */
export type Outgoing = Readonly<{
  type: string;
  payload: unknown;
  /** Defaults to a child id of the causing message. */
  id?: string;
  sagaId?: string;
  step?: string;
  correlationId?: string;
  deliverAt?: number;
}>;

/** Builds the envelopes a handler emitted, inheriting saga, correlation and trace context from the cause. */
export function envelopesFrom(cause: Cause, outgoing: readonly Outgoing[], now: number): Envelope[] {
  return outgoing.map((out, index) => {
    const envelope: Envelope = {
      id: out.id ?? `${cause.id}>${index}`,
      type: out.type,
      sagaId: out.sagaId ?? cause.sagaId ?? '',
      step: out.step ?? cause.step ?? '',
      correlationId: out.correlationId ?? cause.correlationId,
      causationId: cause.id,
      at: now,
      payload: out.payload,
    };
    const traced = cause.traceparent === undefined ? envelope : { ...envelope, traceparent: cause.traceparent };
    return out.deliverAt === undefined ? traced : { ...traced, deliverAt: out.deliverAt };
  });
}

/** The sagas and business transactions (correlation ids) of the messages a log line is about. */
export function sagasOf(messages: readonly Envelope[] | undefined): Readonly<{ sagaIds?: string[]; correlationIds?: string[] }> {
  if (messages === undefined || messages.length === 0) return {};
  const distinct = (ids: readonly string[]) => [...new Set(ids.filter((id) => id !== ''))];
  return { sagaIds: distinct(messages.map((m) => m.sagaId)), correlationIds: distinct(messages.map((m) => m.correlationId)) };
}
