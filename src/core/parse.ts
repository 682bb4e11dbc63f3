/**
 * Checking what comes in from the bus, once, where it is consumed: each message type a
 * service takes has a check of its payload, which says what is wrong with it, if anything.
 * After the check the message is typed, and nothing inside casts it again.
 */
import type { Envelope, Message, Parsed } from './message.ts';

/** What is wrong with a payload, or undefined when nothing is. */
export type Check = (payload: unknown) => string | undefined;

/** One check per message type of the union `M`. */
export type Checks<M extends Message> = { readonly [T in M['type']]: Check };

/** The parser of the messages `M`: a type without a check, or a payload that fails it, is malformed. */
export function parserOf<M extends Message>(checks: Checks<M>): (message: Envelope) => Parsed<M> {
  const byType = new Map<string, Check>(Object.entries<Check>(checks));
  return (message) => {
    const check = byType.get(message.type);
    if (!check) return { ok: false, problem: `${message.type} is not a message this service takes (it takes ${[...byType.keys()].join(', ')})` };
    const problem = check(message.payload);
    // The one place a consumed message becomes typed: its payload has just been checked.
    return problem === undefined ? { ok: true, message: message as Envelope<M> } : { ok: false, problem: `${message.type}: ${problem}` };
  };
}

export const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A payload that must be an object, whatever else it holds. */
export const anyObject: Check = (payload) => (isRecord(payload) ? undefined : 'the payload must be an object');

/** A payload that may carry a failure's `detail` (a string) and nothing else that matters. */
export const withDetail: Check = (payload) => {
  if (!isRecord(payload)) return 'the payload must be an object';
  return payload.detail === undefined || typeof payload.detail === 'string' ? undefined : 'detail must be a string';
};

export const isNonEmptyString = (value: unknown): value is string => typeof value === 'string' && value !== '';
