import type { FastifyInstance } from 'fastify';
import { execute } from '../../http/commands.ts';
import { route, schemas } from '../../http/openapi.ts';
import { Problem } from '../../http/problems.ts';
import { idempotency, jsonObject, oneOfField, onlyFields } from '../../http/validate.ts';
import { readDoc } from '../../ports/store.ts';
import type { Service } from '../../ports/service.ts';
import { SCANS, shipmentKey, type FulfillmentApiCommand, type Shipment } from './fulfillment.ts';

type Params = Record<string, string | undefined>;

const TRACKING = /^OP[0-9A-Z]{11}$/;

const shipmentSchema = schemas.object({
  tracking_number: schemas.string, order_id: schemas.string, carrier: schemas.string, status: schemas.string, label: schemas.string,
  scans: { type: 'array', items: schemas.object({ scan: schemas.string, at: schemas.string }) },
});

/** Fulfillment's part of the lifecycle API, under /api: a shipment, and the carrier's scans. */
export function fulfillmentApi(fulfillment: Service<FulfillmentApiCommand>) {
  return async (app: FastifyInstance) => {
    app.get<{ Params: Params }>('/shipments/:trackingNumber', {
      schema: route({ access: 'shop', summary: 'A shipment: its label, status and scans', tags: ['lifecycle'], params: { trackingNumber: 'the tracking number' }, ok: shipmentSchema, errors: ['invalid-id', 'shipment-not-found'] }),
    }, async (req) => view(await findShipment(fulfillment, trackingNumber(req.params.trackingNumber))));

    app.post<{ Params: Params }>('/shipments/:trackingNumber/scans', {
      schema: route({ access: 'shop', summary: 'Record a carrier scan (picked_up, in_transit, delivered): the order moves on, the customer is told', tags: ['lifecycle'],
        params: { trackingNumber: 'the tracking number' }, idempotent: true, body: schemas.object({ scan: { type: 'string', enum: [...SCANS] } }),
        errors: ['invalid-id', 'invalid-body', 'shipment-not-found', 'shipment-cancelled', 'shipment-delivered', 'idempotency-key-reused'],
      }),
    }, async (req) => {
      const tracking = trackingNumber(req.params.trackingNumber);
      const body = jsonObject(req.body);
      onlyFields(body, ['scan']);
      const scan = oneOfField(body, 'scan', SCANS);
      return execute(fulfillment, { type: 'RecordScan', trackingNumber: tracking, scan }, { idempotency: idempotency(req) });
    });
  };
}

function trackingNumber(value: string | undefined): string {
  if (value === undefined || !TRACKING.test(value)) throw new Problem('invalid-id', `A tracking number is OP and 11 digits or capital letters; got '${value ?? ''}'.`);
  return value;
}

async function findShipment(fulfillment: Service<FulfillmentApiCommand>, tracking: string): Promise<Shipment> {
  const shipment = await readDoc<Shipment>(fulfillment.store, shipmentKey(tracking));
  if (!shipment || shipment.label === '') throw new Problem('shipment-not-found', `No shipment has tracking number ${tracking}.`);
  return shipment;
}

function view(shipment: Shipment) {
  return {
    tracking_number: shipment.trackingNumber, order_id: shipment.orderId, carrier: shipment.carrier, status: shipment.status, label: shipment.label,
    scans: shipment.scans.map((s) => ({ scan: s.scan, at: new Date(s.at).toISOString() })),
  };
}
