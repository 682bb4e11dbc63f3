import { CourseClient, mapLimit } from './client.ts';

export type ConsistencyResult = Readonly<{
  checkouts: number;
  succeeded: number;
  failed: number;
  otherStatuses: readonly number[];
  stock: number;
  totalCredit: number;
  paidOrders: number;
  /** 2xx orders that are not paid, and paid orders that did not get a 2xx. */
  mismatches: readonly string[];
}>;

/**
 * The course's consistency scenario: one item with `stock` units at price 1, `users` users with
 * credit 1, one single-unit order each, every checkout fired with `concurrency` in flight.
 * Afterwards exactly `stock` checkouts succeed, the stock is 0, the credit is users − stock, and
 * the 2xx orders are exactly the paid ones.
 */
export async function consistencyScenario(baseUrl: string, options = { stock: 100, users: 1000, concurrency: 100 }): Promise<ConsistencyResult> {
  const client = new CourseClient(baseUrl, options.concurrency);
  try {
    const { item_id: itemId } = await client.post<{ item_id: string }>('/stock/item/create/1');
    await client.post(`/stock/add/${itemId}/${options.stock}`);
    const users = await mapLimit(Array.from({ length: options.users }), 50, async () => {
      const { user_id: userId } = await client.post<{ user_id: string }>('/payment/create_user');
      await client.post(`/payment/add_funds/${userId}/1`);
      return userId;
    });
    const orders = await mapLimit(users, 50, async (userId) => {
      const { order_id: orderId } = await client.post<{ order_id: string }>(`/orders/create/${userId}`);
      await client.post(`/orders/addItem/${orderId}/${itemId}/1`);
      return orderId;
    });

    const statuses = await mapLimit(orders, options.concurrency, async (orderId) => (await client.call('POST', `/orders/checkout/${orderId}`)).status);

    const { stock } = await client.get<{ stock: number }>(`/stock/find/${itemId}`);
    const credits = await mapLimit(users, 50, async (userId) => (await client.get<{ credit: number }>(`/payment/find_user/${userId}`)).credit);
    const paid = await mapLimit(orders, 50, async (orderId) => (await client.get<{ paid: boolean }>(`/orders/find/${orderId}`)).paid);
    const mismatches = orders.flatMap((orderId, i) => {
      const ok = statuses[i]! >= 200 && statuses[i]! < 300;
      return ok === paid[i] ? [] : [`${orderId}: answered ${statuses[i]}, paid=${paid[i]}`];
    });
    return {
      checkouts: orders.length,
      succeeded: statuses.filter((s) => s >= 200 && s < 300).length,
      failed: statuses.filter((s) => s >= 400 && s < 500).length,
      otherStatuses: statuses.filter((s) => s < 200 || s >= 500 || (s >= 300 && s < 400)),
      stock,
      totalCredit: credits.reduce((a, b) => a + b, 0),
      paidOrders: paid.filter(Boolean).length,
      mismatches,
    };
  } finally {
    await client.close();
  }
}

export type BatchInit = Readonly<{ users: number; credit: number; items: number; stock: number; orders: number }>;

/**
 * Checks, after `batch_init` with these numbers and any checkouts, that every user's credit is
 * what they had less exactly the paid orders they placed, and every item's stock is what it had
 * less exactly the paid units of it: nothing charged or taken twice, for no one, and nothing
 * taken for an order that is not paid. Returns what is wrong (empty when all is right).
 */
export async function verifyEveryEntity(baseUrl: string, init: BatchInit): Promise<string[]> {
  const client = new CourseClient(baseUrl, 32);
  try {
    type FoundOrder = { paid: boolean; user_id: string; total_cost: number; items: [string, number][] };
    const orders = await mapLimit(Array.from({ length: init.orders }, (_, i) => String(i)), 32, (id) => client.get<FoundOrder>(`/orders/find/${id}`));
    const charged = new Map<string, number>();
    const taken = new Map<string, number>();
    for (const order of orders) {
      if (!order.paid) continue;
      charged.set(order.user_id, (charged.get(order.user_id) ?? 0) + order.total_cost);
      for (const [itemId, quantity] of order.items) taken.set(itemId, (taken.get(itemId) ?? 0) + quantity);
    }
    const wrong: string[] = [];
    await mapLimit(Array.from({ length: init.users }, (_, i) => String(i)), 32, async (id) => {
      const { credit } = await client.get<{ credit: number }>(`/payment/find_user/${id}`);
      const expected = init.credit - (charged.get(id) ?? 0);
      if (credit !== expected) wrong.push(`user ${id} has credit ${credit}, expected ${expected}`);
    });
    await mapLimit(Array.from({ length: init.items }, (_, i) => String(i)), 32, async (id) => {
      const { stock } = await client.get<{ stock: number }>(`/stock/find/${id}`);
      const expected = init.stock - (taken.get(id) ?? 0);
      if (stock !== expected) wrong.push(`item ${id} has stock ${stock}, expected ${expected}`);
    });
    return wrong;
  } finally {
    await client.close();
  }
}
