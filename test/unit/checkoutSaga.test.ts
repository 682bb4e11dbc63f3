/**
 * The real checkout saga (src/domain/order/checkoutSaga.ts) on the saga core, as
 * given/when/then (see sagaDriver.ts): two groups of two concurrent steps,
 * [reserveStock, authorizePayment] | pivot | [capturePayment, commitStock].
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Outgoing } from '../../src/core/message.ts';
import type { StepEvent } from '../../src/core/saga.ts';
import { checkoutSaga, defaultCheckoutPolicy } from '../../src/domain/order/checkoutSaga.ts';
import type { CheckoutContext } from '../../src/domain/order/order.ts';
import {
  abort, awaitingOf, begin, commandsIn, given, next, pendingOf, play, repliesOf, then, timer, timerFires, when, type Input,
} from './sagaDriver.ts';

const checkout = checkoutSaga();
const { done, failed, undone } = repliesOf(checkout);
const ctx: CheckoutContext = { orderId: 'o1', userId: 'u1', lines: [['i1', 2], ['i2', 1]], amount: 30 };
const id = 'o1.1';
const lines = { lines: ctx.lines };
const charge = { userId: 'u1', amount: 30 };
const send = (type: string, name: string, payload: unknown): Outgoing => ({ type, payload, sagaId: id, step: name });

const reserve = send('ReserveStock', 'reserveStock', lines);
const authorize = send('AuthorizePayment', 'authorizePayment', charge);
const capture = send('CapturePayment', 'capturePayment', charge);
const commit = send('CommitStock', 'commitStock', lines);
const release = send('ReleaseStock', 'reserveStock', lines);
const voidPayment = send('VoidPayment', 'authorizePayment', charge);
const timerOf = (n: number, seq: number, deliverAt: number) => timer(n, seq, deliverAt, id);

const run = (inputs: readonly Input[]) => given(checkout, ctx, inputs, id);
const on = (inputs: readonly Input[], input: Input) => when(checkout, run(inputs), input);

const OUT_OF_STOCK = 'item i1 has 1 in stock, 2 wanted';
const NO_CREDIT = 'user u1 has credit 5, 30 needed';

void describe('checkoutSaga(): the two groups', () => {
  void it('starts by sending ReserveStock and AuthorizePayment at once, with one timer', () => {
    const { run: started, transition } = begin(checkout, ctx, id);
    then(transition, { send: [reserve, authorize, timerOf(0, 0, 10_000)] });
    assert.deepEqual(awaitingOf(started.state), { step: 0, awaiting: [0, 1] });
    assert.deepEqual(started.state.history, [
      { step: 'reserveStock', event: 'started', at: 0 },
      { step: 'authorizePayment', event: 'started', at: 0 },
    ]);
    assert.equal(checkout.pivot, 2, 'the pivot is the first step of the second group');
  });

  void it('one success of the two sends nothing and waits for the other (either one first)', () => {
    const reserved = then(on([], done('reserveStock', 10)), { send: [] });
    assert.deepEqual(awaitingOf(reserved.state), { step: 0, awaiting: [1] });
    assert.deepEqual(reserved.state.history.at(-1), { step: 'reserveStock', event: 'succeeded', at: 10 });

    const authorized = then(on([], done('authorizePayment', 10)), { send: [] });
    assert.deepEqual(awaitingOf(authorized.state), { step: 0, awaiting: [0] });
    assert.deepEqual(authorized.state.history.at(-1), { step: 'authorizePayment', event: 'succeeded', at: 10 });
  });

  void it('the second success sends CapturePayment and CommitStock at once (either order)', () => {
    for (const [first, second] of [['reserveStock', 'authorizePayment'], ['authorizePayment', 'reserveStock']] as const) {
      const both = then(on([done(first, 10)], done(second, 20)), { send: [capture, commit] });
      assert.deepEqual(awaitingOf(both.state), { step: 2, awaiting: [2, 3] }, `${first} then ${second}`);
      assert.deepEqual(both.state.history.slice(-3), [
        { step: second, event: 'succeeded', at: 20 },
        { step: 'capturePayment', event: 'started', at: 20 },
        { step: 'commitStock', event: 'started', at: 20 },
      ]);
    }
  });

  void it('completes once capture and commit both succeeded, cancelling the live timer', () => {
    const { run: ended, transitions } = play(checkout, ctx, [
      done('authorizePayment', 10), done('reserveStock', 20), done('commitStock', 30), done('capturePayment', 40),
    ], id);
    assert.deepEqual(transitions.map((t) => t.send), [[reserve, authorize, timerOf(0, 0, 10_000)], [], [capture, commit], [], []]);
    assert.deepEqual(transitions.map((t) => t.outcome), [undefined, undefined, undefined, undefined, { status: 'completed' }]);
    assert.deepEqual(transitions.map((t) => t.cancel), [[], [], [], [], [`${id}/timer/0`]]);
    const history: StepEvent[] = [
      { step: 'reserveStock', event: 'started', at: 0 },
      { step: 'authorizePayment', event: 'started', at: 0 },
      { step: 'authorizePayment', event: 'succeeded', at: 10 },
      { step: 'reserveStock', event: 'succeeded', at: 20 },
      { step: 'capturePayment', event: 'started', at: 20 },
      { step: 'commitStock', event: 'started', at: 20 },
      { step: 'commitStock', event: 'succeeded', at: 30 },
      { step: 'capturePayment', event: 'succeeded', at: 40 },
    ];
    assert.deepEqual(ended.state, { status: 'completed', id, definition: { name: 'checkout', version: 1 }, ctx, startedAt: 0, endedAt: 40, history });
  });
});

void describe('checkoutSaga(): duplicate and late replies', () => {
  void it('a duplicate success of a member that already succeeded is ignored, while the other is awaited', () => {
    assert.equal(on([done('reserveStock', 10)], done('reserveStock', 11)), undefined);
    assert.equal(on([done('authorizePayment', 10)], done('authorizePayment', 11)), undefined);
    assert.equal(on([done('reserveStock', 10)], failed('reserveStock', 11)), undefined, 'a late failure of it too');
  });

  void it('a duplicate success of the first group once the second runs, and of a capture while the commit is awaited', () => {
    const second = [done('reserveStock', 10), done('authorizePayment', 20)];
    assert.equal(on(second, done('reserveStock', 21)), undefined);
    assert.equal(on(second, done('authorizePayment', 21)), undefined);
    assert.equal(on(second, failed('authorizePayment', 21)), undefined);
    assert.equal(on([...second, done('capturePayment', 30)], done('capturePayment', 31)), undefined);
  });

  void it('a reply of the second group before it started is ignored', () => {
    assert.equal(on([done('reserveStock', 10)], done('capturePayment', 11)), undefined);
    assert.equal(on([done('reserveStock', 10)], done('commitStock', 11)), undefined);
  });
});

void describe('checkoutSaga(): a business failure in the first group', () => {
  type Case = Readonly<{ name: string; given: Input[]; fails: string; reason: string; undo: string; command: Outgoing }>;
  const cases: readonly Case[] = [
    {
      name: 'stock fails while the authorization is awaited: voids it (it may yet happen)',
      given: [], fails: 'reserveStock', reason: OUT_OF_STOCK, undo: 'authorizePayment', command: voidPayment,
    },
    {
      name: 'stock fails after the payment was authorized: voids it',
      given: [done('authorizePayment', 5)], fails: 'reserveStock', reason: OUT_OF_STOCK, undo: 'authorizePayment', command: voidPayment,
    },
    {
      name: 'payment declined while the reservation is awaited: releases it (it may yet happen)',
      given: [], fails: 'authorizePayment', reason: NO_CREDIT, undo: 'reserveStock', command: release,
    },
    {
      name: 'payment declined after the stock was reserved: releases it',
      given: [done('reserveStock', 5)], fails: 'authorizePayment', reason: NO_CREDIT, undo: 'reserveStock', command: release,
    },
  ];

  for (const c of cases) {
    void it(`${c.name}, and fails only once that is done`, () => {
      const before = run(c.given);
      const failing = then(when(checkout, before, failed(c.fails, 10, c.reason)), { send: [c.command] });
      assert.deepEqual(pendingOf(failing.state), [checkout.steps.findIndex((s) => s.name === c.undo)]);
      assert.deepEqual(failing.state.history.slice(-2), [
        { step: c.fails, event: 'failed', at: 10, detail: c.reason },
        { step: c.undo, event: 'compensating', at: 10 },
      ]);
      then(when(checkout, next(before, failing), undone(c.undo, 20)), {
        send: [], cancel: [`${id}/timer/0`], outcome: { status: 'failed', reason: c.reason },
      });
    });
  }

  void it('while compensating, the other member\'s late success or failure and a repeated failure are ignored', () => {
    const voiding = run([failed('reserveStock', 10, OUT_OF_STOCK)]);
    assert.deepEqual(pendingOf(voiding.state), [1]);
    for (const late of [done('authorizePayment', 15), failed('authorizePayment', 15), failed('reserveStock', 15), done('reserveStock', 15)]) {
      assert.equal(when(checkout, voiding, late), undefined, JSON.stringify(late));
    }
    const releasing = run([failed('authorizePayment', 10, NO_CREDIT)]);
    assert.deepEqual(pendingOf(releasing.state), [0]);
    for (const late of [done('reserveStock', 15), failed('reserveStock', 15), failed('authorizePayment', 15), done('authorizePayment', 15)]) {
      assert.equal(when(checkout, releasing, late), undefined, JSON.stringify(late));
    }
  });

  void it('once failed, the other member\'s late replies are ignored too', () => {
    const ended = run([failed('reserveStock', 10), undone('authorizePayment', 20)]);
    assert.equal(ended.state.status, 'failed');
    assert.equal(when(checkout, ended, done('authorizePayment', 30)), undefined);
    assert.equal(when(checkout, ended, failed('authorizePayment', 30)), undefined);
    assert.equal(when(checkout, ended, undone('authorizePayment', 30)), undefined);
  });

  void it('abort while the first group runs voids and releases (either may have happened)', () => {
    const started = run([]);
    const aborted = then(when(checkout, started, abort('reservation expired', 20)), { send: [voidPayment] });
    const releasing = next(started, aborted);
    const released = then(when(checkout, releasing, undone('authorizePayment', 30)), { send: [release] });
    then(when(checkout, next(releasing, released), undone('reserveStock', 40)), {
      send: [], cancel: [`${id}/timer/0`], outcome: { status: 'failed', reason: 'reservation expired' },
    });
  });
});

void describe('checkoutSaga(): timers', () => {
  void it('a timer without any reply resends both commands of the group', () => {
    const retried = then(on([], timerFires(10_000)), { send: [reserve, authorize, timerOf(1, 0, 21_000)] });
    assert.deepEqual(retried.state.history.slice(-2), [
      { step: 'reserveStock', event: 'retried', at: 10_000, detail: 'try 2' },
      { step: 'authorizePayment', event: 'retried', at: 10_000, detail: 'try 2' },
    ]);
  });

  void it('one success is progress: the timer waits again; then only the awaited member is resent', () => {
    const reserved = run([done('reserveStock', 10)]);
    const rearmed = then(when(checkout, reserved, timerFires(10_000)), { send: [timerOf(1, 1, 10_010)] });
    const retried = then(when(checkout, next(reserved, rearmed), timerFires(10_010)), { send: [authorize, timerOf(2, 1, 21_010)] });
    assert.deepEqual(retried.state.history.at(-1), { step: 'authorizePayment', event: 'retried', at: 10_010, detail: 'try 2' });
    assert.equal(retried.state.history.filter((e) => e.event === 'retried').length, 1, 'reserveStock is not retried');
  });

  void it('before the pivot, a group that times out (maxAttempts 2) is compensated whole: void, then release', () => {
    const tried = run([timerFires(10_000)]);
    const timedOut = then(when(checkout, tried, timerFires(21_000)), { send: [voidPayment, timerOf(2, 1, 31_000)] });
    assert.deepEqual(timedOut.state.history.slice(-3), [
      { step: 'reserveStock', event: 'timed-out', at: 21_000, detail: 'no reply after 2 tries' },
      { step: 'authorizePayment', event: 'timed-out', at: 21_000, detail: 'no reply after 2 tries' },
      { step: 'authorizePayment', event: 'compensating', at: 21_000 },
    ]);
    const voiding = next(tried, timedOut);
    const releasing = next(voiding, then(when(checkout, voiding, undone('authorizePayment', 21_100)), { send: [release] }));
    then(when(checkout, releasing, undone('reserveStock', 21_200)), {
      send: [], cancel: [`${id}/timer/2`], outcome: { status: 'failed', reason: 'step reserveStock, authorizePayment timed out' },
    });
  });

  void it('before the pivot, a timeout also undoes the member that succeeded: void, then release', () => {
    const tried = run([done('reserveStock', 10), timerFires(10_000), timerFires(10_010)]);
    assert.equal(tried.state.status === 'running' && tried.state.tries, 2, 'one retry (maxAttempts 2)');
    const timedOut = when(checkout, tried, timerFires(21_010));
    assert.ok(timedOut);
    assert.deepEqual(commandsIn(timedOut), [voidPayment]);
    assert.deepEqual(timedOut.state.history.filter((e) => e.event === 'timed-out').map((e) => e.step), ['authorizePayment']);
    const voiding = next(tried, timedOut);
    const releasing = next(voiding, then(when(checkout, voiding, undone('authorizePayment', 21_100)), { send: [release] }));
    then(when(checkout, releasing, undone('reserveStock', 21_200)), {
      send: [], cancel: [`${id}/timer/3`], outcome: { status: 'failed', reason: 'step authorizePayment timed out' },
    });
  });

  void it('after the pivot: capture and commit are both retried for ever with the default backoff (1 s, 5 s, 30 s, 30 s…)', () => {
    let current = run([done('reserveStock', 10), done('authorizePayment', 20), timerFires(10_000)]); // re-armed until 10 020
    const timeout = defaultCheckoutPolicy.stepTimeoutMs;
    let at = 10_020;
    let n = 2;
    for (const wait of [timeout + 1_000, timeout + 5_000, timeout + 30_000, timeout + 30_000, timeout + 30_000]) {
      const transition = then(when(checkout, current, timerFires(at)), { send: [capture, commit, timerOf(n, 2, at + wait)] });
      assert.equal(transition.state.status, 'running');
      current = next(current, transition);
      at += wait;
      n++;
    }
    assert.equal(when(checkout, current, abort('too slow', at)), undefined, 'past the pivot nothing is undone');
  });

  void it('after the pivot, once the capture succeeded only the commit is retried', () => {
    const captured = run([done('reserveStock', 10), done('authorizePayment', 20), done('capturePayment', 30), timerFires(10_000)]);
    const retried = then(when(checkout, captured, timerFires(10_030)), { send: [commit, timerOf(2, 3, 21_030)] });
    assert.deepEqual(retried.state.history.at(-1), { step: 'commitStock', event: 'retried', at: 10_030, detail: 'try 2' });
    then(when(checkout, next(captured, retried), done('commitStock', 21_000)), {
      send: [], cancel: [`${id}/timer/2`], outcome: { status: 'completed' },
    });
  });
});
