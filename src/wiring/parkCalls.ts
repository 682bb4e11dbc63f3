import type { CallingBusOptions } from '../adapters/calls/bus.ts';
import { countDeadLetters } from '../observability/metrics.ts';
import { aboutMessage } from '../observability/tracing.ts';
import type { Store } from '../ports/store.ts';
import type { Logger } from '../runtime/log.ts';

/**
 * The synchronous style gives up on a command its participant failed ten times (about ten
 * seconds of the relay's retries) and keeps it in the order service's dead letters, with the
 * participant as its consumer, instead of calling it for ever.
 */
export function parkCalls(orders: Store, log: Logger): CallingBusOptions {
  return {
    maxFailures: 10,
    async park(participant, command, error) {
      log.error({ consumer: participant, ...aboutMessage(command), error }, 'saga call dead-lettered');
      await orders.deadLetter(command, participant, error);
      countDeadLetters(participant, command.type);
    },
  };
}
