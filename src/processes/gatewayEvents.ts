import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Listen } from '../http/events.ts';
import type { LiveEvent } from '../observability/events.ts';

type Listener = Parameters<Listen>[0];

/**
 * The live events of every replica, for the gateway's GET /events: one stream from each replica
 * (on a connection of its own, never one of the pools that forward requests), however many
 * clients listen, while at least one does; each client's stream filters what it wants here.
 * An upstream that goes away (a replica restarting) is followed again a second later.
 */
export function upstreamEvents(urls: readonly string[], headers: () => Record<string, string>): Readonly<{ listen: Listen; close(): Promise<void> }> {
  const pools = urls.map((url) => new Pool(url, { connections: 1, keepAliveTimeout: 30_000 }));
  const listeners = new Set<Listener>();
  let following: AbortController | undefined;

  const deliver = (events: readonly LiveEvent[]) => {
    for (const listener of listeners) listener(events);
  };

  async function follow(pool: Pool, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const upstream = await pool.request({ method: 'GET', path: '/events', headers: headers(), signal, headersTimeout: 10_000, bodyTimeout: 0 });
        if (upstream.statusCode !== 200) {
          await upstream.body.dump();
          throw new Error(`upstream /events answered ${upstream.statusCode}`);
        }
        let pending = '';
        for await (const chunk of upstream.body) {
          pending += String(chunk);
          const end = pending.lastIndexOf('\n\n');
          if (end === -1) continue;
          const events = eventsOf(pending.slice(0, end));
          pending = pending.slice(end + 2);
          if (events.length > 0) deliver(events);
        }
      } catch {
        // Gone (or aborted): follow it again shortly while someone listens.
      }
      await sleep(1_000, undefined, { signal }).catch(() => undefined);
    }
  }

  return {
    listen(listener) {
      listeners.add(listener);
      if (following === undefined) {
        following = new AbortController();
        for (const pool of pools) void follow(pool, following.signal);
      }
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) {
          following?.abort();
          following = undefined;
        }
      };
    },
    async close() {
      following?.abort();
      await Promise.all(pools.map((pool) => pool.destroy()));
    },
  };
}

/** The events of whole server-sent event blocks: `data:` lines of JSON (comments, `event: dropped` and anything unreadable left out). */
function eventsOf(text: string): LiveEvent[] {
  const events: LiveEvent[] = [];
  for (const block of text.split('\n\n')) {
    if (!block.startsWith('data: ')) continue;
    try {
      events.push(JSON.parse(block.slice(6)) as LiveEvent);
    } catch {
      // Not an event of ours: skipped.
    }
  }
  return events;
}
