import type { Envelope } from '../../core/message.ts';
import type { Bus, Handler } from '../../ports/bus.ts';

export type InProcessBusOptions = Readonly<{
  maxDeliveries: number;
  /** Delay before redelivery n (1-based); the last value repeats. */
  backoffMs: readonly number[];
  /** Keeps a message that failed `maxDeliveries` times. */
  deadLetter: (consumer: string, message: Envelope, error: string) => Promise<void>;
  onError?: (consumer: string, message: Envelope, error: unknown, delivery: number) => void;
}>;

/**
 * The embedded bus: delivers to the consumers in this process. It keeps nothing itself:
 * `publish` resolves only once every subscribed consumer has committed the message, and
 * the relay deletes the message from the sender's outbox only then, so a crash at any point
 * leaves the message in the outbox to be delivered again at start-up.
 */
export function inProcessBus(options: InProcessBusOptions): Bus {
  const routes = new Map<string, { consumer: string; handler: Handler }[]>();
  let closed = false;

  async function deliver(consumer: string, handler: Handler, message: Envelope): Promise<void> {
    for (let delivery = 1; ; delivery++) {
      if (closed) throw new Error('The bus is closed');
      try {
        await handler(message);
        return;
      } catch (error) {
        options.onError?.(consumer, message, error, delivery);
        if (delivery >= options.maxDeliveries) {
          await options.deadLetter(consumer, message, error instanceof Error ? error.message : String(error));
          return;
        }
        const backoff = options.backoffMs[Math.min(delivery - 1, options.backoffMs.length - 1)] ?? 0;
        await new Promise((resolve) => setTimeout(resolve, backoff));
      }
    }
  }

  return {
    async publish(messages) {
      const deliveries: Promise<void>[] = [];
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
    },
    connected: () => !closed,
    // Nothing to keep: every consumer of the process subscribes before any message is published.
    declare: async () => {},
    async close() {
      closed = true;
    },
  };
}
