import type { Decider } from '../../core/decider.ts';
import { abortSaga, definitionFor, onReply, onTimer, replyOf, SAGA_TIMER, type SagaVersions } from '../../core/saga.ts';
import { FulfillmentEvents } from '../fulfillment/fulfillment.ts';
import { sagaReplyTypes } from './checkoutSaga.ts';
import { attemptOf, onOrderMessage, orderCommands, parseOrderMessage, type OrderOptions } from './businessLogic.ts';
import { orderKey, RESERVATION_EXPIRED, type CheckoutContext, type OrderApiCommand, type OrderMessage } from './order.ts';

/**
 * The order service when it commands its checkouts (orchestration, and the synchronous style,
 * where the commands travel over HTTP): it sends each step's command, and its saga's state
 * machine moves on with the replies and the timer. Each saga runs under the definition it
 * started with. Replies and timers of an older attempt match nothing.
 */
export function orchestratedOrders(versions: SagaVersions<CheckoutContext>, options: OrderOptions): Decider<OrderMessage, OrderApiCommand> {
  return {
    consumes: [...sagaReplyTypes(versions), SAGA_TIMER, RESERVATION_EXPIRED, FulfillmentEvents.scanned],
    parse: parseOrderMessage,
    keys: (message) => [orderKey(message.correlationId)],

    decide(message, read, now) {
      const attempt = attemptOf(message, read);
      if (!attempt) return {};
      const saga = definitionFor(versions, attempt.state);
      return onOrderMessage(attempt, message, now, (order, state) => {
        const transition = message.type === SAGA_TIMER
          ? onTimer(saga, state, message.id, message.payload.seq, now)
          : onReply(saga, state, replyOf(message), now);
        return transition && { order: { ...order, checkout: transition.state }, send: transition.send, cancel: transition.cancel };
      }, (order, state, reason) => {
        const aborted = abortSaga(saga, state, reason, now);
        return aborted && { order: { ...order, checkout: aborted.state }, send: aborted.send };
      });
    },

    // The started saga's commands and timer go out as they are, and so do an abort's.
    api: orderCommands(versions, { start: (started) => started.send, abort: (aborted) => aborted.send }, options),
  };
}
