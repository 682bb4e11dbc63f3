/**
 * Messages: the only way services talk. An envelope is immutable data; every id in it is
 * derived deterministically from the message that caused it, so re-running a handler
 * produces the same messages and consumers can deduplicate by id.
 */

export type Envelope<P = unknown> = Readonly<{
  /** Unique id, derived from the causing message; consumers deduplicate on it. */
  id: string;
  type: string;
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
  payload: P;
}>;

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

/** Builds the envelopes a handler emitted, inheriting saga and correlation from the cause. */
export function envelopesFrom(cause: Envelope, outgoing: readonly Outgoing[], now: number): Envelope[] {
  return outgoing.map((out, index) => {
    const envelope: Envelope = {
      id: out.id ?? `${cause.id}>${index}`,
      type: out.type,
      sagaId: out.sagaId ?? cause.sagaId,
      step: out.step ?? cause.step,
      correlationId: out.correlationId ?? cause.correlationId,
      causationId: cause.id,
      at: now,
      payload: out.payload,
    };
    return out.deliverAt === undefined ? envelope : { ...envelope, deliverAt: out.deliverAt };
  });
}
