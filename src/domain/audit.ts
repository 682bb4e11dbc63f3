import { isActive } from '../core/saga.ts';
import type { Order } from './order/order.ts';
import { isPaid, orderStatus } from './order/order.ts';
import type { Account } from './payment/payment.ts';
import type { Item } from './stock/stock.ts';
import { scanAll, type Store } from '../ports/store.ts';

/** Totals over every store: what conservation checks compare with what was put in. */
export type Audit = Readonly<{
  stock: Readonly<{ items: number; available: number; reserved: number }>;
  payment: Readonly<{ users: number; credit: number; held: number }>;
  orders: Readonly<{
    count: number;
    byStatus: Readonly<Record<string, number>>;
    /** Checkouts not yet ended (running or compensating). */
    activeSagas: number;
    paid: number;
    paidAmount: number;
    paidUnits: number;
  }>;
}>;

/** Each service's part of the audit, from its own store. */
export const audits = {
  async stock(store: Store): Promise<Pick<Audit, 'stock'>> {
    const stock = { items: 0, available: 0, reserved: 0 };
    for await (const [, item] of scanAll<Item>(store, 'item:')) {
      stock.items++;
      stock.available += item.available;
      stock.reserved += item.reserved;
    }
    return { stock };
  },

  async payment(store: Store): Promise<Pick<Audit, 'payment'>> {
    const payment = { users: 0, credit: 0, held: 0 };
    for await (const [, account] of scanAll<Account>(store, 'user:')) {
      payment.users++;
      payment.credit += account.credit;
      payment.held += account.held;
    }
    return { payment };
  },

  async orders(store: Store): Promise<Pick<Audit, 'orders'>> {
    const orders = { count: 0, byStatus: {} as Record<string, number>, activeSagas: 0, paid: 0, paidAmount: 0, paidUnits: 0 };
    for await (const [, order] of scanAll<Order>(store, 'order:')) {
      orders.count++;
      const status = orderStatus(order);
      orders.byStatus[status] = (orders.byStatus[status] ?? 0) + 1;
      if (order.checkout && isActive(order.checkout)) orders.activeSagas++;
      if (isPaid(order)) {
        orders.paid++;
        orders.paidAmount += order.totalCost;
        orders.paidUnits += order.lines.reduce((sum, [, quantity]) => sum + quantity, 0);
      }
    }
    return { orders };
  },

  /** The tracker holds no money or stock; its view is under /sagas. */
  async tracker(): Promise<Partial<Audit>> {
    return {};
  },
} as const;
