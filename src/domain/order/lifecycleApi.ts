import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Idempotency } from '../../core/decider.ts';
import { execute, newId } from '../../http/commands.ts';
import { route, schemas } from '../../http/openapi.ts';
import { Problem } from '../../http/problems.ts';
import { countField, id, idempotency, idField, jsonObject, onlyFields, textField } from '../../http/validate.ts';
import { MAX_LINES } from '../limits.ts';
import type { Service } from '../../ports/service.ts';
import { checkOut, findOrder, type Lookups } from './api.ts';
import type { SagaOutcomes } from './checkoutOutcomes.ts';
import {
  amountsOf, checkoutsOf, ORDER_STATUSES, orderStatus,
  type Order, type OrderApiCommand, type PricedLine,
} from './order.ts';

type Params = Record<string, string | undefined>;

export type LifecycleApiDeps = Readonly<{
  orders: Service<OrderApiCommand>;
  lookups: Lookups;
  /** How long a checkout waits for its outcome before answering 202 with where to look. */
  checkoutWaitMs: number;
  outcomes: SagaOutcomes;
}>;

const orderSchema = schemas.object({
  order_id: schemas.string,
  user_id: schemas.string,
  status: { type: 'string', enum: [...ORDER_STATUSES] },
  items: { type: 'array', items: schemas.object({ item_id: schemas.string, quantity: schemas.integer }) },
  total_cost: schemas.integer,
  amounts: schemas.object({ authorized: schemas.integer, captured: schemas.integer, refunded: schemas.integer }),
  checkout: { type: ['object', 'null'] },
  cancelled: { type: ['object', 'null'] },
  shipment: { type: ['object', 'null'] },
  timeline: { type: 'array', items: { type: 'object' } },
});

/**
 * The order lifecycle API (docs/api.md), beside the course API: JSON bodies, snake_case answers,
 * an Idempotency-Key on every POST. Create an order with its items, check it out (wait for the
 * outcome, or `Prefer: respond-async` for 202 and where to look), read it with its status,
 * amounts, shipment and timeline, cancel it.
 */
export function lifecycleApi(deps: LifecycleApiDeps) {
  const { orders, outcomes } = deps;
  const run = (command: OrderApiCommand, key: Idempotency | undefined) =>
    execute(orders, command, { idempotency: key, correlationId: 'orderId' in command ? command.orderId : '' });

  return async (app: FastifyInstance) => {
    app.post('/orders', {
      schema: route({ access: 'shop', summary: 'Create an order with its items', tags: ['lifecycle'], idempotent: true,
        body: schemas.object({ user_id: schemas.id, items: { type: 'array', items: schemas.object({ item_id: schemas.id, quantity: schemas.integer }) } }, ['user_id']),
        ok: orderSchema, errors: ['invalid-body', 'user-not-found', 'item-not-found', 'amount-too-large', 'idempotency-key-reused'],
      }),
    }, async (req, reply) => {
      const body = jsonObject(req.body);
      onlyFields(body, ['user_id', 'items']);
      const userId = idField(body, 'user_id');
      const wanted = itemsOf(body.items);
      const key = idempotency(req);
      if (!(await deps.lookups.userExists(userId))) throw new Problem('user-not-found', `User ${userId} does not exist.`);
      const items: PricedLine[] = [];
      for (const { itemId, quantity } of wanted) {
        const price = await deps.lookups.itemPrice(itemId);
        if (price === undefined) throw new Problem('item-not-found', `Item ${itemId} does not exist.`);
        items.push({ itemId, quantity, price });
      }
      const created = await run({ type: 'CreateOrder', orderId: newId(), userId, items }, key) as { order_id: string };
      return reply.code(201).header('location', `/api/orders/${created.order_id}`).send(view(created.order_id, await findOrder(orders, created.order_id)));
    });

    app.get<{ Params: Params }>('/orders/:orderId', {
      schema: route({ access: 'shop', summary: 'An order: status, items, amounts, shipment and timeline', tags: ['lifecycle'], params: { orderId: 'the order' }, ok: orderSchema, errors: ['invalid-id', 'order-not-found'] }),
    }, async (req) => {
      const orderId = id(req.params.orderId, 'order_id');
      return view(orderId, await findOrder(orders, orderId));
    });

    app.post<{ Params: Params }>('/orders/:orderId/checkout', {
      schema: route({ access: 'shop', summary: 'Check an order out: waits for it to be confirmed or to fail, or with `Prefer: respond-async` answers 202 at once', tags: ['lifecycle'],
        params: { orderId: 'the order' }, idempotent: true, ok: orderSchema,
        errors: ['invalid-id', 'invalid-body', 'order-not-found', 'order-cancelled', 'checkout-failed', 'idempotency-key-reused'],
      }),
    }, async (req, reply) => {
      const orderId = id(req.params.orderId, 'order_id');
      onlyFields(jsonObject(req.body), []);
      const { outcome } = await checkOut(orders, outcomes, orderId, idempotency(req), respondAsync(req) ? 0 : deps.checkoutWaitMs);
      const order = await findOrder(orders, orderId);
      if (outcome === 'timeout') return accepted(reply, orderId, order);
      if (outcome.status === 'failed') {
        throw new Problem('checkout-failed', `Checkout of order ${orderId} failed: ${outcome.reason}. Whatever was held or taken is given back; GET /api/orders/${orderId} shows it.`);
      }
      return view(orderId, order);
    });

    app.post<{ Params: Params }>('/orders/:orderId/cancel', {
      schema: route({ access: 'shop', summary: 'Cancel an order before it ships: its stock is released and its money given back', tags: ['lifecycle'],
        params: { orderId: 'the order' }, idempotent: true, body: schemas.object({ reason: schemas.string }, []), ok: orderSchema,
        errors: ['invalid-id', 'invalid-body', 'order-not-found', 'order-not-cancellable', 'idempotency-key-reused'],
      }),
    }, async (req) => {
      const orderId = id(req.params.orderId, 'order_id');
      const body = jsonObject(req.body);
      onlyFields(body, ['reason']);
      const reason = textField(body, 'reason', 'cancelled by the customer');
      await run({ type: 'Cancel', orderId, reason }, idempotency(req));
      return view(orderId, await findOrder(orders, orderId));
    });
  };
}

/** `Prefer: respond-async` (RFC 7240): answer 202 at once instead of waiting. */
function respondAsync(req: FastifyRequest): boolean {
  const prefer = req.headers.prefer;
  return (Array.isArray(prefer) ? prefer.join(',') : prefer ?? '').split(/[,;]/).some((p) => p.trim().toLowerCase() === 'respond-async');
}

function accepted(reply: FastifyReply, orderId: string, order: Order) {
  return reply.code(202).header('location', `/api/orders/${orderId}`).send(view(orderId, order));
}

function itemsOf(value: unknown): { itemId: string; quantity: number }[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Problem('invalid-body', 'items must be a list of { "item_id": …, "quantity": … }.');
  if (value.length > MAX_LINES) throw new Problem('invalid-body', `An order may have at most ${MAX_LINES} items; got ${value.length}.`);
  return value.map((item: unknown, i) => {
    const line = jsonObjectAt(item, i);
    onlyFields(line, ['item_id', 'quantity']);
    return { itemId: idField(line, 'item_id'), quantity: countField(line, 'quantity', { min: 1 }) };
  });
}

function jsonObjectAt(item: unknown, i: number): Readonly<Record<string, unknown>> {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new Problem('invalid-body', `items[${i}] must be an object { "item_id": …, "quantity": … }.`);
  return item as Record<string, unknown>;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** An order as the lifecycle API shows it. */
export function view(orderId: string, order: Order) {
  const saga = order.checkout;
  const timeline: { at: string; saga_id: string; step: string; event: string; detail?: string }[] = checkoutsOf(order).flatMap((attempt) => attempt.history.map((e) => ({
    at: iso(e.at), saga_id: attempt.id, step: e.step, event: e.event, ...(e.detail === undefined ? {} : { detail: e.detail }),
  })));
  if (order.cancelled) timeline.push({ at: iso(order.cancelled.at), saga_id: order.cancelled.sagaId ?? '', step: '', event: `cancelled by the ${order.cancelled.by === 'timeout' ? 'reservation\'s time to live' : 'customer'}`, detail: order.cancelled.reason });
  timeline.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return {
    order_id: orderId,
    user_id: order.userId,
    status: orderStatus(order),
    items: order.lines.map(([itemId, quantity]) => ({ item_id: itemId, quantity })),
    total_cost: order.totalCost,
    amounts: amountsOf(order),
    checkout: saga ? { saga_id: saga.id, status: saga.status, definition: saga.definition ?? { name: 'checkout', version: 1 } } : null,
    cancelled: order.cancelled ? { by: order.cancelled.by, reason: order.cancelled.reason, at: iso(order.cancelled.at) } : null,
    shipment: order.shipment
      ? { tracking_number: order.shipment.trackingNumber, carrier: order.shipment.carrier, status: order.shipment.status, label: order.shipment.label }
      : null,
    timeline,
  };
}
