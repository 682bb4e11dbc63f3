/**
 * The saga state machine, as pure functions: (definition, state, message, now) → transition.
 *
 * A saga runs its steps in order; a step marked `concurrent` starts together with the one
 * before it, and the saga goes on once every step of such a group has succeeded. Each step
 * sends a command and waits for its reply; a business failure (a reply of the step's
 * `failure` type) compensates, in reverse order, every earlier step and every other step of
 * its group (one still running may yet happen, so it is undone too). Steps from `pivot` on are past the point of no return:
 * they cannot fail, so they are retried until they succeed and never compensated.
 *
 * A saga has one timer at a time. When it fires without progress since it was set, a step
 * before the pivot is retried up to `maxAttempts` and then compensated *including itself*
 * (a step that timed out may still have happened: its compensation must be harmless when it
 * did not); a step after the pivot, or a compensation, is retried with backoff for ever.
 *
 * A saga can be aborted (a cancel button, a reservation's time to live) while it runs a step
 * before `cancellableUntil`: every step that has a compensation is then undone, latest first,
 * whether or not it ran, since a command already sent may still happen (each compensation is
 * harmless for a step that never ran, and makes the late step do nothing).
 *
 * Duplicate, late and reordered replies match no pending step and produce nothing.
 */
import type { Envelope, Message, Outgoing } from './message.ts';
import { mutations } from './mutations.ts';
import { isRecord, type Check } from './parse.ts';

export type Command = Readonly<{ type: string; payload: unknown }>;

export interface SagaStep<C> {
  readonly name: string;
  readonly action: (ctx: C) => Command;
  /** Reply type meaning the step succeeded. */
  readonly success: string;
  /** Reply type meaning a business failure; absent when the step cannot fail. */
  readonly failure?: string;
  readonly compensation?: Readonly<{ command: (ctx: C) => Command; done: string }>;
  /** Starts together with the step before it instead of after it. */
  readonly concurrent?: boolean;
}

export interface SagaPolicy {
  /** Time without progress after which the current step is retried or given up. */
  readonly stepTimeoutMs: number;
  /** Tries of a step before the pivot before it is compensated (at least 1). */
  readonly maxAttempts: number;
  /** Extra wait, on top of the step time-out, after each retry; the last value repeats. */
  readonly backoffMs: readonly number[];
}

export interface SagaDefinition<C> {
  readonly name: string;
  /** Sagas record the version they started under, and finish under it after an upgrade. */
  readonly version: number;
  readonly steps: readonly SagaStep<C>[];
  /** Index of the first step that can no longer be compensated (the first of its group). */
  readonly pivot: number;
  /** Index of the first step during which the saga can no longer be aborted (default: the pivot). */
  readonly cancellableUntil?: number;
  readonly policy: SagaPolicy;
}

/** The definition a saga started under. */
export type SagaVersion = Readonly<{ name: string; version: number }>;

export type StepEvent = Readonly<{
  step: string;
  event: 'started' | 'succeeded' | 'failed' | 'retried' | 'timed-out' | 'aborted' | 'compensating' | 'compensated';
  at: number;
  detail?: string;
}>;

type Common<C> = Readonly<{
  id: string;
  /** The definition it started under; absent in sagas stored before versions were recorded (version 1). */
  definition?: SagaVersion;
  ctx: C;
  startedAt: number;
  history: readonly StepEvent[];
}>;

type Active = Readonly<{
  /** Counts transitions; a timer set at one `seq` is stale at another. */
  seq: number;
  /** When the saga last made progress. */
  since: number;
  /** Tries of the current command so far (1 = first send). */
  tries: number;
  /** Outbox id of the live timer. */
  timer: string;
}>;

export type SagaState<C> =
  | (Common<C> & Active & { status: 'running'; step: number; awaiting: readonly number[] })
  | (Common<C> & Active & { status: 'compensating'; pending: readonly [number, ...number[]]; reason: string })
  | (Common<C> & { status: 'completed'; endedAt: number })
  | (Common<C> & { status: 'failed'; reason: string; endedAt: number });

export type ActiveSaga<C> = Extract<SagaState<C>, { status: 'running' | 'compensating' }>;

export type SagaOutcome = Readonly<{ status: 'completed' } | { status: 'failed'; reason: string }>;

/**
 * A participant's reply, or in choreography the event a participant published; `at`, when
 * given, is when it happened (an observer records that rather than when it applied it).
 */
export type SagaReply = Readonly<{ type: string; step: string; detail?: string; at?: number }>;

/** The reply (or event) an envelope carries for a saga: its type, step, and the failure's detail if any. */
export function replyOf(message: Envelope): SagaReply {
  const detail = isRecord(message.payload) ? message.payload.detail : undefined;
  return typeof detail === 'string' ? { type: message.type, step: message.step, detail } : { type: message.type, step: message.step };
}

export type Transition<C> = Readonly<{
  state: SagaState<C>;
  /** Commands and timers to send (with saga id and step set). */
  send: readonly Outgoing[];
  /** Timer ids to cancel. */
  cancel: readonly string[];
  outcome?: SagaOutcome;
}>;

/** The message a saga's timer delivers to its owner. */
export const SAGA_TIMER = 'SagaTimerFired';
export type SagaTimerPayload = Readonly<{ seq: number }>;
export type SagaTimer = Message<typeof SAGA_TIMER, SagaTimerPayload>;
export const sagaTimerCheck: Check = (payload) =>
  (isRecord(payload) && Number.isSafeInteger(payload.seq) ? undefined : 'seq must be a whole number');

/** Checks a definition once, where it is made; a bad one is a bug, so this throws. */
export function defineSaga<C>(def: SagaDefinition<C>): SagaDefinition<C> {
  if (def.steps.length === 0) throw new Error(`Saga ${def.name} has no steps`);
  if (def.steps[0]?.concurrent) throw new Error(`Saga ${def.name}: the first step cannot be concurrent`);
  if (def.pivot < 0 || def.pivot > def.steps.length || def.steps[def.pivot]?.concurrent) {
    throw new Error(`Saga ${def.name}: the pivot (${def.pivot}) must be the first step of a group`);
  }
  if (def.policy.maxAttempts < 1) throw new Error(`Saga ${def.name}: maxAttempts must be at least 1`);
  if (!Number.isSafeInteger(def.version) || def.version < 1) throw new Error(`Saga ${def.name}: the version must be a whole number from 1`);
  const until = cancellableUntil(def);
  if (until < def.pivot || until > def.steps.length) throw new Error(`Saga ${def.name}: cancellableUntil (${until}) must be from the pivot to the number of steps`);
  return def;
}

export function startSaga<C>(def: SagaDefinition<C>, id: string, ctx: C, now: number): Transition<C> {
  const group = groupFrom(def, 0);
  const timer = timerId(id, 0);
  return {
    state: {
      status: 'running', id, definition: { name: def.name, version: def.version }, ctx, startedAt: now, step: 0, awaiting: group, seq: 0, since: now, tries: 1, timer,
      history: group.map((i) => ({ step: stepAt(def, i).name, event: 'started' as const, at: now })),
    },
    send: [...group.map((i) => actionOf(def, id, i, ctx)), timerMessage(id, timer, 0, now + def.policy.stepTimeoutMs)],
    cancel: [],
  };
}

/** Applies a participant's reply; `undefined` when it matches nothing pending (duplicate or late). */
export function onReply<C>(
  def: SagaDefinition<C>,
  state: SagaState<C>,
  reply: SagaReply,
  now: number,
): Transition<C> | undefined {
  switch (state.status) {
    case 'running': {
      const index = state.awaiting.find((i) => stepAt(def, i).name === reply.step);
      if (index === undefined) return undefined;
      const step = stepAt(def, index);
      if (reply.type === step.success) {
        const history = [...state.history, { step: step.name, event: 'succeeded' as const, at: now }];
        const awaiting = state.awaiting.filter((i) => i !== index);
        if (awaiting.length > 0) return { state: { ...state, history, awaiting, seq: state.seq + 1, since: now }, send: [], cancel: [] };
        return advance(def, { ...state, history }, lastOfGroup(def, state.step) + 1, now);
      }
      if (step.failure !== undefined && reply.type === step.failure) {
        const history = [...state.history, event(step.name, 'failed', now, reply.detail)];
        const reason = reply.detail ?? reply.type;
        // The failed step did nothing; every other step of its group may have, or still may.
        const undo = compensable(def, lastOfGroup(def, state.step)).filter((i) => i !== index);
        return compensate(def, { ...state, history }, undo, reason, now);
      }
      return undefined;
    }
    case 'compensating': {
      const [index, ...rest] = state.pending;
      const step = stepAt(def, index);
      if (reply.step !== step.name || reply.type !== step.compensation?.done) return undefined;
      const history = [...state.history, { step: step.name, event: 'compensated' as const, at: now }];
      return compensate(def, { ...state, history }, rest, state.reason, now);
    }
    case 'completed':
    case 'failed':
      return undefined;
  }
}

/** A saga run by others, as one observer sees it: its state, and events that came too early. */
export type Observation<C> = Readonly<{ state: SagaState<C>; early: readonly SagaReply[] }>;

/**
 * Applies an event to a saga that nobody commands (choreography): the owner and the tracker
 * only follow it. Events of different types may arrive in any order, so one that matches
 * nothing pending yet is kept and applied once the events before it have come. What the
 * state machine would send is dropped: the participants react to the events themselves.
 * Every event kept is forgotten when the saga ends (a duplicate would match nothing again).
 */
export function observe<C>(def: SagaDefinition<C>, seen: Observation<C>, reply: SagaReply, now: number): Observation<C> & { outcome?: SagaOutcome } {
  let state = seen.state;
  let outcome: SagaOutcome | undefined;
  let waiting = [...seen.early, reply];
  for (let progress = true; progress && waiting.length > 0;) {
    progress = false;
    for (const [i, next] of waiting.entries()) {
      const transition = onReply(def, state, next, next.at ?? now);
      if (!transition) continue;
      state = transition.state;
      outcome ??= transition.outcome;
      waiting = waiting.filter((_, j) => j !== i);
      progress = true;
      break;
    }
  }
  if (!isActive(state)) waiting = [];
  return outcome ? { state, early: waiting, outcome } : { state, early: waiting };
}

/** Applies the saga's timer firing; `undefined` when the timer is stale or the saga ended. */
export function onTimer<C>(def: SagaDefinition<C>, state: SagaState<C>, timer: string, seq: number, now: number): Transition<C> | undefined {
  if (state.status === 'completed' || state.status === 'failed' || timer !== state.timer) return undefined;
  const deadline = state.since + delayFor(def.policy, state.tries);
  if (seq !== state.seq || deadline > now) {
    // Progress since the timer was set: wait the rest of the current step's time.
    return rearm(state, now, Math.max(deadline, now + 1), []);
  }
  if (state.status === 'running') {
    const names = state.awaiting.map((i) => stepAt(def, i).name);
    const pastPivot = state.step >= def.pivot;
    if (pastPivot || state.tries < def.policy.maxAttempts) {
      const history = [...state.history, ...names.map((name) => event(name, 'retried', now, `try ${state.tries + 1}`))];
      const next = { ...state, history, tries: state.tries + 1, since: now };
      return rearm(next, now, now + delayFor(def.policy, next.tries), state.awaiting.map((i) => actionOf(def, state.id, i, state.ctx)));
    }
    const history = [...state.history, ...names.map((name) => event(name, 'timed-out', now, `no reply after ${state.tries} tries`))];
    const undo = compensate(def, { ...state, history }, compensable(def, lastOfGroup(def, state.step)), `step ${names.join(', ')} timed out`, now);
    // The fired timer is spent: the compensation needs one of its own.
    return undo.state.status === 'compensating' ? rearm(undo.state, now, now + def.policy.stepTimeoutMs, undo.send) : undo;
  }
  const [step, undo] = compensationAt(def, state.pending[0]);
  const history = [...state.history, event(step.name, 'retried', now, `compensation try ${state.tries + 1}`)];
  const next = { ...state, history, tries: state.tries + 1, since: now };
  return rearm(next, now, now + delayFor(def.policy, next.tries), [command(state.id, step.name, undo.command(state.ctx))]);
}

/**
 * Gives up a running saga (cancel button, reservation TTL) that has not reached the step it can
 * no longer be aborted at: every step that has a compensation is undone, latest first, whether
 * it ran or not (a command already sent may still arrive, and its compensation makes it do
 * nothing). `undefined` when the saga cannot be aborted.
 */
export function abortSaga<C>(def: SagaDefinition<C>, state: SagaState<C>, reason: string, now: number): Transition<C> | undefined {
  if (!canAbort(def, state)) return undefined;
  const history = [...state.history, event(stepAt(def, state.step).name, 'aborted', now, reason)];
  return compensate(def, { ...state, history }, compensable(def, cancellableUntil(def) - 1, cancellableUntil(def)), reason, now);
}

/** Whether `abortSaga` would abort the saga now. */
export function canAbort<C>(def: SagaDefinition<C>, state: SagaState<C>): state is Extract<SagaState<C>, { status: 'running' }> {
  return state.status === 'running' && state.step < cancellableUntil(def);
}

export const cancellableUntil = <C>(def: SagaDefinition<C>): number => def.cancellableUntil ?? def.pivot;

/** The definitions of one saga by version: new sagas start under `current`, the others finish under theirs. */
export type SagaVersions<C> = Readonly<{ current: SagaDefinition<C>; all: readonly SagaDefinition<C>[] }>;

export function sagaVersions<C>(current: SagaDefinition<C>, older: readonly SagaDefinition<C>[]): SagaVersions<C> {
  const all = [...older.filter((d) => d.version !== current.version), current];
  for (const def of all) {
    if (def.name !== current.name) throw new Error(`Saga versions must share a name: ${def.name} is not ${current.name}`);
    if (all.filter((d) => d.version === def.version).length > 1) throw new Error(`Saga ${def.name} has version ${def.version} twice`);
  }
  return { current, all };
}

/** The definition a saga started under (sagas stored before versions were recorded are version 1). */
export function definitionFor<C>(versions: SagaVersions<C>, state: SagaState<C>): SagaDefinition<C> {
  const version = state.definition?.version ?? 1;
  const def = versions.all.find((d) => d.version === version);
  if (!def) throw new Error(`Saga ${state.id} started under ${versions.current.name} version ${version}, which this build does not have`);
  return def;
}

export function isActive<C>(state: SagaState<C>): state is ActiveSaga<C> {
  return state.status === 'running' || state.status === 'compensating';
}

function advance<C>(def: SagaDefinition<C>, state: Extract<SagaState<C>, { status: 'running' }>, next: number, now: number): Transition<C> {
  const seq = state.seq + 1;
  if (next >= def.steps.length) {
    return {
      state: { status: 'completed', id: state.id, ...definitionOf(state), ctx: state.ctx, startedAt: state.startedAt, history: state.history, endedAt: now },
      send: [],
      cancel: [state.timer],
      outcome: { status: 'completed' },
    };
  }
  const group = groupFrom(def, next);
  const history = [...state.history, ...group.map((i) => ({ step: stepAt(def, i).name, event: 'started' as const, at: now }))];
  return {
    state: { ...state, history, step: next, awaiting: group, seq, since: now, tries: 1 },
    send: group.map((i) => actionOf(def, state.id, i, state.ctx)),
    cancel: [],
  };
}

/** The indices of the group of steps that starts at `first`. */
function groupFrom<C>(def: SagaDefinition<C>, first: number): number[] {
  const group = [first];
  while (def.steps[group.length + first]?.concurrent) group.push(first + group.length);
  return group;
}

function lastOfGroup<C>(def: SagaDefinition<C>, first: number): number {
  return groupFrom(def, first).at(-1)!;
}

function actionOf<C>(def: SagaDefinition<C>, sagaId: string, index: number, ctx: C): Outgoing {
  const step = stepAt(def, index);
  return command(sagaId, step.name, step.action(ctx));
}

/** Moves to compensating the given steps (in that order), or to failed when none is left. */
function compensate<C>(def: SagaDefinition<C>, state: ActiveSaga<C>, pending: readonly number[], reason: string, now: number): Transition<C> {
  const base = { id: state.id, ...definitionOf(state), ctx: state.ctx, startedAt: state.startedAt };
  const [index, ...rest] = pending;
  if (index === undefined) {
    return {
      state: { ...base, status: 'failed', reason, endedAt: now, history: state.history },
      send: [],
      cancel: [state.timer],
      outcome: { status: 'failed', reason },
    };
  }
  const [step, undo] = compensationAt(def, index);
  const history = [...state.history, { step: step.name, event: 'compensating' as const, at: now }];
  return {
    state: { ...base, status: 'compensating', pending: [index, ...rest], reason, history, seq: state.seq + 1, since: now, tries: 1, timer: state.timer },
    send: [command(state.id, step.name, undo.command(state.ctx))],
    cancel: [],
  };
}

/** Replaces the saga's timer with one firing at `at`. */
function rearm<C>(state: ActiveSaga<C>, now: number, at: number, send: readonly Outgoing[]): Transition<C> {
  const n = Number(state.timer.slice(state.timer.lastIndexOf('/') + 1)) + 1;
  const timer = timerId(state.id, n);
  return {
    state: { ...state, timer },
    send: [...send, timerMessage(state.id, timer, state.seq, Math.max(at, now + 1))],
    cancel: [],
  };
}

/** Indices of the steps up to `last` and before `limit` (the pivot unless aborted) that have a compensation, latest first. */
function compensable<C>(def: SagaDefinition<C>, last: number, limit = def.pivot): number[] {
  const indices: number[] = [];
  for (let i = Math.min(last, limit - 1); i >= 0; i--) if (stepAt(def, i).compensation) indices.push(i);
  return mutations.forwardCompensations ? indices.reverse() : indices; // a bug the simulator's tests put back
}

/** The `definition` field of a state, kept as it is (absent stays absent). */
function definitionOf<C>(state: SagaState<C>): Pick<SagaState<C>, 'definition'> {
  return state.definition ? { definition: state.definition } : {};
}

function stepAt<C>(def: SagaDefinition<C>, index: number): SagaStep<C> {
  const step = def.steps[index];
  if (!step) throw new Error(`Saga ${def.name} has no step ${index}`);
  return step;
}

/** A step that is being compensated, and its compensation (`compensable` picks only steps that have one). */
function compensationAt<C>(def: SagaDefinition<C>, index: number): readonly [SagaStep<C>, NonNullable<SagaStep<C>['compensation']>] {
  const step = stepAt(def, index);
  if (!step.compensation) throw new Error(`Saga ${def.name}: step ${step.name} has no compensation`);
  return [step, step.compensation];
}

function delayFor(policy: SagaPolicy, tries: number): number {
  if (tries <= 1) return policy.stepTimeoutMs;
  const backoff = policy.backoffMs;
  return policy.stepTimeoutMs + (backoff[Math.min(tries - 2, backoff.length - 1)] ?? 0);
}

function command(sagaId: string, step: string, cmd: Command): Outgoing {
  return { type: cmd.type, payload: cmd.payload, sagaId, step };
}

function timerMessage(sagaId: string, id: string, seq: number, at: number): Outgoing {
  const payload: SagaTimerPayload = { seq };
  return { id, type: SAGA_TIMER, payload, sagaId, step: '', deliverAt: at };
}

function timerId(sagaId: string, n: number): string {
  return `${sagaId}/timer/${n}`;
}

function event(step: string, kind: StepEvent['event'], at: number, detail: string | undefined): StepEvent {
  return detail === undefined ? { step, event: kind, at } : { step, event: kind, at, detail };
}
