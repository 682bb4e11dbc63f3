import type { ApiCommand, Idempotency, Reply } from '../core/decider.ts';
import type { Envelope } from '../core/message.ts';
import type { Store } from './store.ts';

export type CommandOptions = Readonly<{
  /** The business transaction the messages the command sends belong to. */
  correlationId?: string;
  idempotency?: Idempotency | undefined;
}>;

/**
 * A running service as its HTTP API sees it (the runtime implements it): it runs the API's
 * commands `C`, its documents can be read, and it tells what each transaction committed.
 * Function properties, not methods, so that a route's command type is checked against the
 * service's, not compared both ways.
 */
export type Service<C extends ApiCommand> = Readonly<{
  name: string;
  store: Store;
  /** Runs a command; resolves with its reply once committed. */
  command: (command: C, options?: CommandOptions) => Promise<Reply | undefined>;
  /** Calls `listener` with the messages of every transaction once it committed. */
  onCommitted: (listener: (messages: readonly Envelope[]) => void) => void;
}>;
