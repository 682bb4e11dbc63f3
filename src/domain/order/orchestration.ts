import type { Decider } from '../../core/decider.ts';
import { onReply, onTimer, replyOf, SAGA_TIMER, type SagaDefinition } from '../../core/saga.ts';
import { sagaReplyTypes } from './checkoutSaga.ts';
import { attemptOf, orderCommands, outcomeEvents, parseOrderMessage } from './businessLogic.ts';
import { orderKey, type CheckoutContext, type Order, type OrderApiCommand, type OrderMessage } from './order.ts';

/**
 * The order service when it commands its checkouts (orchestration, and the synchronous style,
 * where the commands travel over HTTP): it sends each step's command, and its saga's state
 * machine moves on with the replies and the timer. Replies and timers of an older attempt
 * match nothing.
 */
export function orchestratedOrders(saga: SagaDefinition<CheckoutContext>): Decider<OrderMessage, OrderApiCommand> {
  return {
    consumes: [...sagaReplyTypes(saga), SAGA_TIMER],
    parse: parseOrderMessage,
    keys: (message) => [orderKey(message.correlationId)],

    decide(message, read, now) {
      const attempt = attemptOf(message, read);
      if (!attempt) return {};
      const { key, order, state } = attempt;
      const transition = message.type === SAGA_TIMER
        ? onTimer(saga, state, message.id, message.payload.seq, now)
        : onReply(saga, state, replyOf(message), now);
      if (!transition) return {};
      const next: Order = { ...order, checkout: transition.state };
      return { writes: { [key]: next }, send: [...transition.send, ...outcomeEvents(transition.outcome)], cancel: transition.cancel };
    },

    // The started saga's commands and timer go out as they are.
    api: orderCommands(saga, (started) => started.send),
  };
}
