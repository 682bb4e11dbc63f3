/** Orders: what the customer buys, and the state of its checkout saga. */
import { assertNever } from '../../core/decider.ts';
import type { Message } from '../../core/message.ts';
import { anyObject, isNonEmptyString, isRecord, type Check, type Checks } from '../../core/parse.ts';
import { SAGA_TIMER, sagaTimerCheck, type SagaReply, type SagaState, type SagaTimer } from '../../core/saga.ts';
import {
  FulfillmentEvents, fulfillmentReplyChecks, shipmentScannedCheck,
  type FulfillmentReply, type ShipmentCreated, type ShipmentScanned, type ShipmentStatus,
} from '../fulfillment/fulfillment.ts';
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
  /** Set once the customer or the clock cancelled the order (`sagaId`: the attempt it stopped, if one ran). */
  cancelled?: Cancellation;
  /** The reservation's time to live while it runs: the outbox id of its timer. */
  ttl?: string;
  /** The shipment, once fulfillment made it. */
  shipment?: OrderShipment;
}>;

export type Cancellation = Readonly<{ by: 'customer' | 'timeout'; reason: string; at: number; sagaId?: string }>;
export type OrderShipment = ShipmentCreated & Readonly<{ status: ShipmentStatus }>;

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
  checkFraud: 'checkFraud',
  commitStock: 'commitStock',
  createShipment: 'createShipment',
} as const;
export type CheckoutStep = (typeof CheckoutSteps)[keyof typeof CheckoutSteps];

export function isCheckoutStep(step: string): step is CheckoutStep {
  return (Object.values(CheckoutSteps) as string[]).includes(step);
}

/** The timer of a reservation's time to live: when it fires before the payment was taken, the order is cancelled. */
export const RESERVATION_EXPIRED = 'ReservationExpired';
export type ReservationExpired = Message<typeof RESERVATION_EXPIRED, Readonly<Record<string, never>>>;

/**
 * What the order service consumes: the participants' replies (in choreography, their events,
 * which carry the same payloads plus the context), its saga's timers, the reservation's time to
 * live, and fulfillment's carrier scans.
 */
export type OrderMessage = StockReply | PaymentReply | FulfillmentReply | SagaTimer | ReservationExpired | Message<typeof FulfillmentEvents.scanned, ShipmentScanned>;
export const orderMessageChecks: Checks<OrderMessage> = {
  ...stockReplyChecks, ...paymentReplyChecks, ...fulfillmentReplyChecks,
  [SAGA_TIMER]: sagaTimerCheck, [RESERVATION_EXPIRED]: anyObject, [FulfillmentEvents.scanned]: shipmentScannedCheck,
};

/** The order's lifecycle (docs/lifecycle.md): the states in order, then the two exits. */
export const ORDER_STATUSES = ['CREATED', 'RESERVED', 'PAYMENT_PENDING', 'PAID', 'CONFIRMED', 'SHIPPED', 'IN_TRANSIT', 'DELIVERED', 'FAILED', 'CANCELLED'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

export const ORDER_PREFIX = 'order:';
export const orderKey = (orderId: string) => `${ORDER_PREFIX}${orderId}`;

/** A checkout attempt's saga id: its order's id, a dot, and a unique part (order ids have no dots). */
export const checkoutSagaId = (orderId: string, unique: string) => `${orderId}.${unique}`;
export const orderIdOf = (sagaId: string) => sagaId.slice(0, Math.max(0, sagaId.indexOf('.')));

/**
 * Events the order service publishes: a checkout's saga requested (choreography only), aborted
 * (choreography only: the participants undo their steps), completed; and the order's
 * lifecycle, which the customer hears of (notification).
 */
export const OrderEvents = {
  requested: 'CheckoutRequested',
  aborted: 'CheckoutCancelled',
  completed: 'CheckoutCompleted',
  confirmed: 'OrderConfirmed',
  failed: 'CheckoutFailed',
  cancelled: 'OrderCancelled',
  refunded: 'OrderRefunded',
  shipped: 'OrderShipped',
} as const;

/** Payload of every lifecycle event: whose order, and what it is about. */
export type LifecycleEvent = Readonly<{
  orderId: string;
  userId: string;
  amount: number;
  /** Why it failed or was cancelled. */
  reason?: string;
  /** The shipment's, when shipped. */
  trackingNumber?: string;
}>;

export const lifecycleEventCheck: Check = (payload) => {
  if (!isRecord(payload)) return 'the payload must be an object';
  if (!isNonEmptyString(payload.orderId) || !isNonEmptyString(payload.userId)) return 'orderId and userId must be ids';
  if (!Number.isSafeInteger(payload.amount)) return 'amount must be a whole number';
  if (payload.reason !== undefined && typeof payload.reason !== 'string') return 'reason must be a string';
  if (payload.trackingNumber !== undefined && typeof payload.trackingNumber !== 'string') return 'trackingNumber must be a string';
  return undefined;
};

/** An item of an order, priced when it was added. */
export type PricedLine = Readonly<{ itemId: string; quantity: number; price: number }>;

export type OrderApiCommand =
  | Readonly<{ type: 'CreateOrder'; orderId: string; userId: string; items?: readonly PricedLine[] }>
  /** Cancel by the customer: any time before the order ships. */
  | Readonly<{ type: 'Cancel'; orderId: string; reason: string }>
  | Readonly<{ type: 'AddItem'; orderId: string; itemId: string; quantity: number; price: number }>
  /** `sagaId` names the attempt this request would start: unique, made at the edge. */
  | Readonly<{ type: 'Checkout'; orderId: string; sagaId: string }>
  | Readonly<{ type: 'InitOrders'; count: number; items: number; users: number; price: number; seed: number }>;

/** The states a checkout goes through, each reached once its step and every one before it succeeded. */
const reachedBy: readonly (readonly [CheckoutStep, OrderStatus])[] = [
  [CheckoutSteps.reserveStock, 'RESERVED'],
  [CheckoutSteps.authorizePayment, 'PAYMENT_PENDING'],
  [CheckoutSteps.capturePayment, 'PAID'],
  [CheckoutSteps.commitStock, 'CONFIRMED'],
  [CheckoutSteps.createShipment, 'SHIPPED'],
];

/**
 * The order's place in the lifecycle, derived from its latest checkout saga, its shipment and
 * its cancellation. A saga undoing its steps already shows where it will end: FAILED (the
 * customer could not buy) or CANCELLED (the customer or the clock stopped it).
 */
export function orderStatus(order: Order): OrderStatus {
  const saga = order.checkout;
  const cancelled = order.cancelled !== undefined && order.cancelled.sagaId === saga?.id;
  if (!saga) return cancelled ? 'CANCELLED' : 'CREATED';
  switch (saga.status) {
    case 'failed':
    case 'compensating':
      return cancelled ? 'CANCELLED' : 'FAILED';
    case 'running':
    case 'completed': {
      if (order.shipment?.status === 'delivered') return 'DELIVERED';
      if (order.shipment?.status === 'picked_up' || order.shipment?.status === 'in_transit') return 'IN_TRANSIT';
      const done = new Set(saga.history.filter((e) => e.event === 'succeeded').map((e) => e.step));
      let status: OrderStatus = 'CREATED';
      for (const [step, reached] of reachedBy) {
        if (!done.has(step)) break;
        status = reached;
      }
      return status;
    }
    default:
      return assertNever(saga);
  }
}

/** Paid and confirmed: the money and the stock are taken (a course checkout answers 2xx from here on). */
export const isPaid = (order: Order) => PAID.has(orderStatus(order));
/** The states of an order paid and confirmed, and of one shipped. */
export const PAID: ReadonlySet<OrderStatus> = new Set(['CONFIRMED', 'SHIPPED', 'IN_TRANSIT', 'DELIVERED']);
export const SHIPPED: ReadonlySet<OrderStatus> = new Set(['SHIPPED', 'IN_TRANSIT', 'DELIVERED']);

/** Whether a step of the saga succeeded. */
export const succeeded = (saga: SagaState<CheckoutContext>, step: CheckoutStep) => saga.history.some((e) => e.step === step && e.event === 'succeeded');

/** What a saga moved: the money held, taken and given back (the fraud check and a cancel give it back). */
export function amountsOf(order: Order): Readonly<{ authorized: number; captured: number; refunded: number }> {
  const saga = order.checkout;
  if (!saga) return { authorized: 0, captured: 0, refunded: 0 };
  const amount = saga.ctx.amount;
  const captured = succeeded(saga, CheckoutSteps.capturePayment);
  const refunded = captured && saga.history.some((e) => e.step === CheckoutSteps.capturePayment && e.event === 'compensated');
  return { authorized: succeeded(saga, CheckoutSteps.authorizePayment) ? amount : 0, captured: captured ? amount : 0, refunded: refunded ? amount : 0 };
}
