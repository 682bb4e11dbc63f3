/**
 * The real bugs the simulator found, each as a given/when/then on the decider it was fixed in
 * (docs/simulation.md, "What it found").
 */
import { describe, it } from 'node:test';
import type { Envelope } from '../../src/core/message.ts';
import { paymentDecider } from '../../src/domain/payment/businessLogic.ts';
import { deciderSpec, NOW } from '../unit/deciderSpec.ts';

const { given } = deciderSpec(paymentDecider());
const voidPayment: Envelope = {
  id: 'o1.1:void', type: 'VoidPayment', sagaId: 'o1.1', step: 'authorizePayment', correlationId: 'o1', causationId: 'o1:abort', at: NOW, payload: { userId: 'u1', amount: 30 },
};

describe('payment: a void that comes after the capture (choreography, seed 19)', () => {
  it('gives the captured money back: in a choreography the owner can abort a saga it still sees at the authorization', () => {
    given({ 'user:u1': { credit: 70, held: 0 }, 'hold:o1.1': { status: 'captured', userId: 'u1', amount: 30 } }).when(voidPayment).then({
      writes: { 'user:u1': { credit: 100, held: 0 }, 'hold:o1.1': { status: 'refunded', userId: 'u1', amount: 30 } },
      send: [{ type: 'PaymentVoided', payload: {} }],
    });
  });

  it('gives nothing twice: a repeated void of the refunded hold changes nothing', () => {
    given({ 'user:u1': { credit: 100, held: 0 }, 'hold:o1.1': { status: 'refunded', userId: 'u1', amount: 30 } }).when(voidPayment).then({
      send: [{ type: 'PaymentVoided', payload: {} }],
    });
  });
});

describe("tracker: an abort that comes before the saga's start (choreography, seed 1000539)", () => {
  it('the saga API ends the saga as its order does', async () => {
    const { simulate } = await import('../../src/sim/run.ts');
    const result = await simulate(1_000_539);
    if (result.violations.length > 0) throw new Error(result.violations.join('\n'));
  });
});
