/**
 * Groups of concurrent steps in the saga state machine (src/core/saga.ts), as given/when/then
 * (see sagaDriver.ts): a step marked `concurrent` starts together with the step before it, and
 * the saga goes on once every step of the group has succeeded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Outgoing } from '../../src/core/message.ts';
import type { SagaDefinition, StepEvent } from '../../src/core/saga.ts';
import {
  abort, awaitingOf, cmd, given, liveTimer, next, pendingOf, play, repliesOf, SAGA, step, then, timer, timerFires, trip, when,
  type Input, type Trip,
} from './sagaDriver.ts';

// ---------------------------------------------------------------------------------------------
// A trip booked in groups: the flight first; then hotel, car and visa at once (the visa has
// nothing to undo); from the pivot on, confirmation and tickets at once.

const groupSaga: SagaDefinition<Trip> = {
  name: 'trip-in-groups',
  version: 1,
  pivot: 4,
  policy: { stepTimeoutMs: 100, maxAttempts: 2, backoffMs: [10, 50] },
  steps: [
    step('bookFlight', 'BookFlight', 'FlightBooked', { failure: 'FlightFull', undo: ['CancelFlight', 'FlightCancelled'] }),
    step('bookHotel', 'BookHotel', 'HotelBooked', { failure: 'HotelFull', undo: ['CancelHotel', 'HotelCancelled'] }),
    step('rentCar', 'RentCar', 'CarRented', { failure: 'NoCarLeft', undo: ['ReturnCar', 'CarReturned'], concurrent: true }),
    step('checkVisa', 'CheckVisa', 'VisaOk', { failure: 'VisaRefused', concurrent: true }),
    step('confirmBooking', 'ConfirmBooking', 'BookingConfirmed'),
    step('sendTickets', 'SendTickets', 'TicketsSent', { concurrent: true }),
  ],
};

const { done, failed, undone } = repliesOf(groupSaga);

const bookHotel = cmd('BookHotel', 'bookHotel');
const rentCar = cmd('RentCar', 'rentCar');
const checkVisa = cmd('CheckVisa', 'checkVisa');
const confirm = cmd('ConfirmBooking', 'confirmBooking');
const sendTickets = cmd('SendTickets', 'sendTickets');
const undo = { bookFlight: cmd('CancelFlight', 'bookFlight'), bookHotel: cmd('CancelHotel', 'bookHotel'), rentCar: cmd('ReturnCar', 'rentCar') };

/** The flight booked at 10: the group of hotel, car and visa runs. */
const inGroup = [done('bookFlight', 10)];
/** Every step before the pivot done at 10, 20, 30, 40: confirmation and tickets run. */
const pastPivot = [done('bookFlight', 10), done('rentCar', 20), done('checkVisa', 30), done('bookHotel', 40)];

const run = (inputs: readonly Input[]) => given(groupSaga, trip, inputs);
const on = (inputs: readonly Input[], input: Input) => when(groupSaga, run(inputs), input);

/**
 * Given `inputs`, when `failing` arrives, then the compensations are sent one by one in `order`
 * (the first with `firstTimer` when given), each after the previous one is done; returns what
 * the last one being done does.
 */
function undoInOrder(inputs: readonly Input[], failing: Input, order: readonly (keyof typeof undo)[], firstTimer?: Outgoing) {
  let current = run(inputs);
  let transition = when(groupSaga, current, failing);
  let at = 1000;
  for (const [i, name] of order.entries()) {
    then(transition, { send: i === 0 && firstTimer ? [undo[name], firstTimer] : [undo[name]] });
    assert.equal(transition?.state.status, 'compensating');
    current = next(current, transition!);
    transition = when(groupSaga, current, undone(name, at++));
  }
  return transition;
}

// ---------------------------------------------------------------------------------------------

void describe('saga groups: running', () => {
  void it('sends every command of a group at once, each recorded as started', () => {
    const { run: grouped, transitions } = play(groupSaga, trip, inGroup);
    then(transitions[1], { send: [bookHotel, rentCar, checkVisa] });
    assert.deepEqual(awaitingOf(grouped.state), { step: 1, awaiting: [1, 2, 3] });
    assert.deepEqual(grouped.state.history.slice(-3), [
      { step: 'bookHotel', event: 'started', at: 10 },
      { step: 'rentCar', event: 'started', at: 10 },
      { step: 'checkVisa', event: 'started', at: 10 },
    ]);
  });

  void it('each success shrinks what is awaited and sends nothing; the last one starts the next group', () => {
    const { run: grouped, transitions } = play(groupSaga, trip, [...inGroup, done('rentCar', 20), done('checkVisa', 30)]);
    assert.deepEqual(transitions.slice(2).map((t) => [t.send, t.cancel, t.outcome]), [[[], [], undefined], [[], [], undefined]]);
    assert.deepEqual(awaitingOf(grouped.state), { step: 1, awaiting: [1] });
    const moved = then(when(groupSaga, grouped, done('bookHotel', 40)), { send: [confirm, sendTickets] });
    assert.deepEqual(awaitingOf(moved.state), { step: 4, awaiting: [4, 5] });
  });

  void it('completes once every member of the last group succeeded', () => {
    const half = run([...pastPivot, done('sendTickets', 50)]);
    assert.deepEqual(awaitingOf(half.state), { step: 4, awaiting: [4] });
    then(when(groupSaga, half, done('confirmBooking', 60)), { send: [], cancel: [`${SAGA}/timer/0`], outcome: { status: 'completed' } });
  });

  void it('a duplicate success or a late failure of a member that already succeeded is ignored', () => {
    const carRented = [...inGroup, done('rentCar', 20)];
    assert.equal(on(carRented, done('rentCar', 21)), undefined);
    assert.equal(on(carRented, failed('rentCar', 21)), undefined);
    assert.equal(on([...pastPivot, done('sendTickets', 50)], done('sendTickets', 51)), undefined);
  });

  void it('a reply of a step of a later group is ignored until that group starts', () => {
    assert.equal(on([], done('bookHotel', 5)), undefined);
    assert.equal(on(inGroup, done('confirmBooking', 20)), undefined);
    assert.equal(on(inGroup, done('sendTickets', 20)), undefined);
  });
});

void describe('saga groups: a business failure', () => {
  const cases: readonly { name: string; given: Input[]; fails: string; undo: (keyof typeof undo)[] }[] = [
    {
      // rentCar has not replied: it may yet happen, so it is undone; checkVisa has nothing to undo.
      name: 'bookHotel fails while car and visa are awaited: returns the car, cancels the flight',
      given: inGroup, fails: 'bookHotel', undo: ['rentCar', 'bookFlight'],
    },
    {
      name: 'rentCar fails after the hotel was booked: cancels the hotel, then the flight',
      given: [...inGroup, done('bookHotel', 20)], fails: 'rentCar', undo: ['bookHotel', 'bookFlight'],
    },
    {
      name: 'checkVisa fails after the car, before the hotel: car, hotel, flight (latest index first)',
      given: [...inGroup, done('rentCar', 20)], fails: 'checkVisa', undo: ['rentCar', 'bookHotel', 'bookFlight'],
    },
    {
      name: 'checkVisa fails after every other member succeeded: car, hotel, flight',
      given: [...inGroup, done('bookHotel', 20), done('rentCar', 30)], fails: 'checkVisa', undo: ['rentCar', 'bookHotel', 'bookFlight'],
    },
  ];

  for (const c of cases) {
    void it(`${c.name}; fails only after the last is undone`, () => {
      const last = undoInOrder(c.given, failed(c.fails, 50, `no ${c.fails}`), c.undo);
      then(last, { send: [], cancel: [`${SAGA}/timer/0`], outcome: { status: 'failed', reason: `no ${c.fails}` } });
    });
  }

  void it('waits for the compensations in order: an undo reply for a later one is ignored', () => {
    const compensating = run([...inGroup, failed('bookHotel', 20)]);
    assert.deepEqual(pendingOf(compensating.state), [2, 0]);
    assert.equal(when(groupSaga, compensating, undone('bookFlight', 30)), undefined, 'the flight is undone after the car');
    assert.equal(when(groupSaga, compensating, undone('bookHotel', 30)), undefined, 'the failed hotel is not undone');
  });

  void it('while compensating, the other members\' late successes and failures are ignored', () => {
    const compensating = run([...inGroup, failed('bookHotel', 20)]);
    const late = [done('rentCar', 30), failed('rentCar', 30), done('checkVisa', 30), failed('checkVisa', 30), done('bookHotel', 30), failed('bookHotel', 30)];
    for (const reply of late) assert.equal(when(groupSaga, compensating, reply), undefined, JSON.stringify(reply));
    const lastUndo = run([...inGroup, failed('bookHotel', 20), undone('rentCar', 40)]);
    for (const reply of late) assert.equal(when(groupSaga, lastUndo, reply), undefined, JSON.stringify(reply));
  });

  void it('records the failure and each compensation', () => {
    const { run: ended } = play(groupSaga, trip, [...inGroup, done('checkVisa', 20), failed('bookHotel', 30, 'full'), undone('rentCar', 40), undone('bookFlight', 50)]);
    const expected: StepEvent[] = [
      { step: 'bookFlight', event: 'started', at: 0 },
      { step: 'bookFlight', event: 'succeeded', at: 10 },
      { step: 'bookHotel', event: 'started', at: 10 },
      { step: 'rentCar', event: 'started', at: 10 },
      { step: 'checkVisa', event: 'started', at: 10 },
      { step: 'checkVisa', event: 'succeeded', at: 20 },
      { step: 'bookHotel', event: 'failed', at: 30, detail: 'full' },
      { step: 'rentCar', event: 'compensating', at: 30 },
      { step: 'rentCar', event: 'compensated', at: 40 },
      { step: 'bookFlight', event: 'compensating', at: 40 },
      { step: 'bookFlight', event: 'compensated', at: 50 },
    ];
    assert.deepEqual(ended.state, { status: 'failed', id: SAGA, definition: { name: 'trip-in-groups', version: 1 }, ctx: trip, startedAt: 0, reason: 'full', endedAt: 50, history: expected });
  });

  void it('abort during a group undoes all of it that can be undone, then the earlier steps', () => {
    const last = undoInOrder([...inGroup, done('checkVisa', 20)], abort('cancelled', 30), ['rentCar', 'bookHotel', 'bookFlight']);
    then(last, { send: [], cancel: [`${SAGA}/timer/0`], outcome: { status: 'failed', reason: 'cancelled' } });
  });
});

void describe('saga groups: timers', () => {
  void it('a success of one member is progress: the timer waits the full step time again', () => {
    const rearmed = run([...inGroup, timerFires(100)]); // re-armed until 110
    then(when(groupSaga, rearmed, timerFires(110)), { send: [bookHotel, rentCar, checkVisa, timer(2, 1, 220)] });
    const carRented = next(rearmed, then(when(groupSaga, rearmed, done('rentCar', 105)), { send: [] }));
    then(when(groupSaga, carRented, timerFires(110)), { send: [timer(2, 2, 205)] });
  });

  void it('a timer without progress resends only the members still awaited', () => {
    const carRented = run([...inGroup, done('rentCar', 20), timerFires(100)]); // re-armed until 120
    const retried = then(when(groupSaga, carRented, timerFires(120)), { send: [bookHotel, checkVisa, timer(2, 2, 230)] });
    assert.deepEqual(retried.state.history.slice(-2), [
      { step: 'bookHotel', event: 'retried', at: 120, detail: 'try 2' },
      { step: 'checkVisa', event: 'retried', at: 120, detail: 'try 2' },
    ]);
  });

  void it('before the pivot, a timeout compensates the whole group (done or not) and the earlier steps', () => {
    const inputs = [...inGroup, done('rentCar', 20), timerFires(100), timerFires(120)]; // tried twice by 120
    const timedOut = when(groupSaga, run(inputs), timerFires(230));
    assert.deepEqual(timedOut?.state.history.slice(-3), [
      { step: 'bookHotel', event: 'timed-out', at: 230, detail: 'no reply after 2 tries' },
      { step: 'checkVisa', event: 'timed-out', at: 230, detail: 'no reply after 2 tries' },
      { step: 'rentCar', event: 'compensating', at: 230 },
    ]);
    const last = undoInOrder(inputs, timerFires(230), ['rentCar', 'bookHotel', 'bookFlight'], timer(3, 3, 330));
    then(last, { send: [], cancel: [`${SAGA}/timer/3`], outcome: { status: 'failed', reason: 'step bookHotel, checkVisa timed out' } });
  });

  void it('after the pivot, every awaited member is retried for ever, then only those still awaited; never compensated', () => {
    let current = run([...pastPivot, timerFires(100)]); // the group started at 40; re-armed until 140
    current = next(current, then(when(groupSaga, current, timerFires(140)), { send: [confirm, sendTickets, timer(2, 4, 250)] }));
    current = next(current, then(when(groupSaga, current, timerFires(250)), { send: [confirm, sendTickets, timer(3, 4, 400)] }));
    assert.equal(when(groupSaga, current, abort('too late', 260)), undefined);
    current = next(current, then(when(groupSaga, current, done('sendTickets', 260)), { send: [] }));
    current = next(current, then(when(groupSaga, current, timerFires(400)), { send: [timer(4, 5, 410)] }));
    const retried = then(when(groupSaga, current, timerFires(410)), { send: [confirm, timer(5, 5, 560)] });
    assert.deepEqual(retried.state.history.at(-1), { step: 'confirmBooking', event: 'retried', at: 410, detail: 'try 4' });
    then(when(groupSaga, next(current, retried), done('confirmBooking', 420)), {
      send: [], cancel: [liveTimer(next(current, retried))], outcome: { status: 'completed' },
    });
  });
});
