import { assertNever, fail, ok, type Decider, type Decision, type Read } from '../../core/decider.ts';
import type { Envelope } from '../../core/message.ts';
import { parserOf } from '../../core/parse.ts';
import {
  CARRIER, FulfillmentCommands, fulfillmentCommandChecks, FulfillmentEvents, FulfillmentReplies, shipmentKey, statusRank, trackingNumberOf,
  type FulfillmentApiCommand, type FulfillmentCommand, type Shipment, type ShipmentCreated, type ShipmentScanned, type ShipmentStatus,
} from './fulfillment.ts';

/**
 * Fulfillment's decisions. A shipment is made once per saga (its tracking number comes from the
 * saga id), so a repeated request answers the same. A cancel that arrives before its request
 * leaves a tombstone, and the late request then ships nothing and answers nothing. Carrier
 * scans come through the API and move a shipment only forward.
 */
export const fulfillmentDecider: Decider<FulfillmentCommand, FulfillmentApiCommand> = {
  consumes: Object.values(FulfillmentCommands),
  parse: parserOf(fulfillmentCommandChecks),

  keys: (message) => [shipmentKey(trackingNumberOf(message.sagaId))],

  decide(message, read, now) {
    switch (message.type) {
      case FulfillmentCommands.create:
        return create(message, read, now);
      case FulfillmentCommands.cancel:
        return cancel(message, read, now);
      default:
        return assertNever(message);
    }
  },

  api: {
    keys: (command) => [shipmentKey(command.trackingNumber)],
    decide: (command, read, now) => recordScan(command, read, now),
  },
};

function create(message: Envelope<FulfillmentCommand>, read: Read, now: number): Decision {
  const trackingNumber = trackingNumberOf(message.sagaId);
  const existing = read<Shipment>(shipmentKey(trackingNumber));
  if (existing?.status === 'cancelled') return { send: [] };
  if (existing) return { send: [created(existing)] };
  const { orderId, userId, lines } = message.payload;
  const shipment: Shipment = {
    sagaId: message.sagaId, orderId, userId, lines, trackingNumber, carrier: CARRIER, status: 'label_created', createdAt: now, scans: [],
    label: [CARRIER, `Tracking ${trackingNumber}`, `Order ${orderId}`, `To customer ${userId}`, ...lines.map(([item, n]) => `${n} × ${item}`)].join('\n'),
  };
  return { writes: { [shipmentKey(trackingNumber)]: shipment }, send: [created(shipment)] };
}

function cancel(message: Envelope<FulfillmentCommand>, read: Read, now: number): Decision {
  const trackingNumber = trackingNumberOf(message.sagaId);
  const key = shipmentKey(trackingNumber);
  const existing = read<Shipment>(key);
  const cancelled = { type: FulfillmentReplies.cancelled, payload: {} };
  if (existing?.status === 'cancelled') return { send: [cancelled] };
  const { orderId, userId, lines } = message.payload;
  const next: Shipment = existing
    ? { ...existing, status: 'cancelled' }
    : { sagaId: message.sagaId, orderId, userId, lines, trackingNumber, carrier: CARRIER, label: '', status: 'cancelled', createdAt: now, scans: [] };
  return { writes: { [key]: next }, send: [cancelled] };
}

function created(shipment: Shipment) {
  const payload: ShipmentCreated = { trackingNumber: shipment.trackingNumber, carrier: shipment.carrier, label: shipment.label };
  return { type: FulfillmentReplies.created, payload };
}

/** A carrier scan: recorded, and published when it moves the shipment on. */
function recordScan(command: FulfillmentApiCommand, read: Read, now: number): Decision {
  const key = shipmentKey(command.trackingNumber);
  const shipment = read<Shipment>(key);
  if (!shipment) return { reply: fail('shipment-not-found', `No shipment has tracking number ${command.trackingNumber}.`) };
  if (shipment.status === 'cancelled') return { reply: fail('shipment-cancelled', `Shipment ${command.trackingNumber} was cancelled with its order; it takes no scans.`) };
  if (shipment.status === 'delivered') {
    if (command.scan === 'delivered') return { reply: ok(scanAnswer(shipment)) };
    return { reply: fail('shipment-delivered', `Shipment ${command.trackingNumber} was delivered already; a '${command.scan}' scan cannot come after that.`) };
  }
  const scans = [...shipment.scans, { scan: command.scan, at: now }];
  const moved = statusRank(command.scan) > statusRank(shipment.status);
  const status: ShipmentStatus = moved ? command.scan : shipment.status;
  const next: Shipment = { ...shipment, scans, status };
  const event: ShipmentScanned = { orderId: shipment.orderId, userId: shipment.userId, trackingNumber: shipment.trackingNumber, scan: command.scan, status, at: now };
  return {
    writes: { [key]: next },
    send: moved ? [{ type: FulfillmentEvents.scanned, payload: event, sagaId: shipment.sagaId, correlationId: shipment.orderId }] : [],
    reply: ok(scanAnswer(next)),
  };
}

function scanAnswer(shipment: Shipment) {
  return { tracking_number: shipment.trackingNumber, order_id: shipment.orderId, status: shipment.status, scans: shipment.scans.length };
}
