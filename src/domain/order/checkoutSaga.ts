import type { SagaStyle } from '../../config.ts';
import { defineSaga, type SagaDefinition, type SagaPolicy } from '../../core/saga.ts';
import { PaymentCommands, PaymentReplies, type Charge } from '../payment/payment.ts';
import { StockCommands, StockReplies, type StockLines } from '../stock/stock.ts';
import type { CheckoutContext } from './order.ts';

const lines = (ctx: CheckoutContext): StockLines => ({ lines: ctx.lines });
const charge = (ctx: CheckoutContext): Charge => ({ userId: ctx.userId, amount: ctx.amount });

export const defaultCheckoutPolicy: SagaPolicy = { stepTimeoutMs: 10_000, maxAttempts: 2, backoffMs: [1_000, 5_000, 30_000] };

/** The checkout as a deployment of `style` runs it (choreography holds the money after the stock). */
export function checkoutSagaOf(style: SagaStyle, stepTimeoutMs = defaultCheckoutPolicy.stepTimeoutMs): SagaDefinition<CheckoutContext> {
  return checkoutSaga({ ...defaultCheckoutPolicy, stepTimeoutMs }, { sequential: style === 'choreography' });
}

/**
 * The course checkout: hold the stock and the money at once, then take both at once. Once
 * both are held (the pivot) nothing can fail any more, so capture and commit are only retried.
 * In choreography the money is held after the stock (`sequential`): nobody would be there to
 * wait for both holds before the taking starts.
 */
export function checkoutSaga(policy: SagaPolicy = defaultCheckoutPolicy, { sequential = false } = {}): SagaDefinition<CheckoutContext> {
  return defineSaga({
    name: 'checkout',
    pivot: 2,
    policy,
    steps: [
      {
        name: 'reserveStock',
        action: (ctx) => ({ type: StockCommands.reserve, payload: lines(ctx) }),
        success: StockReplies.reserved,
        failure: StockReplies.reservationFailed,
        compensation: { command: (ctx) => ({ type: StockCommands.release, payload: lines(ctx) }), done: StockReplies.released },
      },
      {
        name: 'authorizePayment',
        concurrent: !sequential,
        action: (ctx) => ({ type: PaymentCommands.authorize, payload: charge(ctx) }),
        success: PaymentReplies.authorized,
        failure: PaymentReplies.declined,
        compensation: { command: (ctx) => ({ type: PaymentCommands.void, payload: charge(ctx) }), done: PaymentReplies.voided },
      },
      {
        name: 'capturePayment',
        action: (ctx) => ({ type: PaymentCommands.capture, payload: charge(ctx) }),
        success: PaymentReplies.captured,
      },
      {
        name: 'commitStock',
        concurrent: true,
        action: (ctx) => ({ type: StockCommands.commit, payload: lines(ctx) }),
        success: StockReplies.committed,
      },
    ],
  });
}

/** Every reply type the checkout saga listens to. */
export function sagaReplyTypes(def: SagaDefinition<CheckoutContext>): string[] {
  const types = def.steps.flatMap((s) => [s.success, s.failure, s.compensation?.done]);
  return [...new Set(types.filter((t): t is string => t !== undefined))];
}

/** Who performs each step of the checkout (choreography: who reacts). */
export function checkoutParticipant(step: string): 'stock' | 'payment' {
  switch (step) {
    case 'reserveStock':
    case 'commitStock':
      return 'stock';
    case 'authorizePayment':
    case 'capturePayment':
      return 'payment';
    default:
      throw new Error(`The checkout has no step ${step}`);
  }
}
