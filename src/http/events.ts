import type { FastifyInstance } from 'fastify';
import type { ServerResponse } from 'node:http';
import { listen, type LiveEvent } from '../observability/events.ts';
import { route } from './openapi.ts';

/** Past this much unsent data to a slow client, events are dropped (and counted) rather than kept. */
const MAX_BUFFERED = 1024 * 1024;
const HEARTBEAT_MS = 15_000;

/**
 * GET /events: the messages this process's services commit, live, as server-sent events (one
 * `data:` line of JSON each). `?type=A,B`, `?service=…` and `?correlation_id=…` (an order id)
 * narrow the stream. A client too slow to keep up gets `event: dropped` with how many it missed.
 */
export async function eventRoutes(app: FastifyInstance): Promise<void> {
  const open = new Set<ServerResponse>();
  app.addHook('onClose', async () => {
    for (const res of open) res.end();
  });

  app.get<{ Querystring: Record<string, string | undefined> }>('/events', { schema: route({ summary: 'The messages committed from now on, as server-sent events', tags: ['operations'], query: { type: 'message types, comma-separated', service: 'one service', correlation_id: 'one order' } }) }, (request, reply) => {
    const types = request.query.type?.split(',').filter(Boolean);
    const { service, correlation_id: correlationId } = request.query;
    const wanted = (e: LiveEvent) => (!types || types.includes(e.type)) && (!service || e.service === service) && (!correlationId || e.correlation_id === correlationId);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': the messages committed from now on\n\n');
    open.add(res);
    let dropped = 0;
    const stop = listen((events) => {
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
      res.write(chosen.map((e) => `data: ${JSON.stringify(e)}\n\n`).join(''));
    });
    const heartbeat = setInterval(() => res.write(': still here\n\n'), HEARTBEAT_MS);
    res.on('close', () => {
      stop();
      clearInterval(heartbeat);
      open.delete(res);
    });
  });
}
