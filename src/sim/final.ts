import { isActive } from '../core/saga.ts';
import { orderSagas } from '../domain/order/api.ts';
import { notificationKey } from '../domain/notification/notification.ts';
import { shipmentKey, trackingNumberOf, type Shipment } from '../domain/fulfillment/fulfillment.ts';
import { checkoutsOf, ORDER_PREFIX, succeeded, CheckoutSteps, type Order } from '../domain/order/order.ts';
import type { Hold } from '../domain/payment/payment.ts';
import type { Reservation } from '../domain/stock/stock.ts';
import { trackedSagas } from '../domain/tracker/tracker.ts';
import type { Invariants } from './checks.ts';
import { outside } from './store.ts';
import type { SimSystem } from './system.ts';

/** What a client was answered: 200 paid, 409 failed (took nothing), 504 still running. */
export type ClientAnswer = Readonly<{ orderId: string; sagaId?: string; status: 200 | 409 | 504; detail: string }>;

export type Ending = Readonly<{
  system: SimSystem;
  invariants: Invariants;
  answers: readonly ClientAnswer[];
  /** Whether everything settled within `bound` of the faults' end. */
  quiescent: boolean;
  bound: number;
  clientsDone: number;
  clients: number;
}>;

/**
 * The invariants of the end of a run, once the faults have stopped and everything settled:
 * every saga ended, and ended as its participants did (paid and taken, or nothing taken), the
 * customers' answers were true, nothing is left held, every shipment and notification is there
 * once, and the saga API shows every attempt.
 */
export async function finalChecks({ system, invariants, answers, quiescent, bound, clientsDone, clients }: Ending): Promise<void> {
  const fail = (what: string) => invariants.fail(what);
  const docs = (service: string) => system.stores.get(service)?.docs ?? new Map<string, unknown>();
  const orders = docs('orders');
  const holds = docs('payment');
  const stock = docs('stock');
  const shipments = docs('fulfillment');
  const notifications = docs('notification');
  const version2 = (def: { version: number } | undefined) => (def?.version ?? 1) === 2;

  if (!quiescent) {
    const active = [...orders.values()].map((o) => (o as Order).checkout).filter((s) => s !== undefined && isActive(s));
    for (const saga of active.slice(0, 5)) if (saga) fail(`saga ${saga.id} is still ${saga.status} ${bound} ms after the faults stopped`);
    if (active.length === 0) fail(`the system did not settle within ${bound} ms of the faults' end (clients done ${clientsDone}/${clients}, bus idle ${system.transport.idle})`);
    return;
  }

  const sagas = new Map<string, { order: Order; status: string }>();
  const liveShipments = new Map<string, number>();
  for (const doc of shipments.values()) {
    const s = doc as Shipment;
    if (s.status !== 'cancelled') liveShipments.set(s.orderId, (liveShipments.get(s.orderId) ?? 0) + 1);
  }
  for (const [key, doc] of orders) {
    if (!key.startsWith(ORDER_PREFIX)) continue;
    const order = doc as Order;
    const orderId = key.slice(ORDER_PREFIX.length);
    if ((liveShipments.get(orderId) ?? 0) > 1) fail(`order ${orderId} has ${liveShipments.get(orderId)} shipments`);
    for (const saga of checkoutsOf(order)) {
      sagas.set(saga.id, { order, status: saga.status });
      const hold = holds.get(`hold:${saga.id}`) as Hold | undefined;
      const reservation = stock.get(`reservation:${saga.id}`) as Reservation | undefined;
      const shipment = shipments.get(shipmentKey(trackingNumberOf(saga.id))) as Shipment | undefined;
      const told = (kind: Parameters<typeof notificationKey>[0]['kind']) => notifications.has(notificationKey({ userId: order.userId, orderId, sagaId: saga.id, kind }));
      if (saga.status === 'completed') {
        if (hold?.status !== 'captured') fail(`saga ${saga.id} completed, but its payment is ${hold?.status ?? 'missing'}`);
        if (reservation?.status !== 'committed') fail(`saga ${saga.id} completed, but its stock is ${reservation?.status ?? 'missing'}`);
        if (!told('confirmed')) fail(`saga ${saga.id} completed, but the customer was never told it was confirmed`);
        if (version2(saga.definition)) {
          if (!shipment || shipment.status === 'cancelled') fail(`saga ${saga.id} completed, but its shipment is ${shipment?.status ?? 'missing'}`);
          if (order.shipment?.trackingNumber !== trackingNumberOf(saga.id)) fail(`saga ${saga.id} completed, but its order has shipment ${order.shipment?.trackingNumber ?? 'none'}`);
          if (!told('shipped')) fail(`saga ${saga.id} shipped, but the customer was never told`);
        }
      } else if (saga.status === 'failed') {
        if (hold?.status === 'captured' || hold?.status === 'authorized') fail(`saga ${saga.id} failed, but its payment is still ${hold.status}`);
        if (reservation?.status === 'reserved' || reservation?.status === 'committed') fail(`saga ${saga.id} failed, but its stock is still ${reservation.status}`);
        if (shipment && shipment.status !== 'cancelled') fail(`saga ${saga.id} failed, but its shipment is ${shipment.status}`);
        if (!told('failed') && !told('cancelled')) fail(`saga ${saga.id} failed, but the customer was never told`);
        if (succeeded(saga, CheckoutSteps.capturePayment)) {
          if (hold?.status !== 'refunded') fail(`saga ${saga.id} took the money and failed, but the payment is ${hold?.status ?? 'missing'}, not refunded`);
          if (!told('refunded')) fail(`saga ${saga.id} refunded the customer, who was never told`);
        }
      } else fail(`saga ${saga.id} is still ${saga.status} although the system settled`);
    }
  }
  for (const [key, doc] of holds) if (key.startsWith('hold:') && (doc as Hold).status === 'authorized') fail(`${key} still holds ${(doc as Hold).amount} at the end`);
  for (const [key, doc] of stock) if (key.startsWith('reservation:') && (doc as Reservation).status === 'reserved') fail(`${key} still reserves stock at the end`);

  for (const answer of answers) {
    if (answer.sagaId === undefined) continue;
    const saga = sagas.get(answer.sagaId);
    const hold = holds.get(`hold:${answer.sagaId}`) as Hold | undefined;
    if (!saga) {
      fail(`checkout ${answer.sagaId} was answered ${answer.status}, but its order does not keep it`);
      continue;
    }
    if (answer.status === 200 && saga.status !== 'completed' && !(saga.order.cancelled?.sagaId === answer.sagaId && hold?.status === 'refunded')) {
      fail(`checkout ${answer.sagaId} was answered 2xx, but it is ${saga.status} with payment ${hold?.status ?? 'none'}`);
    }
    if (answer.status === 409 && (hold?.status === 'captured' || saga.status === 'completed')) fail(`checkout ${answer.sagaId} was answered 4xx, but took the money (${hold?.status}, saga ${saga.status})`);
  }

  for (const [key, what] of invariants.expected) if (!notifications.has(key)) fail(`notification ${key} (from ${what}) was lost`);

  // The saga API shows every attempt: the orders' (or, in choreography, the tracker's).
  const tracker = system.stores.get('tracker');
  const reader = (service: string) => {
    const store = system.stores.get(service);
    if (!store) throw new Error(`no ${service}`);
    return store.view(outside(service));
  };
  const source = tracker ? trackedSagas(reader('tracker')) : orderSagas(reader('orders'));
  const listed = new Map<string, string>();
  for await (const saga of source.list('')) if (saga) listed.set(saga.id, saga.status);
  for (const [id, { status }] of sagas) {
    const shown = listed.get(id);
    if (shown === undefined) fail(`the saga API does not show attempt ${id}`);
    else if (shown !== status) fail(`the saga API shows ${id} ${shown}, but it ended ${status}`);
  }
}
