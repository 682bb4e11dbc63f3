import { countDeadLetters } from '../observability/metrics.ts';
import { deadLetterId, type DeadLetter, type DeadLetterShelf } from '../ports/deadLetters.ts';
import { aboutMessage } from '../observability/tracing.ts';
import type { Logger } from '../ports/log.ts';
import type { KeptLetter, Store } from '../ports/store.ts';

/**
 * The dead letters of the buses that keep nothing themselves (in-process, synchronous calls),
 * kept in a service's store: the consumer's own (in-process), or the order service's, which
 * makes the calls (synchronous). Keeping one logs it and counts it.
 */
export function storeShelf(storeOf: (consumer: string) => Store | undefined, log: Logger): DeadLetterShelf {
  const of = (consumer: string) => {
    const store = storeOf(consumer);
    if (!store) throw new Error(`No store keeps the dead letters of ${consumer}`);
    return store;
  };
  const letter = (kept: KeptLetter): DeadLetter => ({
    id: deadLetterId(kept.consumer, kept.message.id), consumer: kept.consumer, reason: kept.error, at: kept.at, messages: [kept.message],
  });
  return {
    async keep(consumer, message, reason) {
      log.error({ consumer, ...aboutMessage(message), error: reason }, 'message dead-lettered');
      await of(consumer).deadLetter(message, consumer, reason);
      countDeadLetters(consumer, message.type);
    },
    list: async (consumer, max) => (storeOf(consumer) ? (await of(consumer).deadLetters(consumer, max)).map(letter) : []),
    async get(consumer, local) {
      const [kept] = storeOf(consumer) ? await of(consumer).deadLetters(consumer, 1, local) : [];
      return kept && letter(kept);
    },
    remove: async (consumer, local) => (storeOf(consumer) ? of(consumer).dropDeadLetter(consumer, local) : false),
  };
}
