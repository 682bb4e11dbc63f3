/** The saga tracker: what it knows of each checkout saga, from the events alone. */
import type { SagaReply, SagaState } from '../../core/saga.ts';
import type { CheckoutContext } from '../order/order.ts';

/** One saga as the tracker has seen it: its state once it has seen the start, and events that came early. */
export type TrackedSaga = Readonly<{
  state?: SagaState<CheckoutContext>;
  early: readonly SagaReply[];
}>;

export const trackedKey = (sagaId: string) => `saga:${sagaId}`;
export const TRACKED_PREFIX = 'saga:';
