import { assertNever, type Decider, type Decision } from '../../core/decider.ts';
import type { Envelope } from '../../core/message.ts';
import { parserOf } from '../../core/parse.ts';
import { FulfillmentEvents } from '../fulfillment/fulfillment.ts';
import { OrderEvents } from '../order/order.ts';
import {
  notificationKey, notificationMessageChecks, NotificationEvents,
  type Notification, type NotificationApiCommand, type NotificationKind, type NotificationMessage,
} from './notification.ts';

/**
 * Notification's decisions: each event the customer should hear of becomes one message, kept
 * under a key made of the customer, the order, the checkout attempt and the kind. The message,
 * the event's dedup mark and the `NotificationSent` that tells the world commit together, so a
 * crash, a redelivery or the same news told twice never sends it twice or loses it.
 */
export const notificationDecider: Decider<NotificationMessage, NotificationApiCommand> = {
  consumes: Object.keys(notificationMessageChecks),
  parse: parserOf(notificationMessageChecks),
  keys: (message) => {
    const kind = kindOf(message);
    return kind === undefined ? [] : [notificationKey({ userId: message.payload.userId, orderId: message.payload.orderId, sagaId: message.sagaId, kind })];
  },
  decide(message, read): Decision {
    const kind = kindOf(message);
    if (kind === undefined) return {};
    const notification = compose(message, kind);
    const key = notificationKey(notification);
    if (read<Notification>(key)) return {};
    return {
      writes: { [key]: notification },
      send: [{ type: NotificationEvents.sent, payload: { userId: notification.userId, orderId: notification.orderId, kind } }],
    };
  },
  api: { keys: () => [], decide: () => ({}) },
};

/** The kind of message an event makes, if any (a pick-up and an in-transit scan both mean "on the way"). */
function kindOf(message: Envelope<NotificationMessage>): NotificationKind | undefined {
  switch (message.type) {
    case OrderEvents.confirmed:
      return 'confirmed';
    case OrderEvents.failed:
      return 'failed';
    case OrderEvents.cancelled:
      return 'cancelled';
    case OrderEvents.refunded:
      return 'refunded';
    case OrderEvents.shipped:
      return 'shipped';
    case FulfillmentEvents.scanned:
      return message.payload.status === 'delivered' ? 'delivered' : message.payload.status === 'label_created' ? undefined : 'on_the_way';
    default:
      return assertNever(message);
  }
}

function compose(message: Envelope<NotificationMessage>, kind: NotificationKind): Notification {
  const { orderId, userId } = message.payload;
  const base = { kind, userId, orderId, sagaId: message.sagaId, at: message.at, eventId: message.id };
  const money = (amount: number) => `${amount}`;
  switch (kind) {
    case 'confirmed':
      return { ...base, subject: `Order ${orderId} is confirmed`, text: `We have your payment of ${money(amountOf(message))} and your items are set aside.` };
    case 'failed':
      return { ...base, subject: `Order ${orderId} could not be placed`, text: `Your order could not be placed: ${reasonOf(message)}. Nothing was charged.` };
    case 'cancelled':
      return { ...base, subject: `Order ${orderId} is cancelled`, text: `Your order was cancelled: ${reasonOf(message)}.` };
    case 'refunded':
      return { ...base, subject: `Refund for order ${orderId}`, text: `${money(amountOf(message))} was given back to you.` };
    case 'shipped':
      return { ...base, subject: `Order ${orderId} has shipped`, text: `Your parcel is ready for the carrier; tracking number ${trackingOf(message)}.` };
    case 'on_the_way':
      return { ...base, subject: `Order ${orderId} is on the way`, text: `The carrier has your parcel ${trackingOf(message)}.` };
    case 'delivered':
      return { ...base, subject: `Order ${orderId} was delivered`, text: `Parcel ${trackingOf(message)} was delivered.` };
    default:
      return assertNever(kind);
  }
}

const amountOf = (message: Envelope<NotificationMessage>) => ('amount' in message.payload ? message.payload.amount : 0);
const reasonOf = (message: Envelope<NotificationMessage>) => ('reason' in message.payload && message.payload.reason ? message.payload.reason : 'no reason given');
const trackingOf = (message: Envelope<NotificationMessage>) => message.payload.trackingNumber ?? '';

/** A customer's messages, oldest first (for the API). */
export function byTime(a: Notification, b: Notification): number {
  return a.at - b.at || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0);
}
