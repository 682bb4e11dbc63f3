import type { FastifyInstance } from 'fastify';
import type { ServerResponse } from 'node:http';
import { listen, type LiveEvent } from '../observability/events.ts';
import { route } from './openapi.ts';
import { Problem } from './problems.ts';

/** Past this much unsent data to a slow client, events are dropped (and counted) rather than kept. */
const MAX_BUFFERED = 256 * 1024;
const HEARTBEAT_MS = 15_000;
/** What a client refused for too many streams is told to wait. */
export const STREAMS_RETRY_AFTER_S = 10;

export type Listen = (listener: (events: readonly LiveEvent[]) => void) => () => void;

/** The events a stream's query asks for: `type` (comma-separated), `service`, `correlation_id`. */
export function eventFilter(query: Readonly<Record<string, string | undefined>>): (e: LiveEvent) => boolean {
  const types = query.type?.split(',').filter(Boolean);
  const { service, correlation_id: correlationId } = query;
  return (e) => (!types || types.includes(e.type)) && (!service || e.service === service) && (!correlationId || e.correlation_id === correlationId);
}

/** At most `max` streams open at once in this process. */
export function streamLimit(max: number) {
  let open = 0;
  return {
    /** Takes a place, or throws the 503 to answer; the returned function gives the place back. */
    take(): () => void {
      if (open >= max) throw new Problem('too-many-streams', `This process already serves ${max} event streams (ORDERLY_MAX_EVENT_STREAMS); retry in ${STREAMS_RETRY_AFTER_S} s.`);
      open++;
      let given = false;
      return () => {
        if (!given) open--;
        given = true;
      };
    },
    get open() {
      return open;
    },
  };
}

/** Each event's `data:` line, made once however many streams send it. */
const lines = new WeakMap<LiveEvent, string>();
const lineOf = (e: LiveEvent) => {
  let line = lines.get(e);
  if (line === undefined) lines.set(e, (line = `data: ${JSON.stringify(e)}\n\n`));
  return line;
};
/** A whole batch's lines as one buffer, made once for every stream that wants all of it (no filter). */
const batches = new WeakMap<readonly LiveEvent[], Buffer>();
const chunkOf = (events: readonly LiveEvent[]) => {
  let chunk = batches.get(events);
  if (chunk === undefined) batches.set(events, (chunk = Buffer.from(events.map(lineOf).join(''))));
  return chunk;
};

/**
 * Serves one server-sent event stream on `res`: the events `wanted` takes, as `listen` delivers
 * them. A client too slow to keep up gets `event: dropped` with how many it missed (nothing is
 * kept for it beyond 256 KiB); `release` is called once the stream is closed.
 */
export function streamEvents(res: ServerResponse, wanted: (e: LiveEvent) => boolean, subscribe: Listen, banner: string, release: () => void): void {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no', 'x-content-type-options': 'nosniff' });
  res.write(`: ${banner}\n\n`);
  let dropped = 0;
  const stop = subscribe((events) => {
    const chosen = events.filter(wanted);
    if (chosen.length === 0) return;
    if (res.writableLength > MAX_BUFFERED) {
      dropped += chosen.length;
      return;
    }
    if (dropped > 0) {
      res.write(`event: dropped\ndata: ${JSON.stringify({ count: dropped })}\n\n`);
      dropped = 0;
    }
    res.write(chosen.length === events.length ? chunkOf(events) : chosen.map(lineOf).join(''));
  });
  const heartbeat = setInterval(() => res.write(': still here\n\n'), HEARTBEAT_MS);
  res.on('close', () => {
    stop();
    clearInterval(heartbeat);
    release();
  });
}

/**
 * GET /events: the messages this process's services commit, live, as server-sent events (one
 * `data:` line of JSON each). `?type=A,B`, `?service=…` and `?correlation_id=…` (an order id)
 * narrow the stream. At most `maxStreams` at once; more are answered 503 with Retry-After.
 */
export function eventRoutes(maxStreams: number) {
  return async (app: FastifyInstance): Promise<void> => {
    const open = new Set<ServerResponse>();
    const limit = streamLimit(maxStreams);
    app.addHook('onClose', async () => {
      for (const res of open) res.end();
    });

    app.get<{ Querystring: Record<string, string | undefined> }>('/events', { schema: route({ access: 'operator', summary: 'The messages committed from now on, as server-sent events', tags: ['operations'], query: { type: 'message types, comma-separated', service: 'one service', correlation_id: 'one order' }, errors: ['unauthorized', 'forbidden', 'too-many-streams'] }) }, (request, reply) => {
      let release: () => void;
      try {
        release = limit.take();
      } catch (error) {
        void reply.header('retry-after', String(STREAMS_RETRY_AFTER_S));
        throw error;
      }
      reply.hijack();
      open.add(reply.raw);
      streamEvents(reply.raw, eventFilter(request.query), listen, 'the messages committed from now on', () => {
        open.delete(reply.raw);
        release();
      });
    });
  };
}
