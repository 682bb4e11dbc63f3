/**
 * Drives the saga state machine (src/core/saga.ts) for given/when/then tests: given the
 * replies, timers and aborts a saga has seen, when one more arrives, then these commands and
 * timers are sent, these timers cancelled, and the saga ends (or not). Time is plain numbers:
 * every saga starts at 0. Also the steps of the test sagas (a trip to book).
 */
import assert from 'node:assert/strict';
import type { Outgoing } from '../../src/core/message.ts';
import {
  abortSaga, isActive, onReply, onTimer, SAGA_TIMER, startSaga,
  type SagaDefinition, type SagaState, type SagaStep, type SagaTimerPayload, type Transition,
} from '../../src/core/saga.ts';

/** The saga id used unless a test names another. */
export const SAGA = 'trip-1';

export type Input =
  | Readonly<{ kind: 'reply'; type: string; step: string; detail?: string; at: number }>
  /** The live timer firing with the seq it was set with, unless id/seq are given. */
  | Readonly<{ kind: 'timer'; at: number; id?: string; seq?: number }>
  | Readonly<{ kind: 'abort'; reason: string; at: number }>;

/** A saga between messages, and the seq every timer it set carries. */
export type Run<C> = Readonly<{ state: SagaState<C>; timers: ReadonlyMap<string, number> }>;

/** Replies to the steps of `def`, by step name: success, business failure, compensation done. */
export function repliesOf<C>(def: SagaDefinition<C>) {
  const stepNamed = (name: string) => {
    const found = def.steps.find((s) => s.name === name);
    assert.ok(found, `saga ${def.name} has no step ${name}`);
    return found;
  };
  const reply = (type: string | undefined, name: string, at: number, detail?: string): Input => {
    assert.ok(type, `step ${name} has no such reply`);
    return detail === undefined ? { kind: 'reply', type, step: name, at } : { kind: 'reply', type, step: name, at, detail };
  };
  return {
    done: (name: string, at: number) => reply(stepNamed(name).success, name, at),
    failed: (name: string, at: number, detail?: string) => reply(stepNamed(name).failure, name, at, detail),
    undone: (name: string, at: number) => reply(stepNamed(name).compensation?.done, name, at),
  };
}

export const timerFires = (at: number, which: { id?: string; seq?: number } = {}): Input => ({ kind: 'timer', at, ...which });
export const abort = (reason: string, at: number): Input => ({ kind: 'abort', reason, at });

export function begin<C>(def: SagaDefinition<C>, ctx: C, sagaId = SAGA): { run: Run<C>; transition: Transition<C> } {
  const transition = startSaga(def, sagaId, ctx, 0);
  return { run: next({ state: transition.state, timers: new Map() }, transition), transition };
}

export function when<C>(def: SagaDefinition<C>, run: Run<C>, input: Input): Transition<C> | undefined {
  switch (input.kind) {
    case 'reply':
      return onReply(def, run.state, input, input.at);
    case 'timer': {
      const id = input.id ?? (isActive(run.state) ? run.state.timer : 'no live timer');
      return onTimer(def, run.state, id, input.seq ?? run.timers.get(id) ?? -1, input.at);
    }
    case 'abort':
      return abortSaga(def, run.state, input.reason, input.at);
  }
}

/** The saga after `transition`, remembering the timers it set. */
export function next<C>(run: Run<C>, transition: Transition<C>): Run<C> {
  const timers = new Map(run.timers);
  for (const out of transition.send) {
    if (out.type === SAGA_TIMER) timers.set(out.id ?? '', (out.payload as SagaTimerPayload).seq);
  }
  return { state: transition.state, timers };
}

/** Starts the saga and applies every input, each of which must change it. */
export function given<C>(def: SagaDefinition<C>, ctx: C, inputs: readonly Input[], sagaId = SAGA): Run<C> {
  return play(def, ctx, inputs, sagaId).run;
}

/** Starts the saga and applies the inputs; returns every transition (each input must change the saga). */
export function play<C>(def: SagaDefinition<C>, ctx: C, inputs: readonly Input[], sagaId = SAGA) {
  const start = begin(def, ctx, sagaId);
  let run = start.run;
  const transitions: Transition<C>[] = [start.transition];
  for (const input of inputs) {
    const transition = when(def, run, input);
    assert.ok(transition, `${JSON.stringify(input)} should change the saga`);
    transitions.push(transition);
    run = next(run, transition);
  }
  return { run, transitions };
}

export type Expected = Readonly<{ send: readonly Outgoing[]; cancel?: readonly string[]; outcome?: Transition<unknown>['outcome'] }>;

/** Asserts what a transition sends, cancels and ends with (absent: nothing, not ended). */
export function then<C>(transition: Transition<C> | undefined, expected: Expected): Transition<C> {
  assert.ok(transition, 'expected a transition, got undefined (ignored)');
  assert.deepEqual(transition.send, expected.send);
  assert.deepEqual(transition.cancel, expected.cancel ?? []);
  assert.deepEqual(transition.outcome, expected.outcome);
  return transition;
}

/** What a transition sends, timers left out. */
export const commandsIn = (transition: Transition<unknown>): Outgoing[] => transition.send.filter((out) => out.type !== SAGA_TIMER);

/** The n-th timer of a saga, set at `seq` to fire at `deliverAt`. */
export const timer = (n: number, seq: number, deliverAt: number, sagaId = SAGA): Outgoing =>
  ({ id: `${sagaId}/timer/${n}`, type: SAGA_TIMER, payload: { seq }, sagaId, step: '', deliverAt });

/** The timer a saga would cancel now. */
export const liveTimer = (run: Run<unknown>): string => (isActive(run.state) ? run.state.timer : 'none');

/** The steps still awaited by a running saga (the saga must be running). */
export function awaitingOf(state: SagaState<unknown>): Readonly<{ step: number; awaiting: readonly number[] }> {
  assert.equal(state.status, 'running');
  assert.ok(state.status === 'running');
  return { step: state.step, awaiting: state.awaiting };
}

/** The compensations a compensating saga has yet to see done (the saga must be compensating). */
export function pendingOf(state: SagaState<unknown>): readonly number[] {
  assert.equal(state.status, 'compensating');
  assert.ok(state.status === 'compensating');
  return state.pending;
}

// ---------------------------------------------------------------------------------------------
// The test sagas book a trip; every command carries the trip id.

export type Trip = Readonly<{ tripId: string }>;
export const trip: Trip = { tripId: 't-1' };

export type StepOptions = { failure?: string; undo?: [command: string, done: string]; concurrent?: boolean };

export function step(name: string, command: string, success: string, extra: StepOptions = {}): SagaStep<Trip> {
  const undo = extra.undo;
  return {
    name,
    action: (ctx) => ({ type: command, payload: { tripId: ctx.tripId } }),
    success,
    ...(extra.failure === undefined ? {} : { failure: extra.failure }),
    ...(undo === undefined ? {} : { compensation: { command: (ctx: Trip) => ({ type: undo[0], payload: { tripId: ctx.tripId } }), done: undo[1] } }),
    ...(extra.concurrent === undefined ? {} : { concurrent: extra.concurrent }),
  };
}

/** A command of a trip saga as sent for step `name`. */
export const cmd = (type: string, name: string, sagaId = SAGA): Outgoing => ({ type, payload: { tripId: trip.tripId }, sagaId, step: name });
