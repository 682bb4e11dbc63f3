/** Notification: what the customer is told about their orders, each message once. */
import type { Message } from '../../core/message.ts';
import type { Checks } from '../../core/parse.ts';
import { lifecycleEventCheck, OrderEvents, type LifecycleEvent } from '../order/order.ts';
import { FulfillmentEvents, shipmentScannedCheck, type ShipmentScanned } from '../fulfillment/fulfillment.ts';

/** What notification consumes. */
export type NotificationMessage =
  | Message<typeof OrderEvents.confirmed, LifecycleEvent>
  | Message<typeof OrderEvents.failed, LifecycleEvent>
  | Message<typeof OrderEvents.cancelled, LifecycleEvent>
  | Message<typeof OrderEvents.refunded, LifecycleEvent>
  | Message<typeof OrderEvents.shipped, LifecycleEvent>
  | Message<typeof FulfillmentEvents.scanned, ShipmentScanned>;

export const notificationMessageChecks: Checks<NotificationMessage> = {
  [OrderEvents.confirmed]: lifecycleEventCheck,
  [OrderEvents.failed]: lifecycleEventCheck,
  [OrderEvents.cancelled]: lifecycleEventCheck,
  [OrderEvents.refunded]: lifecycleEventCheck,
  [OrderEvents.shipped]: lifecycleEventCheck,
  [FulfillmentEvents.scanned]: shipmentScannedCheck,
};

export const NOTIFICATION_KINDS = ['confirmed', 'failed', 'cancelled', 'refunded', 'shipped', 'on_the_way', 'delivered'] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

/** One message to a customer. */
export type Notification = Readonly<{
  kind: NotificationKind;
  userId: string;
  orderId: string;
  /** The saga (checkout attempt) it is about. */
  sagaId: string;
  subject: string;
  text: string;
  /** When the event happened (the event's time). */
  at: number;
  /** The event it was made from. */
  eventId: string;
}>;

/** What notification publishes once it has recorded a message (its outbox of customer messages). */
export const NotificationEvents = { sent: 'NotificationSent' } as const;

/**
 * One key per customer message: the customer, the order, the checkout attempt and the kind,
 * so an event told twice (a redelivery, a republished event) makes the same key and no second message.
 */
export const notificationKey = (n: Pick<Notification, 'userId' | 'orderId' | 'sagaId' | 'kind'>) =>
  `${notificationsOf(n.userId)}${n.orderId}:${n.sagaId}:${n.kind}`;
export const notificationsOf = (userId: string) => `notification:${userId}:`;

/** Notification has no commands of its own: customers only read. */
export type NotificationApiCommand = never;
