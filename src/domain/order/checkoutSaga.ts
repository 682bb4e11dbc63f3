import type { SagaStyle } from '../../config.ts';
import { assertNever } from '../../core/decider.ts';
import { defineSaga, sagaVersions, type SagaDefinition, type SagaPolicy, type SagaVersions } from '../../core/saga.ts';
import { FulfillmentCommands, FulfillmentReplies, type ShipmentRequest } from '../fulfillment/fulfillment.ts';
import { PaymentCommands, PaymentReplies, type Charge } from '../payment/payment.ts';
import { StockCommands, StockReplies, type StockLines } from '../stock/stock.ts';
import { CheckoutSteps, isCheckoutStep, type CheckoutContext, type CheckoutStep } from './order.ts';

const lines = (ctx: CheckoutContext): StockLines => ({ lines: ctx.lines });
const charge = (ctx: CheckoutContext): Charge => ({ userId: ctx.userId, amount: ctx.amount });
const shipment = (ctx: CheckoutContext): ShipmentRequest => ({ orderId: ctx.orderId, userId: ctx.userId, lines: ctx.lines });

export const defaultCheckoutPolicy: SagaPolicy = { stepTimeoutMs: 10_000, maxAttempts: 2, backoffMs: [1_000, 5_000, 30_000] };

/** The versions of the checkout a build knows: 1, the course's (take stock and money); 2, the whole lifecycle. */
export const CHECKOUT_VERSIONS = [1, 2] as const;
export type CheckoutVersion = (typeof CHECKOUT_VERSIONS)[number];

/**
 * The checkout's definitions as a deployment of `style` runs them (choreography holds the money
 * after the stock): new checkouts start under `current`, the others finish under their own.
 */
export function checkoutSagasOf(style: SagaStyle, stepTimeoutMs = defaultCheckoutPolicy.stepTimeoutMs, current: CheckoutVersion = 2): SagaVersions<CheckoutContext> {
  const policy = { ...defaultCheckoutPolicy, stepTimeoutMs };
  const options = { sequential: style === 'choreography' };
  const all = [checkoutSaga(policy, options), lifecycleSaga(policy, options)];
  const chosen = all.find((d) => d.version === current);
  if (!chosen) throw new Error(`The checkout has no version ${current}`);
  return sagaVersions(chosen, all);
}

/** The current checkout as a deployment of `style` runs it. */
export function checkoutSagaOf(style: SagaStyle, stepTimeoutMs = defaultCheckoutPolicy.stepTimeoutMs, current: CheckoutVersion = 2): SagaDefinition<CheckoutContext> {
  return checkoutSagasOf(style, stepTimeoutMs, current).current;
}

/**
 * The whole order lifecycle (version 2, docs/lifecycle.md): hold the stock and the money at
 * once, take the money (PAID), check it for fraud, then take the stock (CONFIRMED: the pivot,
 * nothing can fail after it) and ship (SHIPPED). A failure before the pivot undoes what was done,
 * latest first: give the money back, drop the hold, release the stock. The customer or the
 * reservation's time to live may abort it until it has shipped: then every step is undone,
 * the shipment cancelled and the stock released even when it was already taken.
 */
export function lifecycleSaga(policy: SagaPolicy = defaultCheckoutPolicy, { sequential = false } = {}): SagaDefinition<CheckoutContext> {
  const [reserve, authorize] = checkoutSaga(policy, { sequential }).steps;
  if (!reserve || !authorize) throw new Error('The course checkout lost its first steps');
  return defineSaga({
    name: 'checkout',
    version: 2,
    pivot: 4,
    cancellableUntil: 6,
    policy,
    steps: [
      reserve,
      authorize,
      {
        name: CheckoutSteps.capturePayment,
        action: (ctx) => ({ type: PaymentCommands.capture, payload: charge(ctx) }),
        success: PaymentReplies.captured,
        compensation: { command: (ctx) => ({ type: PaymentCommands.refund, payload: charge(ctx) }), done: PaymentReplies.refunded },
      },
      {
        name: CheckoutSteps.checkFraud,
        action: (ctx) => ({ type: PaymentCommands.checkFraud, payload: charge(ctx) }),
        success: PaymentReplies.fraudPassed,
        failure: PaymentReplies.fraudFailed,
      },
      {
        name: CheckoutSteps.commitStock,
        action: (ctx) => ({ type: StockCommands.commit, payload: lines(ctx) }),
        success: StockReplies.committed,
      },
      {
        name: CheckoutSteps.createShipment,
        action: (ctx) => ({ type: FulfillmentCommands.create, payload: shipment(ctx) }),
        success: FulfillmentReplies.created,
        compensation: { command: (ctx) => ({ type: FulfillmentCommands.cancel, payload: shipment(ctx) }), done: FulfillmentReplies.cancelled },
      },
    ],
  });
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
    version: 1,
    pivot: 2,
    policy,
    steps: [
      {
        name: CheckoutSteps.reserveStock,
        action: (ctx) => ({ type: StockCommands.reserve, payload: lines(ctx) }),
        success: StockReplies.reserved,
        failure: StockReplies.reservationFailed,
        compensation: { command: (ctx) => ({ type: StockCommands.release, payload: lines(ctx) }), done: StockReplies.released },
      },
      {
        name: CheckoutSteps.authorizePayment,
        concurrent: !sequential,
        action: (ctx) => ({ type: PaymentCommands.authorize, payload: charge(ctx) }),
        success: PaymentReplies.authorized,
        failure: PaymentReplies.declined,
        compensation: { command: (ctx) => ({ type: PaymentCommands.void, payload: charge(ctx) }), done: PaymentReplies.voided },
      },
      {
        name: CheckoutSteps.capturePayment,
        action: (ctx) => ({ type: PaymentCommands.capture, payload: charge(ctx) }),
        success: PaymentReplies.captured,
      },
      {
        name: CheckoutSteps.commitStock,
        concurrent: true,
        action: (ctx) => ({ type: StockCommands.commit, payload: lines(ctx) }),
        success: StockReplies.committed,
      },
    ],
  });
}

/** Every reply type the checkout saga listens to, in any of its versions. */
export function sagaReplyTypes(defs: SagaDefinition<CheckoutContext> | SagaVersions<CheckoutContext>): string[] {
  const all = 'all' in defs ? defs.all : [defs];
  const types = all.flatMap((def) => def.steps.flatMap((s) => [s.success, s.failure, s.compensation?.done]));
  return [...new Set(types.filter((t): t is string => t !== undefined))];
}

export type Participant = 'stock' | 'payment' | 'fulfillment';

/** Who performs each step of the checkout (choreography: who reacts). */
export function checkoutParticipant(step: string): Participant {
  if (!isCheckoutStep(step)) throw new Error(`The checkout has no step ${step}`);
  return participantOf(step);
}

function participantOf(step: CheckoutStep): Participant {
  switch (step) {
    case CheckoutSteps.reserveStock:
    case CheckoutSteps.commitStock:
      return 'stock';
    case CheckoutSteps.authorizePayment:
    case CheckoutSteps.capturePayment:
    case CheckoutSteps.checkFraud:
      return 'payment';
    case CheckoutSteps.createShipment:
      return 'fulfillment';
    default:
      return assertNever(step);
  }
}
