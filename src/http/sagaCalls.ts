import type { FastifyInstance } from 'fastify';
import type { Envelope, Message, Parsed } from '../core/message.ts';
import { SAGA_CALL_PATH } from '../ports/calls.ts';
import { hidden } from './openapi.ts';
import { Problem } from './problems.ts';

/** A participant as its saga-call route sees it (the runtime implements it). */
export type Called = Readonly<{
  /** The saga command types it takes. */
  consumes: readonly string[];
  parse: (message: Envelope) => Parsed<Message>;
  /** Runs a saga command; resolves, once committed, with the messages it answered. */
  call: (message: Envelope) => Promise<readonly Envelope[]>;
}>;

/**
 * The route a participant answers synchronous saga calls on: a JSON array of command envelopes
 * in, for each the envelopes it answered, once committed. Only saga commands are accepted
 * (the types the participant consumes); its API commands go through their own routes.
 * Only callers with the deployment's internal token may call (its access class is internal): a saga step called by anyone
 * else (a release or a void in the middle of a checkout) would break the checkout's accounts.
 */
export function sagaCallRoute(runtime: Called, { events = false } = {}) {
  const accepted = new Set(runtime.consumes);
  return async (app: FastifyInstance) => {
    // An internal route: the access check lets only callers with ORDERLY_INTERNAL_TOKEN through.
    app.post<{ Body: unknown }>(SAGA_CALL_PATH, { bodyLimit: 4 * 1024 * 1024, schema: hidden('internal') }, async (req) => {
      const commands = envelopes(req.body, accepted, events, (m) => {
        const parsed = runtime.parse(m);
        return parsed.ok ? undefined : parsed.problem;
      });
      return Promise.all(commands.map((command) => runtime.call(command)));
    });
  };
}

/** The envelopes of a call; each a saga command (with its saga id), or with `events` any event the service hears (which may belong to no saga). */
function envelopes(body: unknown, accepted: ReadonlySet<string>, events: boolean, problemOf: (message: Envelope) => string | undefined): Envelope[] {
  if (!Array.isArray(body)) throw new Problem('invalid-body', 'Send a JSON array of saga command envelopes.');
  return body.map((item: unknown, i) => {
    const m = item as Record<string, unknown> | null;
    const strings = ['id', 'type', 'sagaId', 'step', 'correlationId', 'causationId'];
    if (typeof m !== 'object' || m === null || strings.some((f) => typeof m[f] !== 'string') || typeof m.at !== 'number' || typeof m.payload !== 'object' || m.payload === null) {
      throw new Problem('invalid-body', `Command ${i} is not an envelope: it needs string id, type, sagaId, step, correlationId and causationId, a number at and an object payload.`);
    }
    if (m.traceparent !== undefined && typeof m.traceparent !== 'string') throw new Problem('invalid-body', `Command ${i} has a traceparent that is not a string.`);
    if (!accepted.has(m.type as string)) throw new Problem('invalid-body', `Command ${i} has type ${String(m.type)}; this service takes ${[...accepted].join(', ')}.`);
    if (m.sagaId === '' && !events) throw new Problem('invalid-body', `Command ${i} has no sagaId.`);
    const envelope = m as unknown as Envelope;
    const problem = problemOf(envelope);
    if (problem !== undefined) throw new Problem('invalid-body', `Command ${i}: ${problem}.`);
    return envelope;
  });
}
