/**
 * The saga state machine (src/core/saga.ts) with a sequential test saga (every group of one
 * step), as given/when/then: see sagaDriver.ts. Groups of concurrent steps: sagaGroups.test.ts;
 * the real checkout saga: checkoutSaga.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SagaDefinition, StepEvent } from '../../src/core/saga.ts';
import {
  abort, awaitingOf, begin, cmd, commandsIn, given, liveTimer, next, play, repliesOf, SAGA, step, then, timer, timerFires, trip, when,
  type Input, type Trip,
} from './sagaDriver.ts';

// ---------------------------------------------------------------------------------------------
// A test saga: book a trip. Four steps can fail and (but one) be undone; from the pivot on
// (confirmBooking) nothing can fail any more.

const tripSaga: SagaDefinition<Trip> = {
  name: 'trip',
  version: 1,
  pivot: 4,
  policy: { stepTimeoutMs: 100, maxAttempts: 3, backoffMs: [10, 50] },
  steps: [
    step('bookFlight', 'BookFlight', 'FlightBooked', { failure: 'FlightFull', undo: ['CancelFlight', 'FlightCancelled'] }),
    step('bookHotel', 'BookHotel', 'HotelBooked', { failure: 'HotelFull', undo: ['CancelHotel', 'HotelCancelled'] }),
    step('checkVisa', 'CheckVisa', 'VisaOk', { failure: 'VisaRefused' }),
    step('rentCar', 'RentCar', 'CarRented', { failure: 'NoCarLeft', undo: ['ReturnCar', 'CarReturned'] }),
    step('confirmBooking', 'ConfirmBooking', 'BookingConfirmed'),
    step('sendTickets', 'SendTickets', 'TicketsSent'),
  ],
};

const { done, failed, undone } = repliesOf(tripSaga);

/** bookFlight done at 10; bookHotel tried at 10, 110, 220 and timed out at 370. */
const hotelTimedOut = [done('bookFlight', 10), timerFires(100), timerFires(110), timerFires(220), timerFires(370)];

/** The trip, all four steps before the pivot done at 10, 20, 30, 40. */
const pastPivot = [done('bookFlight', 10), done('bookHotel', 20), done('checkVisa', 30), done('rentCar', 40)];

// ---------------------------------------------------------------------------------------------

void describe('saga: happy path', () => {
  void it('starts with the first command and a timer for the step timeout', () => {
    const { run, transition } = begin(tripSaga, trip, SAGA);
    then(transition, { send: [cmd('BookFlight', 'bookFlight'), timer(0, 0, 100)] });
    assert.deepEqual(awaitingOf(run.state), { step: 0, awaiting: [0] }, 'a step without concurrent ones is a group of one');
    assert.deepEqual(run.state.history, [{ step: 'bookFlight', event: 'started', at: 0 }]);
  });

  void it('a success moves on to the next step alone (none is concurrent)', () => {
    const { run, transitions } = play(tripSaga, trip, [done('bookFlight', 10), done('bookHotel', 20)]);
    assert.deepEqual(transitions.map((t) => commandsIn(t).map((c) => c.step)), [['bookFlight'], ['bookHotel'], ['checkVisa']]);
    assert.deepEqual(awaitingOf(run.state), { step: 2, awaiting: [2] });
  });

  void it('sends each command in order, with saga id and step, and completes on the last reply', () => {
    const { run, transitions } = play(tripSaga, trip, [
      ...pastPivot, done('confirmBooking', 50), done('sendTickets', 60),
    ]);
    assert.deepEqual(transitions.map((t) => t.send), [
      [cmd('BookFlight', 'bookFlight'), timer(0, 0, 100)],
      [cmd('BookHotel', 'bookHotel')],
      [cmd('CheckVisa', 'checkVisa')],
      [cmd('RentCar', 'rentCar')],
      [cmd('ConfirmBooking', 'confirmBooking')],
      [cmd('SendTickets', 'sendTickets')],
      [],
    ]);
    assert.deepEqual(transitions.map((t) => t.outcome), [undefined, undefined, undefined, undefined, undefined, undefined, { status: 'completed' }]);
    assert.deepEqual(transitions.at(-1)?.cancel, [`${SAGA}/timer/0`], 'the live timer is cancelled');
    assert.deepEqual(run.state, {
      status: 'completed', id: SAGA, definition: { name: 'trip', version: 1 }, ctx: trip, startedAt: 0, endedAt: 60, history: run.state.history,
    });
  });

  void it('cancels the timer that is live at the end, not the first one', () => {
    // bookFlight is retried once (timer 0 fires), so timer 1 is the live one when the saga ends.
    const run = given(tripSaga, trip, [timerFires(100), done('bookFlight', 150), done('bookHotel', 160), done('checkVisa', 170),
      done('rentCar', 180), done('confirmBooking', 190)]);
    then(when(tripSaga, run, done('sendTickets', 200)), { send: [], cancel: [`${SAGA}/timer/1`], outcome: { status: 'completed' } });
  });
});

void describe('saga: business failure before the pivot', () => {
  const cases: readonly { at: string; given: Input[]; compensations: [command: string, step: string][] }[] = [
    { at: 'bookFlight', given: [], compensations: [] },
    { at: 'bookHotel', given: [done('bookFlight', 10)], compensations: [['CancelFlight', 'bookFlight']] },
    {
      at: 'checkVisa', given: [done('bookFlight', 10), done('bookHotel', 20)],
      compensations: [['CancelHotel', 'bookHotel'], ['CancelFlight', 'bookFlight']],
    },
    {
      // checkVisa succeeded but has nothing to undo; rentCar itself failed, so is not undone.
      at: 'rentCar', given: [done('bookFlight', 10), done('bookHotel', 20), done('checkVisa', 30)],
      compensations: [['CancelHotel', 'bookHotel'], ['CancelFlight', 'bookFlight']],
    },
  ];

  for (const c of cases) {
    void it(`at ${c.at}: undoes ${c.compensations.map(([, s]) => s).join(', ') || 'nothing'} (latest first), fails only after the last is undone`, () => {
      let run = given(tripSaga, trip, c.given);
      let at = 100;
      let transition = when(tripSaga, run, failed(c.at, at, `no ${c.at}`));
      for (const [command, name] of c.compensations) {
        then(transition, { send: [cmd(command, name)] });
        assert.equal(transition?.state.status, 'compensating');
        run = next(run, transition!);
        at += 10;
        transition = when(tripSaga, run, undone(name, at));
      }
      then(transition, { send: [], cancel: [`${SAGA}/timer/0`], outcome: { status: 'failed', reason: `no ${c.at}` } });
      assert.equal(transition?.state.status, 'failed');
    });
  }

  void it('uses the reply type as the reason when the reply has no detail', () => {
    const run = given(tripSaga, trip, []);
    then(when(tripSaga, run, failed('bookFlight', 10)), {
      send: [], cancel: [`${SAGA}/timer/0`], outcome: { status: 'failed', reason: 'FlightFull' },
    });
  });

  void it('waits for the compensations in order: an undo reply for a later compensation is ignored', () => {
    const run = given(tripSaga, trip, [done('bookFlight', 10), done('bookHotel', 20), failed('checkVisa', 30)]);
    assert.equal(when(tripSaga, run, undone('bookFlight', 40)), undefined, 'flight is undone after hotel');
    const afterHotel = next(run, then(when(tripSaga, run, undone('bookHotel', 50)), { send: [cmd('CancelFlight', 'bookFlight')] }));
    then(when(tripSaga, afterHotel, undone('bookFlight', 60)), {
      send: [], cancel: [`${SAGA}/timer/0`], outcome: { status: 'failed', reason: 'VisaRefused' },
    });
  });
});

void describe('saga: duplicate, late, reordered and unknown replies produce nothing', () => {
  void it('a duplicate reply of a step that already advanced', () => {
    const run = given(tripSaga, trip, [done('bookFlight', 10)]);
    assert.equal(when(tripSaga, run, done('bookFlight', 11)), undefined);
  });

  void it('a late failure of a step that already succeeded', () => {
    const run = given(tripSaga, trip, [done('bookFlight', 10), done('bookHotel', 20)]);
    assert.equal(when(tripSaga, run, failed('bookFlight', 21)), undefined);
  });

  void it('the reply of a retried try after the first try succeeded', () => {
    const run = given(tripSaga, trip, [timerFires(100), done('bookFlight', 150)]);
    assert.equal(when(tripSaga, run, done('bookFlight', 160)), undefined);
  });

  void it('any reply after completion', () => {
    const run = given(tripSaga, trip, [...pastPivot, done('confirmBooking', 50), done('sendTickets', 60)]);
    assert.equal(run.state.status, 'completed');
    assert.equal(when(tripSaga, run, done('sendTickets', 70)), undefined);
    assert.equal(when(tripSaga, run, done('bookFlight', 70)), undefined);
    assert.equal(when(tripSaga, run, undone('bookFlight', 70)), undefined);
  });

  void it('any reply after failure', () => {
    const run = given(tripSaga, trip, [done('bookFlight', 10), failed('bookHotel', 20), undone('bookFlight', 30)]);
    assert.equal(run.state.status, 'failed');
    assert.equal(when(tripSaga, run, undone('bookFlight', 40)), undefined, 'duplicate undo');
    assert.equal(when(tripSaga, run, done('bookHotel', 40)), undefined, 'late success');
    assert.equal(when(tripSaga, run, failed('bookHotel', 40)), undefined, 'duplicate failure');
  });

  void it('a success or failure of the step being compensated', () => {
    const run = given(tripSaga, trip, hotelTimedOut);
    assert.equal(run.state.status, 'compensating', 'bookHotel timed out');
    assert.equal(when(tripSaga, run, done('bookHotel', 400)), undefined);
    assert.equal(when(tripSaga, run, failed('bookHotel', 400)), undefined);
  });

  void it('a reply that arrives before its step started', () => {
    const run = given(tripSaga, trip, []);
    assert.equal(when(tripSaga, run, done('bookHotel', 10)), undefined);
    assert.equal(when(tripSaga, run, failed('bookHotel', 10)), undefined);
  });

  void it('a reply for another step, or a type that does not belong to the current one', () => {
    const run = given(tripSaga, trip, [done('bookFlight', 10)]);
    const reply = (type: string, name: string): Input => ({ kind: 'reply', type, step: name, at: 20 });
    assert.equal(when(tripSaga, run, reply('HotelBooked', 'bookFlight')), undefined, 'right type, wrong step');
    assert.equal(when(tripSaga, run, reply('FlightBooked', 'bookHotel')), undefined, 'right step, wrong type');
    assert.equal(when(tripSaga, run, reply('HotelCancelled', 'bookHotel')), undefined, 'the undo reply while running');
    assert.equal(when(tripSaga, run, reply('Bogus', 'bookHotel')), undefined, 'unknown type');
    assert.equal(when(tripSaga, run, reply('HotelBooked', '')), undefined, 'no step');
  });

  void it('an unknown reply while compensating', () => {
    const run = given(tripSaga, trip, [done('bookFlight', 10), failed('bookHotel', 20)]);
    assert.equal(when(tripSaga, run, { kind: 'reply', type: 'Bogus', step: 'bookFlight', at: 30 }), undefined);
    assert.equal(when(tripSaga, run, { kind: 'reply', type: 'FlightCancelled', step: 'bookHotel', at: 30 }), undefined);
  });
});

void describe('saga: timers', () => {
  void it('ignores a stale timer (not the live one) and one of an ended saga', () => {
    const retried = given(tripSaga, trip, [timerFires(100)]);
    assert.equal(when(tripSaga, retried, timerFires(100, { id: `${SAGA}/timer/0`, seq: 0 })), undefined, 'timer 0 again');
    assert.equal(when(tripSaga, retried, timerFires(300, { id: 'other/timer/1', seq: 0 })), undefined, 'another saga');

    const completed = given(tripSaga, trip, [...pastPivot, done('confirmBooking', 50), done('sendTickets', 60)]);
    assert.equal(when(tripSaga, completed, timerFires(100, { id: `${SAGA}/timer/0`, seq: 0 })), undefined);
    const failedRun = given(tripSaga, trip, [failed('bookFlight', 10)]);
    assert.equal(when(tripSaga, failedRun, timerFires(100, { id: `${SAGA}/timer/0`, seq: 0 })), undefined);
  });

  void it('re-arms for the rest of the step time when the saga progressed since the timer was set', () => {
    const run = given(tripSaga, trip, [done('bookFlight', 60)]);
    const rearmed = then(when(tripSaga, run, timerFires(100)), { send: [timer(1, 1, 160)] });
    assert.equal(rearmed.state.status, 'running');
    assert.deepEqual(rearmed.state.history, run.state.history, 'a re-arm is not an event');
    // When the re-armed timer fires without progress, the step is retried.
    then(when(tripSaga, next(run, rearmed), timerFires(160)), { send: [cmd('BookHotel', 'bookHotel'), timer(2, 1, 270)] });
  });

  void it('re-arms, not retries, a timer set before progress even when it is delivered late', () => {
    const run = given(tripSaga, trip, [done('bookFlight', 60)]); // bookHotel's time runs out at 160
    const rearmed = then(when(tripSaga, run, timerFires(500)), { send: [timer(1, 1, 501)] });
    assert.equal(rearmed.state.status === 'running' && rearmed.state.tries, 1, 'no try counted');
  });

  void it('re-arms, not retries, a timer of the current seq that fires early', () => {
    const run = given(tripSaga, trip, []);
    then(when(tripSaga, run, timerFires(40)), { send: [timer(1, 0, 100)] });
  });

  void it('before the pivot: retries up to maxAttempts, then undoes every step done INCLUDING the timed-out one', () => {
    const { run, transitions } = play(tripSaga, trip, [
      done('bookFlight', 10),
      timerFires(100), // timer 0 was set before bookFlight succeeded: re-arm until 110
      timerFires(110), // try 2, next timer after 100 + backoff 10
      timerFires(220), // try 3, next timer after 100 + backoff 50
    ]);
    assert.deepEqual(transitions.slice(2).map((t) => t.send), [
      [timer(1, 1, 110)],
      [cmd('BookHotel', 'bookHotel'), timer(2, 1, 220)],
      [cmd('BookHotel', 'bookHotel'), timer(3, 1, 370)],
    ]);
    const timedOut = when(tripSaga, run, timerFires(370));
    assert.ok(timedOut);
    assert.deepEqual(commandsIn(timedOut), [cmd('CancelHotel', 'bookHotel')], 'its timer: see the test below');
    assert.equal(timedOut.state.status, 'compensating');
    assert.equal(timedOut.outcome, undefined);
    const afterHotel = next(run, timedOut);
    const cancelFlight = then(when(tripSaga, afterHotel, undone('bookHotel', 380)), { send: [cmd('CancelFlight', 'bookFlight')] });
    const last = next(afterHotel, cancelFlight);
    then(when(tripSaga, last, undone('bookFlight', 390)), {
      send: [], cancel: [liveTimer(last)], outcome: { status: 'failed', reason: 'step bookHotel timed out' },
    });
  });

  void it('before the pivot: with maxAttempts 1 a timeout compensates at once', () => {
    const once: SagaDefinition<Trip> = { ...tripSaga, policy: { ...tripSaga.policy, maxAttempts: 1 } };
    const run = given(once, trip, []);
    const transition = when(once, run, timerFires(100));
    assert.deepEqual(transition?.send[0], cmd('CancelFlight', 'bookFlight'));
    assert.equal(transition?.state.status, 'compensating');
  });

  void it('before the pivot: the compensation started by a timeout has a live timer of its own', () => {
    const run = given(tripSaga, trip, [timerFires(100), timerFires(210)]);
    const timedOut = then(when(tripSaga, run, timerFires(360)), { send: [cmd('CancelFlight', 'bookFlight'), timer(3, 1, 460)] });
    // …so that a lost CancelFlight is sent again.
    then(when(tripSaga, next(run, timedOut), timerFires(460)), { send: [cmd('CancelFlight', 'bookFlight'), timer(4, 1, 570)] });
  });

  void it('after the pivot: retries for ever with backoff from policy.backoffMs, never compensates', () => {
    let run = given(tripSaga, trip, [...pastPivot]); // confirmBooking started at 40, timer 0 fires at 100
    run = next(run, then(when(tripSaga, run, timerFires(100)), { send: [timer(1, 4, 140)] }));
    let at = 140;
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const transition = when(tripSaga, run, timerFires(at));
      assert.ok(transition);
      assert.equal(transition.state.status, 'running');
      assert.equal(transition.outcome, undefined);
      assert.deepEqual(transition.send[0], cmd('ConfirmBooking', 'confirmBooking'));
      const deliverAt = transition.send[1]?.deliverAt ?? Number.NaN;
      waits.push(deliverAt - at);
      at = deliverAt;
      run = next(run, transition);
    }
    assert.deepEqual(waits, [110, 150, 150, 150, 150, 150, 150, 150], 'step time + backoff, the last backoff repeating');
    assert.equal(run.state.status === 'running' && run.state.tries, 9);
    then(when(tripSaga, run, done('confirmBooking', at + 1)), { send: [cmd('SendTickets', 'sendTickets')] });
  });

  void it('during compensation: re-sends the compensation for ever, with backoff', () => {
    let run = given(tripSaga, trip, [done('bookFlight', 10), failed('bookHotel', 20)]); // compensating since 20
    run = next(run, then(when(tripSaga, run, timerFires(100)), { send: [timer(1, 2, 120)] }));
    const expected = [[120, 230], [230, 380], [380, 530], [530, 680]];
    for (const [at, deliverAt] of expected) {
      const transition = then(when(tripSaga, run, timerFires(at!)), { send: [cmd('CancelFlight', 'bookFlight'), timer(run.timers.size, 2, deliverAt!)] });
      assert.equal(transition.state.status, 'compensating');
      run = next(run, transition);
    }
    then(when(tripSaga, run, undone('bookFlight', 700)), {
      send: [], cancel: [`${SAGA}/timer/5`], outcome: { status: 'failed', reason: 'HotelFull' },
    });
  });
});

void describe('saga: abortSaga', () => {
  void it('before the pivot: undoes every step that can be undone, latest first, whether it ran or not (a late command then does nothing)', () => {
    const atFlight = given(tripSaga, trip, []);
    then(when(tripSaga, atFlight, abort('cancelled', 5)), { send: [cmd('ReturnCar', 'rentCar')] });

    const atVisa = given(tripSaga, trip, [done('bookFlight', 10), done('bookHotel', 20)]);
    const aborted = then(when(tripSaga, atVisa, abort('cancelled', 25)), { send: [cmd('ReturnCar', 'rentCar')] });
    assert.deepEqual(aborted.state.history.at(-2), { step: 'checkVisa', event: 'aborted', at: 25, detail: 'cancelled' });
    const run = next(atVisa, aborted);
    const cancelHotel = then(when(tripSaga, run, undone('rentCar', 28)), { send: [cmd('CancelHotel', 'bookHotel')] });
    const hotelUndone = next(run, cancelHotel);
    const cancelFlight = then(when(tripSaga, hotelUndone, undone('bookHotel', 30)), { send: [cmd('CancelFlight', 'bookFlight')] });
    then(when(tripSaga, next(hotelUndone, cancelFlight), undone('bookFlight', 40)), {
      send: [], cancel: [`${SAGA}/timer/0`], outcome: { status: 'failed', reason: 'cancelled' },
    });
  });

  void it('with cancellableUntil past the pivot: aborts there too, undoing the steps after the pivot first', () => {
    const late: SagaDefinition<Trip> = {
      ...tripSaga,
      cancellableUntil: 6,
      steps: [...tripSaga.steps.slice(0, 5), step('sendTickets', 'SendTickets', 'TicketsSent', { undo: ['VoidTickets', 'TicketsVoided'] })],
    };
    const atTickets = given(late, trip, [...pastPivot, done('confirmBooking', 50)]);
    then(when(late, atTickets, abort('cancelled', 55)), { send: [cmd('VoidTickets', 'sendTickets')] });
    const completed = given(late, trip, [...pastPivot, done('confirmBooking', 50), done('sendTickets', 60)]);
    assert.equal(when(late, completed, abort('cancelled', 70)), undefined, 'once completed, too late');
  });

  void it('fails at once when nothing before the pivot has a compensation', () => {
    const plain: SagaDefinition<Trip> = {
      ...tripSaga,
      pivot: 1,
      steps: [step('checkVisa', 'CheckVisa', 'VisaOk', { failure: 'VisaRefused' }), step('sendTickets', 'SendTickets', 'TicketsSent')],
    };
    const run = given(plain, trip, []);
    then(when(plain, run, abort('cancelled', 5)), { send: [], cancel: [`${SAGA}/timer/0`], outcome: { status: 'failed', reason: 'cancelled' } });
  });

  void it('after the pivot, while compensating, or after the end: does nothing', () => {
    assert.equal(when(tripSaga, given(tripSaga, trip, pastPivot), abort('cancelled', 50)), undefined);
    assert.equal(when(tripSaga, given(tripSaga, trip, [done('bookFlight', 10), failed('bookHotel', 20)]), abort('cancelled', 30)), undefined);
    assert.equal(when(tripSaga, given(tripSaga, trip, [failed('bookFlight', 10)]), abort('cancelled', 30)), undefined);
    const completed = given(tripSaga, trip, [...pastPivot, done('confirmBooking', 50), done('sendTickets', 60)]);
    assert.equal(when(tripSaga, completed, abort('cancelled', 70)), undefined);
  });
});

void describe('saga: history', () => {
  void it('records starts, successes, retries, failures and compensations with their time', () => {
    const { run } = play(tripSaga, trip, [
      timerFires(100), done('bookFlight', 150), done('bookHotel', 160), failed('checkVisa', 170, 'expired passport'),
      undone('bookHotel', 180), undone('bookFlight', 190),
    ]);
    const expected: StepEvent[] = [
      { step: 'bookFlight', event: 'started', at: 0 },
      { step: 'bookFlight', event: 'retried', at: 100, detail: 'try 2' },
      { step: 'bookFlight', event: 'succeeded', at: 150 },
      { step: 'bookHotel', event: 'started', at: 150 },
      { step: 'bookHotel', event: 'succeeded', at: 160 },
      { step: 'checkVisa', event: 'started', at: 160 },
      { step: 'checkVisa', event: 'failed', at: 170, detail: 'expired passport' },
      { step: 'bookHotel', event: 'compensating', at: 170 },
      { step: 'bookHotel', event: 'compensated', at: 180 },
      { step: 'bookFlight', event: 'compensating', at: 180 },
      { step: 'bookFlight', event: 'compensated', at: 190 },
    ];
    assert.deepEqual(run.state.history, expected);
    assert.deepEqual(run.state, { status: 'failed', id: SAGA, definition: { name: 'trip', version: 1 }, ctx: trip, startedAt: 0, reason: 'expired passport', endedAt: 190, history: expected });
  });

  void it('records a timeout and the compensation retries', () => {
    const once: SagaDefinition<Trip> = { ...tripSaga, policy: { ...tripSaga.policy, maxAttempts: 1 } };
    const { run } = play(once, trip, [timerFires(100)]);
    assert.deepEqual(run.state.history.slice(1), [
      { step: 'bookFlight', event: 'timed-out', at: 100, detail: 'no reply after 1 tries' },
      { step: 'bookFlight', event: 'compensating', at: 100 },
    ]);
    const retried = given(once, trip, [done('bookFlight', 10), failed('bookHotel', 20), timerFires(100), timerFires(120)]);
    assert.deepEqual(retried.state.history.at(-1), { step: 'bookFlight', event: 'retried', at: 120, detail: 'compensation try 2' });
  });
});
