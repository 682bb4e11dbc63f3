/** Orders: what the customer buys, and the state of its checkout saga. */
import { assertNever } from '../../core/decider.ts';
import { isNonEmptyString, isRecord, type Check, type Checks } from '../../core/parse.ts';
import { SAGA_TIMER, sagaTimerCheck, type SagaReply, type SagaState, type SagaTimer } from '../../core/saga.ts';
import { paymentReplyChecks, type PaymentReply } from '../payment/payment.ts';
import { stockLinesCheck, stockReplyChecks, type Line, type StockReply } from '../stock/stock.ts';

export type CheckoutContext = Readonly<{ orderId: string; userId: string; lines: readonly Line[]; amount: number }>;

/** What is wrong with a checkout context from outside (a choreography's events carry it), if anything. */
export const checkoutContextCheck: Check = (ctx) => {
  if (!isRecord(ctx)) return 'the checkout context must be an object';
  if (!isNonEmptyString(ctx.orderId) || !isNonEmptyString(ctx.userId)) return 'orderId and userId must be ids';
  if (!Number.isSafeInteger(ctx.amount) || Number(ctx.amount) < 0) return 'amount must be a whole number of at least 0';
  return stockLinesCheck(ctx);
};

export type Order = Readonly<{
  userId: string;
  lines: readonly Line[];
  totalCost: number;
  /** Checkout attempts so far. */
  attempts: number;
  /** The latest checkout attempt. */
  checkout?: SagaState<CheckoutContext>;
  /** The attempts before it, oldest first: each failed (a paid order starts no other), kept for the saga API. */
  failed?: readonly FailedCheckout[];
  /** Choreography: events of the checkout that came before the ones they follow. */
  early?: readonly SagaReply[];
}>;

export type FailedCheckout = Extract<SagaState<CheckoutContext>, { status: 'failed' }>;

/** Every checkout attempt of an order, in saga id order. */
export function checkoutsOf(order: Order): SagaState<CheckoutContext>[] {
  const all: SagaState<CheckoutContext>[] = [...(order.failed ?? []), ...(order.checkout ? [order.checkout] : [])];
  return all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The checkout's steps, named once: the saga definition, the order's status and the
 * choreography's participants all use these.
 */
export const CheckoutSteps = {
  reserveStock: 'reserveStock',
  authorizePayment: 'authorizePayment',
  capturePayment: 'capturePayment',
  commitStock: 'commitStock',
} as const;
export type CheckoutStep = (typeof CheckoutSteps)[keyof typeof CheckoutSteps];

export function isCheckoutStep(step: string): step is CheckoutStep {
  return (Object.values(CheckoutSteps) as string[]).includes(step);
}

/**
 * What the order service consumes: the participants' replies (in choreography, their events,
 * which carry the same payloads plus the context) and its saga's timers.
 */
export type OrderMessage = StockReply | PaymentReply | SagaTimer;
export const orderMessageChecks: Checks<OrderMessage> = { ...stockReplyChecks, ...paymentReplyChecks, [SAGA_TIMER]: sagaTimerCheck };

export type OrderStatus = 'CREATED' | 'RESERVED' | 'PAYMENT_PENDING' | 'PAID' | 'CONFIRMED' | 'FAILED';

export const ORDER_PREFIX = 'order:';
export const orderKey = (orderId: string) => `${ORDER_PREFIX}${orderId}`;

/** A checkout attempt's saga id: its order's id, a dot, and a unique part (order ids have no dots). */
export const checkoutSagaId = (orderId: string, unique: string) => `${orderId}.${unique}`;
export const orderIdOf = (sagaId: string) => sagaId.slice(0, Math.max(0, sagaId.indexOf('.')));

/** Events the order service publishes about checkouts (`requested` only in choreography). */
export const OrderEvents = { requested: 'CheckoutRequested', completed: 'CheckoutCompleted', failed: 'CheckoutFailed' } as const;
export type CheckoutFailed = Readonly<{ reason: string }>;

export type OrderApiCommand =
  | Readonly<{ type: 'CreateOrder'; orderId: string; userId: string }>
  | Readonly<{ type: 'AddItem'; orderId: string; itemId: string; quantity: number; price: number }>
  /** `sagaId` names the attempt this request would start: unique, made at the edge. */
  | Readonly<{ type: 'Checkout'; orderId: string; sagaId: string }>
  | Readonly<{ type: 'InitOrders'; count: number; items: number; users: number; price: number; seed: number }>;

/** The order's place in the lifecycle, derived from its checkout saga. */
export function orderStatus(order: Order): OrderStatus {
  const saga = order.checkout;
  if (!saga) return 'CREATED';
  switch (saga.status) {
    case 'completed':
      return 'CONFIRMED';
    case 'failed':
      return 'FAILED';
    case 'running':
    case 'compensating': {
      const done = new Set(saga.history.filter((e) => e.event === 'succeeded').map((e) => e.step));
      if (done.has(CheckoutSteps.capturePayment)) return 'PAID';
      if (!done.has(CheckoutSteps.reserveStock)) return 'CREATED';
      return done.has(CheckoutSteps.authorizePayment) ? 'PAYMENT_PENDING' : 'RESERVED';
    }
    default:
      return assertNever(saga);
  }
}

export const isPaid = (order: Order) => order.checkout?.status === 'completed';
