/** Fulfillment: shipments of confirmed orders, their labels and tracking numbers, and carrier scans. */
import type { Message } from '../../core/message.ts';
import { anyObject, isNonEmptyString, isRecord, type Check, type Checks } from '../../core/parse.ts';
import { stockLinesCheck, type Line } from '../stock/stock.ts';

/** Where a shipment is; each carrier scan moves it on (never back). */
export const SHIPMENT_STATUSES = ['label_created', 'picked_up', 'in_transit', 'delivered'] as const;
export type ShipmentStatus = (typeof SHIPMENT_STATUSES)[number];
/** What a carrier scan says. */
export const SCANS = ['picked_up', 'in_transit', 'delivered'] as const;
export type Scan = (typeof SCANS)[number];

export type Shipment = Readonly<{
  /** The saga that asked for it; the tracking number is derived from it. */
  sagaId: string;
  orderId: string;
  userId: string;
  lines: readonly Line[];
  trackingNumber: string;
  carrier: string;
  /** The label's text (no real carrier: what would be printed). */
  label: string;
  status: ShipmentStatus | 'cancelled';
  createdAt: number;
  scans: readonly Readonly<{ scan: Scan; at: number }>[];
}>;

/** The only carrier there is. */
export const CARRIER = 'Orderly Post';

/**
 * A shipment's tracking number: derived from its saga's id (53 bits of a hash, base 36), so
 * every step of the saga finds the same shipment, and the carrier's scans find it too.
 */
export function trackingNumberOf(sagaId: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < sagaId.length; i++) {
    const c = sagaId.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const n = 4294967296 * (2097151 & h2) + (h1 >>> 0);
  return `OP${n.toString(36).toUpperCase().padStart(11, '0')}`;
}

export const shipmentKey = (trackingNumber: string) => `shipment:${trackingNumber}`;
export const SHIPMENT_PREFIX = 'shipment:';

export const FulfillmentCommands = { create: 'CreateShipment', cancel: 'CancelShipment' } as const;
export const FulfillmentReplies = { created: 'ShipmentCreated', cancelled: 'ShipmentCancelled' } as const;
/** What fulfillment publishes when a carrier scan moves a shipment on. */
export const FulfillmentEvents = { scanned: 'ShipmentScanned' } as const;

/** What the order asks to ship. */
export type ShipmentRequest = Readonly<{ orderId: string; userId: string; lines: readonly Line[] }>;
/** A created shipment, as the order records it. */
export type ShipmentCreated = Readonly<{ trackingNumber: string; carrier: string; label: string }>;
export type ShipmentScanned = Readonly<{ orderId: string; userId: string; trackingNumber: string; scan: Scan; status: ShipmentStatus; at: number }>;

export type FulfillmentCommand =
  | Message<typeof FulfillmentCommands.create, ShipmentRequest>
  | Message<typeof FulfillmentCommands.cancel, ShipmentRequest>;

export type FulfillmentReply =
  | Message<typeof FulfillmentReplies.created, ShipmentCreated>
  | Message<typeof FulfillmentReplies.cancelled, Readonly<Record<string, never>>>;

export type FulfillmentApiCommand = Readonly<{ type: 'RecordScan'; trackingNumber: string; scan: Scan }>;

const shipmentRequest: Check = (payload) => {
  if (!isRecord(payload)) return 'the payload must be an object';
  if (!isNonEmptyString(payload.orderId) || !isNonEmptyString(payload.userId)) return 'orderId and userId must be ids';
  return stockLinesCheck(payload);
};

export const fulfillmentCommandChecks: Checks<FulfillmentCommand> = {
  [FulfillmentCommands.create]: shipmentRequest,
  [FulfillmentCommands.cancel]: shipmentRequest,
};

const shipmentCreated: Check = (payload) => {
  if (!isRecord(payload)) return 'the payload must be an object';
  return isNonEmptyString(payload.trackingNumber) && isNonEmptyString(payload.carrier) && typeof payload.label === 'string'
    ? undefined
    : 'trackingNumber, carrier and label must be strings';
};

/** What the saga's owner checks of fulfillment's replies. */
export const fulfillmentReplyChecks: Checks<FulfillmentReply> = {
  [FulfillmentReplies.created]: shipmentCreated,
  [FulfillmentReplies.cancelled]: anyObject,
};

export const isScan = (value: unknown): value is Scan => (SCANS as readonly unknown[]).includes(value);

/** What the consumers of a scan event check. */
export const shipmentScannedCheck: Check = (payload) => {
  if (!isRecord(payload)) return 'the payload must be an object';
  if (!isNonEmptyString(payload.orderId) || !isNonEmptyString(payload.userId) || !isNonEmptyString(payload.trackingNumber)) {
    return 'orderId, userId and trackingNumber must be ids';
  }
  if (!isScan(payload.scan) || !(SHIPMENT_STATUSES as readonly unknown[]).includes(payload.status)) return `scan must be one of ${SCANS.join(', ')}`;
  return Number.isSafeInteger(payload.at) ? undefined : 'at must be a time';
};

/** The rank of a status: a scan moves a shipment only forward. */
export const statusRank = (status: ShipmentStatus): number => SHIPMENT_STATUSES.indexOf(status);
