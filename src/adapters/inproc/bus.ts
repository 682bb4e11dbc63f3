import type { Envelope } from '../../core/message.ts';
import { Undeliverable, type Bus, type Handler } from '../../ports/bus.ts';
import { splitDeadLetterId, type DeadLetterShelf } from '../../ports/deadLetters.ts';

export type InProcessBusOptions = Readonly<{
  maxDeliveries: number;
  /** Delay before redelivery n (1-based); the last value repeats. */
  backoffMs: readonly number[];
  /** Keeps what failed `maxDeliveries` times (or was `Undeliverable`): the consumers' stores. */
  shelf: DeadLetterShelf;
  onError?: (consumer: string, message: Envelope, error: unknown, delivery: number) => void;
}>;

/**
 * The embedded bus: delivers to the consumers in this process. It keeps nothing itself:
 * `publish` resolves only once every subscribed consumer has committed the message, and
 * the relay deletes the message from the sender's outbox only then, so a crash at any point
 * leaves the message in the outbox to be delivered again at start-up. Its dead letters are on
 * the shelf (the consumer's store); one redriven is forgotten only once its consumer committed it.
 */
export function inProcessBus(options: InProcessBusOptions): Bus {
  const routes = new Map<string, { consumer: string; handler: Handler }[]>();
  const consumers = new Set<string>();
  let closed = false;

  /** Resolves true once consumed, false once dead-lettered. */
  async function deliver(consumer: string, handler: Handler, message: Envelope): Promise<boolean> {
    for (let delivery = 1; ; delivery++) {
      if (closed) throw new Error('The bus is closed');
      try {
        await handler(message);
        return true;
      } catch (error) {
        options.onError?.(consumer, message, error, delivery);
        if (delivery >= options.maxDeliveries || error instanceof Undeliverable) {
          await options.shelf.keep(consumer, message, error instanceof Error ? error.message : String(error));
          return false;
        }
        const backoff = options.backoffMs[Math.min(delivery - 1, options.backoffMs.length - 1)] ?? 0;
        await new Promise((resolve) => setTimeout(resolve, backoff));
      }
    }
  }

  const mine = (id: string) => {
    const split = splitDeadLetterId(id);
    return split && consumers.has(split.consumer) ? split : undefined;
  };

  return {
    async publish(messages) {
      const deliveries: Promise<boolean>[] = [];
      for (const message of messages) {
        for (const { consumer, handler } of routes.get(message.type) ?? []) deliveries.push(deliver(consumer, handler, message));
      }
      await Promise.all(deliveries);
    },
    async subscribe(consumer, types, handler) {
      for (const type of types) {
        const list = routes.get(type) ?? [];
        if (list.some((r) => r.consumer === consumer)) throw new Error(`${consumer} already subscribes to ${type}`);
        routes.set(type, [...list, { consumer, handler }]);
      }
      consumers.add(consumer);
    },
    deadLetters: {
      async list(max) {
        return (await Promise.all([...consumers].map((consumer) => options.shelf.list(consumer, max)))).flat();
      },
      get: async (id) => {
        const split = mine(id);
        return split && options.shelf.get(split.consumer, split.local);
      },
      async redrive(id) {
        const split = mine(id);
        const letter = split && (await options.shelf.get(split.consumer, split.local));
        if (!split || !letter) return false;
        for (const message of letter.messages) {
          const route = routes.get(message.type)?.find((r) => r.consumer === split.consumer);
          if (!route) continue;
          // In the background, with the usual retries: kept again (with the new reason) if it fails again.
          void deliver(split.consumer, route.handler, message).then(
            (consumed) => consumed && options.shelf.remove(split.consumer, split.local),
            () => undefined, // closed meanwhile: it stays a dead letter
          );
        }
        return true;
      },
      discard: async (id) => {
        const split = mine(id);
        return split !== undefined && options.shelf.remove(split.consumer, split.local);
      },
    },
    connected: () => !closed,
    // Nothing to keep: every consumer of the process subscribes before any message is published.
    declare: async () => {},
    async close() {
      closed = true;
    },
  };
}
