import type { CallingBusOptions } from '../adapters/calls/bus.ts';
import type { Store } from '../ports/store.ts';
import type { Logger } from '../runtime/log.ts';
import { storeShelf } from './deadLetterShelf.ts';

/**
 * The synchronous style gives up on a command its participant failed ten times (about ten
 * seconds of the relay's retries) and keeps it in the order service's dead letters, with the
 * participant as its consumer, instead of calling it for ever. Redriven, it is called again
 * (with ten more tries); once its participant answered, the dead letter is forgotten.
 */
export function parkCalls(orders: Store, log: Logger): CallingBusOptions {
  return { maxFailures: 10, shelf: storeShelf(() => orders, log) };
}
