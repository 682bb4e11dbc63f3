/**
 * Drives orchestratedOrders(checkoutSaga()) through deciderSpec for given/when/then tests: given these documents, when
 * this message arrives, then these documents are written, these messages sent, these timers
 * cancelled and this reply given. Participants' replies are built from the commands the order
 * sent, the way the runtime builds them (envelopesFrom), so they carry the saga id, step and
 * order id.
 */
import { sagaVersions } from '../../src/core/saga.ts';
import assert from 'node:assert/strict';
import { envelopesFrom, type Envelope } from '../../src/core/message.ts';
import type { SagaState } from '../../src/core/saga.ts';
import { orchestratedOrders } from '../../src/domain/order/orchestration.ts';
import { checkoutSaga } from '../../src/domain/order/checkoutSaga.ts';
import type { CheckoutContext, Order, OrderApiCommand } from '../../src/domain/order/order.ts';
import type { Line } from '../../src/domain/stock/stock.ts';
import { apiCommand, deciderSpec, NOW, type Docs, type Step, type Then } from './deciderSpec.ts';

export { NOW, type Docs, type Step, type Then };

// ---------------------------------------------------------------------------------------------
// given / when / then for the orchestrating order decider

export const decider = deciderSpec(orchestratedOrders(sagaVersions(checkoutSaga(), []), { reservationTtlMs: 0 }));
export const { decide, given } = decider;

// ---------------------------------------------------------------------------------------------
// Orders and messages

export const LINES: readonly Line[] = [['i1', 2], ['i2', 1]];
export const order = (extra: Partial<Order> = {}): Order => ({ userId: 'u1', lines: LINES, totalCost: 30, attempts: 0, ...extra });
export const CTX: CheckoutContext = { orderId: 'o1', userId: 'u1', lines: LINES, amount: 30 };

export function api(command: OrderApiCommand) {
  return apiCommand(command, 'orderId' in command ? command.orderId : '', `cmd:${command.type}`);
}
/** A checkout request; the edge names the saga a new attempt would get. */
export const checkoutCommand = (orderId = 'o1', sagaId = `${orderId}.1`) => api({ type: 'Checkout', orderId, sagaId });

/** A participant's reply to `command`, as the runtime builds it. */
export function replyTo(command: Envelope | undefined, type: string, payload: unknown = {}, at = NOW): Envelope {
  assert.ok(command, `no command to reply ${type} to`);
  const [reply] = envelopesFrom(command, [{ type, payload }], at);
  assert.ok(reply);
  return reply;
}

export const sentOf = (step: Step, type: string): Envelope => {
  const found = step.sent.find((m) => m.type === type);
  assert.ok(found, `expected ${type} among ${step.sent.map((m) => m.type).join(', ')}`);
  return found;
};

export const checkoutOf = (docs: Docs, orderId = 'o1'): SagaState<CheckoutContext> | undefined => (docs[`order:${orderId}`] as Order | undefined)?.checkout;

/**
 * o1 checked out: started at NOW (ReserveStock and AuthorizePayment at once), each reply a
 * millisecond after the last: stock reserved, payment authorized (CapturePayment and
 * CommitStock at once), payment captured, stock committed.
 */
export function checkedOut(docs: Docs = { 'order:o1': order() }) {
  const started = decide(docs, checkoutCommand(), NOW);
  const reserved = decide(started.docs, replyTo(sentOf(started, 'ReserveStock'), 'StockReserved'), NOW + 1);
  const authorized = decide(reserved.docs, replyTo(sentOf(started, 'AuthorizePayment'), 'PaymentAuthorized'), NOW + 2);
  const captured = decide(authorized.docs, replyTo(sentOf(authorized, 'CapturePayment'), 'PaymentCaptured'), NOW + 3);
  const committed = decide(captured.docs, replyTo(sentOf(authorized, 'CommitStock'), 'StockCommitted'), NOW + 4);
  return { started, reserved, authorized, captured, committed };
}

export const OUT_OF_STOCK = 'item i1 has 1 in stock, 2 wanted';

/** o1's first checkout failed: out of stock at NOW + 1, the payment voided at NOW + 2. */
export function failedOnce() {
  const started = decide({ 'order:o1': order() }, checkoutCommand(), NOW);
  const rejected = decide(started.docs, replyTo(sentOf(started, 'ReserveStock'), 'StockReservationFailed', { reason: 'out-of-stock', detail: OUT_OF_STOCK }), NOW + 1);
  const voided = decide(rejected.docs, replyTo(sentOf(rejected, 'VoidPayment'), 'PaymentVoided'), NOW + 2);
  return { started, rejected, voided, docs: voided.docs };
}
