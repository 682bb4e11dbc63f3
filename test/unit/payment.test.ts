/**
 * paymentDecider() as given/when/then: given these documents, when this message arrives, then
 * these documents are written, these messages sent and this reply given.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Envelope, Outgoing } from '../../src/core/message.ts';
import { apiCommand, deciderSpec, NOW } from './deciderSpec.ts';
import { MAX_AMOUNT } from '../../src/domain/limits.ts';
import { paymentDecider } from '../../src/domain/payment/businessLogic.ts';
import type { Account, Hold, PaymentApiCommand } from '../../src/domain/payment/payment.ts';

const { given, keys } = deciderSpec(paymentDecider());

// ---------------------------------------------------------------------------------------------
// Payment's documents and messages

const SAGA = 'o1.1';
const account = (credit: number, held = 0): Account => ({ credit, held });
const hold = (status: Hold['status'], amount: number, userId = 'u1', detail?: string): Hold =>
  detail === undefined ? { status, userId, amount } : { status, userId, amount, detail };

function sagaCommand(type: string, step: string, amount: number, userId = 'u1'): Envelope {
  return { id: `${SAGA}:${type}`, type, sagaId: SAGA, step, correlationId: 'o1', causationId: 'o1:checkout', at: NOW, payload: { userId, amount } };
}
const authorize = (amount: number, userId = 'u1') => sagaCommand('AuthorizePayment', 'authorizePayment', amount, userId);
const capture = (amount: number) => sagaCommand('CapturePayment', 'capturePayment', amount);
const voidPayment = (amount: number) => sagaCommand('VoidPayment', 'authorizePayment', amount);
const refund = (amount: number) => sagaCommand('RefundPayment', 'refundPayment', amount);

const api = (command: PaymentApiCommand) => apiCommand(command);

const authorized: Outgoing = { type: 'PaymentAuthorized', payload: {} };
const captured: Outgoing = { type: 'PaymentCaptured', payload: {} };
const voided: Outgoing = { type: 'PaymentVoided', payload: {} };
const refunded: Outgoing = { type: 'PaymentRefunded', payload: {} };
const declined = (detail: string): Outgoing => ({ type: 'PaymentDeclined', payload: { reason: 'insufficient-credit', detail } });

// ---------------------------------------------------------------------------------------------

void describe('payment: AuthorizePayment', () => {
  void it('moves the amount from credit to held and records the hold', () => {
    given({ 'user:u1': account(100, 5) }).when(authorize(30)).then({
      writes: { 'user:u1': account(70, 35), 'hold:o1.1': hold('authorized', 30) },
      send: [authorized],
    });
  });

  void it('holds exactly all the credit', () => {
    given({ 'user:u1': account(30) }).when(authorize(30)).then({
      writes: { 'user:u1': account(0, 30), 'hold:o1.1': hold('authorized', 30) },
      send: [authorized],
    });
  });

  void it('declines when the credit is too low: only a declined hold is written', () => {
    given({ 'user:u1': account(29, 50) }).when(authorize(30)).then({
      writes: { 'hold:o1.1': hold('declined', 30, 'u1', 'user u1 has credit 29, 30 needed') },
      send: [declined('user u1 has credit 29, 30 needed')],
    });
  });

  void it('declines an unknown user', () => {
    given({}).when(authorize(30, 'ghost')).then({
      writes: { 'hold:o1.1': hold('declined', 30, 'ghost', 'user ghost does not exist') },
      send: [declined('user ghost does not exist')],
    });
  });

  void it('repeated: the same reply, nothing changes (also once captured)', () => {
    const afterAuthorize = given({ 'user:u1': account(100) }).when(authorize(30)).then({
      writes: { 'user:u1': account(70, 30), 'hold:o1.1': hold('authorized', 30) },
      send: [authorized],
    });
    given(afterAuthorize.docs).when(authorize(30)).then({ send: [authorized] });
    const afterCapture = given(afterAuthorize.docs).when(capture(30)).then({
      writes: { 'user:u1': account(70, 0), 'hold:o1.1': hold('captured', 30) },
      send: [captured],
    });
    given(afterCapture.docs).when(authorize(30)).then({ send: [authorized] });
  });

  void it('repeated after a decline: declines again and takes nothing, even if credit arrived meanwhile', () => {
    given({ 'user:u1': account(1_000), 'hold:o1.1': hold('declined', 30) }).when(authorize(30)).then({
      send: [declined('payment already declined')],
    });
  });

  void it('repeated after a decline: the very same reply (detail) as the first time', () => {
    const first = declined('user u1 has credit 10, 30 needed');
    const afterDecline = given({ 'user:u1': account(10) }).when(authorize(30)).then({
      writes: { 'hold:o1.1': hold('declined', 30, 'u1', 'user u1 has credit 10, 30 needed') },
      send: [first],
    });
    given(afterDecline.docs).when(authorize(30)).then({ send: [first] });
  });

  void it('names the hold and the account it may read', () => {
    assert.deepEqual(keys(authorize(30)), ['hold:o1.1', 'user:u1']);
    assert.deepEqual(paymentDecider().consumes, ['AuthorizePayment', 'CapturePayment', 'VoidPayment', 'RefundPayment', 'CheckFraud']);
  });
});

void describe('payment: CapturePayment', () => {
  const held = { 'user:u1': account(70, 30), 'hold:o1.1': hold('authorized', 30) };

  void it('takes the held amount for good', () => {
    given(held).when(capture(30)).then({
      writes: { 'user:u1': account(70, 0), 'hold:o1.1': hold('captured', 30) },
      send: [captured],
    });
  });

  void it('repeated: the same reply, nothing changes', () => {
    const after = given(held).when(capture(30)).then({
      writes: { 'user:u1': account(70, 0), 'hold:o1.1': hold('captured', 30) },
      send: [captured],
    });
    given(after.docs).when(capture(30)).then({ send: [captured] });
  });

  void it('without a hold: answers nothing and writes nothing (there is nothing to capture)', () => {
    given({ 'user:u1': account(100) }).when(capture(30)).then({});
  });

  void it('of a voided or refunded hold: takes nothing and answers nothing (a choreography goes no further)', () => {
    given({ 'user:u1': account(100), 'hold:o1.1': hold('voided', 30) }).when(capture(30)).then({ send: [] });
    given({ 'user:u1': account(100), 'hold:o1.1': hold('refunded', 0) }).when(capture(30)).then({ send: [] });
  });
});

void describe('payment: VoidPayment', () => {
  const held = { 'user:u1': account(70, 30), 'hold:o1.1': hold('authorized', 30) };

  void it('gives the held amount back', () => {
    given(held).when(voidPayment(30)).then({
      writes: { 'user:u1': account(100, 0), 'hold:o1.1': hold('voided', 30) },
      send: [voided],
    });
  });

  void it('repeated: the same reply, nothing changes', () => {
    const after = given(held).when(voidPayment(30)).then({
      writes: { 'user:u1': account(100, 0), 'hold:o1.1': hold('voided', 30) },
      send: [voided],
    });
    given(after.docs).when(voidPayment(30)).then({ send: [voided] });
  });

  void it('of a declined hold: nothing to give back', () => {
    given({ 'user:u1': account(10), 'hold:o1.1': hold('declined', 30) }).when(voidPayment(30)).then({ send: [voided] });
  });

  void it('before its authorize: leaves a tombstone, so the late authorize is declined and takes nothing', () => {
    const afterVoid = given({ 'user:u1': account(100) }).when(voidPayment(30)).then({
      writes: { 'hold:o1.1': hold('voided', 0) },
      send: [voided],
    });
    given(afterVoid.docs).when(authorize(30)).then({ send: [declined('payment already voided')] });
  });
});

void describe('payment: RefundPayment', () => {
  const paid = { 'user:u1': account(70, 0), 'hold:o1.1': hold('captured', 30) };

  void it('gives a captured amount back as credit', () => {
    given(paid).when(refund(30)).then({
      writes: { 'user:u1': account(100, 0), 'hold:o1.1': hold('refunded', 30) },
      send: [refunded],
    });
  });

  void it('repeated: the same reply, nothing changes', () => {
    const after = given(paid).when(refund(30)).then({
      writes: { 'user:u1': account(100, 0), 'hold:o1.1': hold('refunded', 30) },
      send: [refunded],
    });
    given(after.docs).when(refund(30)).then({ send: [refunded] });
  });

  void it('of a hold that was only authorized: drops the hold, so a late capture takes nothing', () => {
    const dropped = given({ 'user:u1': account(70, 30), 'hold:o1.1': hold('authorized', 30) }).when(refund(30)).then({
      writes: { 'user:u1': account(100, 0), 'hold:o1.1': hold('voided', 30) },
      send: [refunded],
    });
    given(dropped.docs).when(capture(30)).then({ send: [] });
  });

  void it('before anything was taken: leaves a tombstone, so a late authorize is declined', () => {
    const afterRefund = given({ 'user:u1': account(100) }).when(refund(30)).then({
      writes: { 'hold:o1.1': hold('refunded', 0) },
      send: [refunded],
    });
    given(afterRefund.docs).when(authorize(30)).then({ send: [declined('payment already refunded')] });
  });
});

void describe('payment: API commands', () => {
  void it('CreateUser: an account with no credit', () => {
    given({}).when(api({ type: 'CreateUser', userId: 'u1' })).then({
      writes: { 'user:u1': account(0, 0) },
      reply: { ok: true, value: { user_id: 'u1' } },
    });
  });

  void it('AddFunds: adds to the credit', () => {
    given({ 'user:u1': account(10, 5) }).when(api({ type: 'AddFunds', userId: 'u1', amount: 25 })).then({
      writes: { 'user:u1': account(35, 5) },
      reply: { ok: true, value: { credit: 35 } },
    });
  });

  void it('AddFunds: up to exactly MAX_AMOUNT, not one above; above writes nothing', () => {
    given({ 'user:u1': account(10) }).when(api({ type: 'AddFunds', userId: 'u1', amount: MAX_AMOUNT - 10 })).then({
      writes: { 'user:u1': account(MAX_AMOUNT) },
      reply: { ok: true, value: { credit: MAX_AMOUNT } },
    });
    given({ 'user:u1': account(10) }).when(api({ type: 'AddFunds', userId: 'u1', amount: MAX_AMOUNT - 9 })).then({
      reply: { ok: false, code: 'amount-too-large', detail: `Credit of user u1 would exceed ${MAX_AMOUNT}.` },
    });
  });

  void it('AddFunds: counts the held amount, which a void gives back', () => {
    given({ 'user:u1': account(0, 100) }).when(api({ type: 'AddFunds', userId: 'u1', amount: MAX_AMOUNT })).then({
      reply: { ok: false, code: 'amount-too-large', detail: `Credit of user u1 would exceed ${MAX_AMOUNT}.` },
    });
  });

  void it('AddFunds: an unknown user', () => {
    given({}).when(api({ type: 'AddFunds', userId: 'ghost', amount: 1 })).then({
      reply: { ok: false, code: 'user-not-found', detail: 'User ghost does not exist.' },
    });
  });

  void it('Pay: takes from the credit, down to zero', () => {
    given({ 'user:u1': account(30, 7) }).when(api({ type: 'Pay', userId: 'u1', amount: 30 })).then({
      writes: { 'user:u1': account(0, 7) },
      reply: { ok: true, value: { credit: 0 } },
    });
  });

  void it('Pay: more than the credit fails and writes nothing (held money is not credit)', () => {
    given({ 'user:u1': account(30, 100) }).when(api({ type: 'Pay', userId: 'u1', amount: 31 })).then({
      reply: { ok: false, code: 'insufficient-credit', detail: 'User u1 has credit 30, 31 asked.' },
    });
  });

  void it('Pay: an unknown user', () => {
    given({}).when(api({ type: 'Pay', userId: 'ghost', amount: 1 })).then({
      reply: { ok: false, code: 'user-not-found', detail: 'User ghost does not exist.' },
    });
  });

  void it('InitUsers: users "0" … "count-1" with the given credit', () => {
    given({}).when(api({ type: 'InitUsers', count: 3, credit: 50 })).then({
      writes: { 'user:0': account(50), 'user:1': account(50), 'user:2': account(50) },
      reply: { ok: true, value: { msg: 'Batch init for 3 users successful', replaced: 0 } },
    });
  });

  void it('InitUsers replaces no account while a checkout holds credit on one: 409 fixture-conflict', () => {
    const step = given({ 'user:0': account(5), 'user:2': account(5, 3) }).when(api({ type: 'InitUsers', count: 3, credit: 50 }));
    assert.deepEqual(step.decision.writes ?? {}, {});
    assert.equal(step.decision.reply?.ok === false && step.decision.reply.code, 'fixture-conflict');
    assert.match(step.decision.reply?.ok === false ? step.decision.reply.detail : '', /2 has credit held/);
  });

  void it('names the one account an API command reads, and every account InitUsers would replace', () => {
    assert.deepEqual(keys(api({ type: 'Pay', userId: 'u1', amount: 1 })), ['user:u1']);
    assert.deepEqual(keys(api({ type: 'InitUsers', count: 3, credit: 1 })), ['user:0', 'user:1', 'user:2']);
  });
});
