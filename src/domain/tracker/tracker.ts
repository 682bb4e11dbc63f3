/** The saga tracker: what it knows of each checkout saga, from the events alone. */
import type { SagaReply, SagaState } from '../../core/saga.ts';
import { readDoc, scanAll, type Store } from '../../ports/store.ts';
import type { CheckoutContext } from '../order/order.ts';

/** One saga as the tracker has seen it: its state once it has seen the start, and events that came early. */
export type TrackedSaga = Readonly<{
  state?: SagaState<CheckoutContext>;
  early: readonly SagaReply[];
  /** Once started: every event of the saga (its owner's aborts aside), in the order they came. */
  events?: readonly SagaReply[];
}>;

/** Where the saga API reads the sagas: the tracker's store (choreography) or the orders (the other styles). */
export type SagaSource = Readonly<{
  /** Every saga after the saga `after` ('' from the start), in a stable order; undefined for one whose start was not seen yet. */
  list(after: string): AsyncIterable<SagaState<CheckoutContext> | undefined>;
  get(sagaId: string): Promise<Readonly<{ saga: SagaState<CheckoutContext>; early: readonly SagaReply[] }> | undefined>;
}>;

export const trackedKey = (sagaId: string) => `saga:${sagaId}`;
export const TRACKED_PREFIX = 'saga:';

/** The sagas the tracker keeps, for the saga API. */
export function trackedSagas(store: Store): SagaSource {
  return {
    async *list(after) {
      for await (const [, tracked] of scanAll<TrackedSaga>(store, TRACKED_PREFIX, after === '' ? '' : trackedKey(after))) yield tracked.state;
    },
    async get(sagaId) {
      const tracked = await readDoc<TrackedSaga>(store, trackedKey(sagaId));
      return tracked?.state ? { saga: tracked.state, early: tracked.early } : undefined;
    },
  };
}
