import { ConflictError } from '../ports/store.ts';

const MAX_ATTEMPTS = 50;

export type Attempt<T> = Readonly<{ committed: true; result: T } | { committed: false }>;

/**
 * Runs a store transaction until it commits: an attempt that lost a race with another writer
 * says so and is run again on fresh data, after a short random pause; after 50 the store gives up.
 */
export async function untilCommitted<T>(service: string, attempt: () => Promise<Attempt<T>>): Promise<T> {
  for (let n = 1; ; n++) {
    const outcome = await attempt();
    if (outcome.committed) return outcome.result;
    if (n >= MAX_ATTEMPTS) throw new ConflictError(service, n);
    await sleep(Math.min(50, n * n) * Math.random());
  }
}

/**
 * Collects the ids of delivered outbox messages for a few milliseconds and drops them in one
 * call. A crash before the drop only means the messages are sent again (consumers deduplicate).
 */
export function deliveredBatcher(drop: (ids: string[]) => Promise<void>, ms = 20) {
  let pending: string[] = [];
  let flushing: Promise<void> | undefined;
  const flush = async () => {
    if (pending.length === 0) return;
    const ids = pending;
    pending = [];
    await drop(ids);
  };
  return {
    add(ids: readonly string[]): Promise<void> {
      for (const id of ids) pending.push(id);
      flushing ??= sleep(ms).then(() => {
        flushing = undefined;
        return flush();
      });
      return flushing;
    },
    /** Drops what is still pending (at close). */
    async drain(): Promise<void> {
      await flushing;
      await flush();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
