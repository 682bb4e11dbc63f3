import type { FastifyInstance } from 'fastify';
import type { Idempotency } from '../../core/decider.ts';
import type { SagaOutcome } from '../../core/saga.ts';
import { execute, newId } from '../../http/commands.ts';
import { route, schemas } from '../../http/openapi.ts';
import { Problem } from '../../http/problems.ts';
import { batchSize, count, id, idempotency } from '../../http/validate.ts';
import type { Service } from '../../ports/service.ts';
import { readDoc, scanAll, type Store } from '../../ports/store.ts';
import type { SagaSource } from '../tracker/tracker.ts';
import type { CheckoutAnswer } from './businessLogic.ts';
import { endedCheckout, type SagaOutcomes } from './checkoutOutcomes.ts';
import { checkoutSagaId, checkoutsOf, isPaid, orderIdOf, orderKey, orderStatus, ORDER_STATUSES, type Order, type OrderApiCommand } from './order.ts';

type Params = Record<string, string | undefined>;

/** What the order API asks of the other services (queries, not commands). */
export type Lookups = Readonly<{
  /** The price of an item, or undefined when there is no such item. */
  itemPrice(itemId: string): Promise<number | undefined>;
  userExists(userId: string): Promise<boolean>;
}>;

export type OrderApiDeps = Readonly<{
  orders: Service<OrderApiCommand>;
  lookups: Lookups;
  /** How long a checkout request waits for its saga before answering 504. */
  checkoutWaitMs: number;
  /** Where a waiting checkout learns its end. */
  outcomes: SagaOutcomes & { stop(): void };
}>;

/** The course API of the order service, under /orders. */
export function orderApi(deps: OrderApiDeps) {
  const { orders, outcomes } = deps;
  const run = (command: OrderApiCommand, key?: Idempotency) =>
    execute(orders, command, { idempotency: key, correlationId: 'orderId' in command ? command.orderId : '' });

  return async (app: FastifyInstance) => {
    app.addHook('onClose', async () => outcomes.stop());

    app.post<{ Params: Params }>('/create/:userId', { schema: route({ access: 'shop', summary: 'Create an order for a user', tags: ['orders'], params: { userId: 'the user' }, ok: schemas.object({ order_id: schemas.string }), errors: ['invalid-id', 'user-not-found', 'idempotency-key-reused'], idempotent: true }) }, async (req) => {
      const userId = id(req.params.userId, 'user_id');
      const key = idempotency(req);
      if (!(await deps.lookups.userExists(userId))) throw new Problem('user-not-found', `User ${userId} does not exist.`);
      return run({ type: 'CreateOrder', orderId: newId(), userId }, key);
    });

    app.get<{ Params: Params }>('/find/:orderId', { schema: route({ access: 'shop', summary: 'An order, its status and its latest checkout', tags: ['orders'], params: { orderId: 'the order' }, ok: schemas.object({ order_id: schemas.string, paid: schemas.boolean, items: { type: 'array', items: { type: 'array', prefixItems: [schemas.string, schemas.integer] } }, user_id: schemas.string, total_cost: schemas.integer, status: { type: 'string', enum: [...ORDER_STATUSES] }, checkout: { type: ['object', 'null'], properties: { saga_id: schemas.string, status: schemas.string } } }), errors: ['invalid-id', 'order-not-found'] }) }, async (req) => {
      const orderId = id(req.params.orderId, 'order_id');
      const order = await findOrder(orders, orderId);
      return {
        order_id: orderId, paid: isPaid(order), items: order.lines, user_id: order.userId, total_cost: order.totalCost,
        status: orderStatus(order), checkout: order.checkout ? { saga_id: order.checkout.id, status: order.checkout.status } : null,
      };
    });

    app.post<{ Params: Params }>('/addItem/:orderId/:itemId/:quantity', { schema: route({ access: 'shop', summary: 'Add units of an item to an order', tags: ['orders'], params: { orderId: 'the order', itemId: 'the item', quantity: 'units (at least 1)' }, errors: ['invalid-id', 'invalid-number', 'order-not-found', 'item-not-found', 'order-locked', 'amount-too-large', 'idempotency-key-reused'], idempotent: true }) }, async (req) => {
      const orderId = id(req.params.orderId, 'order_id');
      const itemId = id(req.params.itemId, 'item_id');
      const quantity = count(req.params.quantity, 'quantity', { min: 1 });
      const key = idempotency(req);
      const price = await deps.lookups.itemPrice(itemId);
      if (price === undefined) throw new Problem('item-not-found', `Item ${itemId} does not exist.`);
      return run({ type: 'AddItem', orderId, itemId, quantity, price }, key);
    });

    app.post<{ Params: Params }>('/checkout/:orderId', { schema: route({ access: 'shop', summary: 'Check an order out: answers once the stock and the money are taken, or nothing is', tags: ['orders'], params: { orderId: 'the order' }, ok: schemas.object({ order_id: schemas.string, paid: schemas.boolean }), errors: ['invalid-id', 'order-not-found', 'order-cancelled', 'checkout-failed', 'checkout-pending', 'idempotency-key-reused'], idempotent: true }) }, async (req, reply) => {
      const orderId = id(req.params.orderId, 'order_id');
      const { sagaId, outcome } = await checkOut(orders, outcomes, orderId, idempotency(req), deps.checkoutWaitMs);
      if (outcome === 'timeout') {
        throw new Problem('checkout-pending', `Checkout ${sagaId ?? ''} is still running; GET /orders/find/${orderId} shows when it ends.`);
      }
      if (outcome.status === 'failed') throw new Problem('checkout-failed', `Checkout of order ${orderId} failed: ${outcome.reason}. Nothing was charged or taken.`);
      return reply.send({ order_id: orderId, paid: true });
    });

    app.post<{ Params: Params }>('/batch_init/:n/:nItems/:nUsers/:itemPrice', { schema: route({ access: 'fixture', summary: 'Create orders "0" … "n-1" of two random items each', tags: ['orders'], params: { n: 'how many (at most 1,000,000)', nItems: 'items to choose from', nUsers: 'users to choose from', itemPrice: 'price of each item' }, ok: schemas.message, errors: ['invalid-number', 'amount-too-large', 'fixtures-off', 'fixture-conflict'] }) }, async (req) => {
      const command = {
        type: 'InitOrders',
        count: batchSize(req.params.n, 'n'),
        items: batchSize(req.params.nItems, 'n_items'),
        users: batchSize(req.params.nUsers, 'n_users'),
        price: count(req.params.itemPrice, 'item_price', { max: Math.floor(Number.MAX_SAFE_INTEGER / 2) }),
        seed: Math.floor(Math.random() * 2 ** 32),
      } as const;
      if (command.count > 0 && (command.items === 0 || command.users === 0)) {
        throw new Problem('invalid-number', 'n_items and n_users must be at least 1 when n is.');
      }
      return run(command);
    });
  };
}

/**
 * Starts a checkout attempt of `orderId` (or joins the one under way) and waits up to `waitMs`
 * (0: not at all) for its end, the way both checkout routes do: the outcome, or 'timeout' with
 * the saga still running. An order paid already has completed.
 */
export async function checkOut(
  orders: Service<OrderApiCommand>,
  outcomes: SagaOutcomes,
  orderId: string,
  key: Idempotency | undefined,
  waitMs: number,
): Promise<Readonly<{ sagaId?: string; outcome: SagaOutcome | 'timeout' }>> {
  const waiter = outcomes.expect(orderId);
  let answer: CheckoutAnswer;
  try {
    answer = (await execute(orders, { type: 'Checkout', orderId, sagaId: checkoutSagaId(orderId, newId()) }, { idempotency: key, correlationId: orderId })) as CheckoutAnswer;
  } catch (error) {
    waiter.cancel();
    throw error;
  }
  if (answer.paid) {
    waiter.cancel();
    return { outcome: { status: 'completed' } };
  }
  // A replayed first answer may name a saga that has ended since: its outcome is in the order.
  const ended = key === undefined ? undefined : endedCheckout(await findOrder(orders, orderId), answer.sagaId);
  if (ended || waitMs === 0) {
    waiter.cancel();
    return { sagaId: answer.sagaId, outcome: ended ?? 'timeout' };
  }
  return { sagaId: answer.sagaId, outcome: await waiter.wait(answer.sagaId, waitMs) };
}

export async function findOrder(orders: Service<OrderApiCommand>, orderId: string): Promise<Order> {
  const order = await readDoc<Order>(orders.store, orderKey(orderId));
  if (!order) throw new Problem('order-not-found', `Order ${orderId} does not exist.`);
  return order;
}

/**
 * The checkout sagas the orders hold, for the saga API in orchestration and the synchronous
 * style (each order keeps every attempt). A saga id starts with its order id.
 */
export function orderSagas(orders: Store): SagaSource {
  return {
    async *list(after) {
      if (after !== '') {
        // The rest of the cursor's order first: its later attempts come before the next order.
        const order = await readDoc<Order>(orders, orderKey(orderIdOf(after)));
        if (order) yield* checkoutsOf(order).filter((saga) => saga.id > after);
      }
      const from = after === '' ? '' : orderKey(orderIdOf(after));
      for await (const [, order] of scanAll<Order>(orders, 'order:', from)) yield* checkoutsOf(order);
    },
    async get(sagaId) {
      const order = await readDoc<Order>(orders, orderKey(orderIdOf(sagaId)));
      const saga = order ? checkoutsOf(order).find((s) => s.id === sagaId) : undefined;
      return saga ? { saga, early: [] } : undefined;
    },
  };
}
