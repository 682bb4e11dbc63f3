import { isActive } from '../core/saga.ts';
import type { Order } from './order/order.ts';
import { isPaid, orderStatus } from './order/order.ts';
import type { Account } from './payment/payment.ts';
import type { Item } from './stock/stock.ts';
import { SHIPMENT_PREFIX, type Shipment } from './fulfillment/fulfillment.ts';
import type { Notification } from './notification/notification.ts';
import { scanAll, type Store } from '../ports/store.ts';

/** Totals over every store: what conservation checks compare with what was put in. */
export type Audit = Readonly<{
  stock: Readonly<{ items: number; available: number; reserved: number }>;
  payment: Readonly<{ users: number; credit: number; held: number }>;
  /** Shipments not cancelled, and the units in them. */
  fulfillment: Readonly<{ shipments: number; units: number; by_status: Readonly<Record<string, number>> }>;
  /** Messages to customers, by kind. */
  notification: Readonly<{ messages: number; by_kind: Readonly<Record<string, number>> }>;
  orders: Readonly<{
    count: number;
    by_status: Readonly<Record<string, number>>;
    /** Checkouts not yet ended (running or compensating). */
    active_sagas: number;
    /** Orders paid and confirmed (and on from there: shipped, delivered), their cost and units. */
    paid: number;
    paid_amount: number;
    paid_units: number;
    /** Paid orders that have shipped, and their units. */
    shipped: number;
    shipped_units: number;
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
    const orders = { count: 0, by_status: {} as Record<string, number>, active_sagas: 0, paid: 0, paid_amount: 0, paid_units: 0, shipped: 0, shipped_units: 0 };
    for await (const [, order] of scanAll<Order>(store, 'order:')) {
      orders.count++;
      const status = orderStatus(order);
      orders.by_status[status] = (orders.by_status[status] ?? 0) + 1;
      if (order.checkout && isActive(order.checkout)) orders.active_sagas++;
      if (isPaid(order)) {
        orders.paid++;
        orders.paid_amount += order.totalCost;
        const units = order.lines.reduce((sum, [, quantity]) => sum + quantity, 0);
        orders.paid_units += units;
        if (order.shipment) {
          orders.shipped++;
          orders.shipped_units += units;
        }
      }
    }
    return { orders };
  },

  async fulfillment(store: Store): Promise<Pick<Audit, 'fulfillment'>> {
    const fulfillment = { shipments: 0, units: 0, by_status: {} as Record<string, number> };
    for await (const [, shipment] of scanAll<Shipment>(store, SHIPMENT_PREFIX)) {
      fulfillment.by_status[shipment.status] = (fulfillment.by_status[shipment.status] ?? 0) + 1;
      if (shipment.status === 'cancelled') continue;
      fulfillment.shipments++;
      fulfillment.units += shipment.lines.reduce((sum, [, quantity]) => sum + quantity, 0);
    }
    return { fulfillment };
  },

  async notification(store: Store): Promise<Pick<Audit, 'notification'>> {
    const notification = { messages: 0, by_kind: {} as Record<string, number> };
    for await (const [, message] of scanAll<Notification>(store, 'notification:')) {
      notification.messages++;
      notification.by_kind[message.kind] = (notification.by_kind[message.kind] ?? 0) + 1;
    }
    return { notification };
  },

  /** The tracker holds no money or stock; its view is under /sagas. */
  async tracker(): Promise<Partial<Audit>> {
    return {};
  },
} as const;
