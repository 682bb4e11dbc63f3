/**
 * Drives orderDecider(checkoutSaga()) for given/when/then tests: given these documents, when
 * this message arrives, then these documents are written, these messages sent, these timers
 * cancelled and this reply given. Participants' replies are built from the commands the order
 * sent, the way the runtime builds them (envelopesFrom), so they carry the saga id, step and
 * order id.
 */
import assert from 'node:assert/strict';
import type { Decision, Read, Reply } from '../../src/core/decider.ts';
import { envelopesFrom, type Envelope, type Outgoing } from '../../src/core/message.ts';
import type { SagaState } from '../../src/core/saga.ts';
import { orderDecider } from '../../src/domain/order/businessLogic.ts';
import { checkoutSaga } from '../../src/domain/order/checkoutSaga.ts';
import type { CheckoutContext, Order, OrderApiCommand } from '../../src/domain/order/order.ts';
import type { Line } from '../../src/domain/stock/stock.ts';

// ---------------------------------------------------------------------------------------------
// given / when / then for the order Decider

export type Docs = Readonly<Record<string, unknown>>;
export type Then = Readonly<{ writes?: Docs; send?: readonly Outgoing[]; cancel?: readonly string[]; reply?: Reply }>;

export const NOW = 1_700_000_000_000;
export const decider = orderDecider(checkoutSaga());

/** One decision: what it decided, the documents after it and the envelopes it sent. */
export type Step = Readonly<{ decision: Decision; docs: Docs; sent: readonly Envelope[] }>;

export function decide(docs: Docs, message: Envelope, now: number): Step {
  const keys = new Set(decider.keys(message));
  const read: Read = <T>(key: string): T | undefined => {
    assert.ok(keys.has(key), `${message.type} read ${key}, which keys() did not name`);
    return docs[key] as T | undefined;
  };
  const decision = decider.decide(message, read, now);
  const after: Record<string, unknown> = { ...docs };
  for (const [key, doc] of Object.entries(decision.writes ?? {})) {
    if (doc === null) delete after[key];
    else after[key] = doc;
  }
  return { decision, docs: after, sent: envelopesFrom(message, decision.send ?? [], now) };
}

export function given(docs: Docs) {
  return {
    when(message: Envelope, now = NOW) {
      const step = decide(docs, message, now);
      return {
        ...step,
        /** Asserts the whole decision (absent parts: nothing). */
        then(expected: Then): Step {
          assert.deepEqual(step.decision.writes ?? {}, expected.writes ?? {}, 'writes');
          assert.deepEqual(step.decision.send ?? [], expected.send ?? [], 'send');
          assert.deepEqual(step.decision.cancel ?? [], expected.cancel ?? [], 'cancel');
          assert.deepEqual(step.decision.reply, expected.reply, 'reply');
          return step;
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Orders and messages

export const LINES: readonly Line[] = [['i1', 2], ['i2', 1]];
export const order = (extra: Partial<Order> = {}): Order => ({ userId: 'u1', lines: LINES, totalCost: 30, attempts: 0, ...extra });
export const CTX: CheckoutContext = { orderId: 'o1', userId: 'u1', lines: LINES, amount: 30 };

export function api(command: OrderApiCommand): Envelope {
  const correlationId = 'orderId' in command ? command.orderId : '';
  return { id: `cmd:${command.type}`, type: command.type, sagaId: '', step: '', correlationId, causationId: '', at: NOW, payload: command };
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
